"""The report's execution assumptions: how the evaluated orders met the book, in words.

A result means little without the execution it was measured under: a taker crossing the
spread at once pays it on every round trip, a maker resting at the touch may earn it but
fills only when others trade into its queue, later by the latency. So ``report.md``
states them under its first line (:func:`execution_lines`), and ``summary.json`` keeps
them (:func:`execution_summary`): the mode and, in maker mode, the order expiry, the
latencies, the queue model and the fees with their series overrides. When the settings
an evaluation was given differ from the model's own (its lineage's: what it was trained
with), a second line names each setting changed and the model's value, and a third,
when the mode itself changed, that the model now reads observation rows it was not
trained on (the portfolio rows 46-51 differ between the modes).
"""

from __future__ import annotations

from collections.abc import Mapping

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.env.observation import observation_layout
from kalshi_pipeline.training.evaluation import MAKER, PolicyName
from kalshi_pipeline.training.execution_choice import execution_settings, shown_default
from kalshi_pipeline.training.lineage import Lineage


def describe_execution(env: EnvConfig) -> str:
    """One line: ``Execution: <mode> (...)``, with every setting the mode reads."""
    fees = f"{env.fee_type} x{env.fee_multiplier:g}"
    overrides = ", ".join(env.series_fees) or "none"
    if env.execution != MAKER:
        taker_fees = (
            "taker fee"
            if (env.fee_multiplier, env.series_fees) == (1.0, ())
            else f"taker fee x{env.fee_multiplier:g} (series overrides: {overrides})"
        )
        return (
            f"Execution: {env.execution} (orders cross the spread at once, up to "
            f"{env.limit_slippage_cents} cent{'s' * (env.limit_slippage_cents != 1)} of "
            f"slippage; {taker_fees}). The "
            f"{PolicyName.QUOTE_RULE} baseline rests limit orders: it is played in maker "
            "mode only."
        )
    cancel = env.latency_ms if env.cancel_latency_ms is None else env.cancel_latency_ms
    spread = f" (sigma {env.latency_sigma:g})" if env.latency_distribution == "lognormal" else ""
    power = f" (power {env.queue_power:g})" if env.queue_model == "power_prob" else ""
    through = "all that is left" if env.trade_through_fills == "all" else "its contracts"
    return (
        f"Execution: maker (resting limit orders at the touch; post-only; expire after "
        f"{env.order_expiry_steps} steps), latency {env.latency_ms} ms "
        f"{env.latency_distribution}{spread} (cancels {cancel} ms), {env.queue_model} "
        f"queue{power}, a trade through fills {through}, fees {fees} (series overrides: "
        f"{overrides})."
    )


def changed_settings(env: EnvConfig, lineage: Lineage | None) -> dict[str, tuple]:
    """The execution settings of ``env`` that differ from the model's own (its
    lineage's), each as ``(evaluated, the model's)``; none without a lineage."""
    if lineage is None:
        return {}
    evaluated, own = execution_settings(env), execution_settings(lineage.env_config())
    return {
        name: (evaluated[name], own[name]) for name in evaluated if evaluated[name] != own[name]
    }


def execution_lines(env: EnvConfig, lineage: Lineage | None) -> list[str]:
    """The report's lines on execution: :func:`describe_execution`, and the settings set
    for this evaluation that are not the model's own, if any."""
    lines = [describe_execution(env)]
    changed = changed_settings(env, lineage)
    if changed:
        lines.append(
            "Set for this evaluation, not the model's own (it was trained with the values in "
            "brackets): "
            + "; ".join(
                f"{name} {shown_default(value)} ({shown_default(own)})"
                for name, (value, own) in changed.items()
            )
            + "."
        )
    if "execution" in changed:
        mode, own = changed["execution"]
        lines.append(
            f"The mode changes the observation: the model learned the {own} mode's "
            f"({observation_layout(own)}), and reads the {mode} mode's "
            f"({observation_layout(mode)}), whose rows 46-51 it never saw in training."
        )
    return lines


def execution_summary(env: EnvConfig, lineage: Lineage | None) -> Mapping:
    """``summary.json``'s ``execution``: the line, the settings (JSON: lists for tuples)
    and those changed from the model's own, each ``{"evaluated": ..., "model": ...}``."""

    def plain(value):
        return list(value) if isinstance(value, tuple) else value

    return {
        "description": describe_execution(env),
        "settings": {name: plain(v) for name, v in execution_settings(env).items()},
        "changed_from_model": {
            name: {"evaluated": plain(value), "model": plain(own)}
            for name, (value, own) in changed_settings(env, lineage).items()
        },
    }
