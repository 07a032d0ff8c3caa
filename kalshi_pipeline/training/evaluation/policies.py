"""The policies an evaluation plays: the trained model and the baselines it is judged by.

A policy maps an observation to an action. The model acts with ``deterministic=True``;
the random baseline draws from a generator seeded per view, so it repeats; always-HOLD
never trades; and the imbalance rule is the simple signal a model should at least match:
flat on a tight book, buy the side the top-of-book imbalance favours beyond ``threshold``;
holding, sell when the imbalance turns against the position. The quote rule is the same
signal as a person would trade it with resting limit orders (:func:`quote_policy`): it is
a baseline of maker-mode evaluations only, since it reads the maker observation's order
rows (in taker mode rows 46-51 are others) and its orders would cross the spread there.
:class:`PolicyName` names the policies the report knows; other names (promotion's
challenger and champion) are plain strings.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import numpy as np

from kalshi_pipeline.env.env_config import EXECUTION_MODES
from kalshi_pipeline.env.execution import BUY_NO, BUY_YES, HOLD, SELL_NO, SELL_YES
from kalshi_pipeline.env.observation import MAKER_OBSERVATION_NAMES, OBSERVATION_NAMES
from kalshi_pipeline.market.features import FEATURE_NAMES

Policy = Callable[[np.ndarray], int]
PolicyFactory = Callable[[int], Policy]  # takes the per-view seed
MAKER = "maker"  # EnvConfig.execution of resting limit orders
assert MAKER in EXECUTION_MODES
_IMBALANCE = FEATURE_NAMES.index("top_imbalance")
_SPREAD = FEATURE_NAMES.index("spread")
_SIGNED_POSITION = OBSERVATION_NAMES.index("signed_position")
# The maker observation's rows of each resting order: (distance, queue) of the order on
# the YES bids (BID: BUY_YES, SELL_NO) and of the one on the NO bids (ASK: BUY_NO, SELL_YES).
_BID_ORDER = tuple(MAKER_OBSERVATION_NAMES.index(f"bid_order_{n}") for n in ("distance", "queue"))
_ASK_ORDER = tuple(MAKER_OBSERVATION_NAMES.index(f"ask_order_{n}") for n in ("distance", "queue"))
_MAKER_POSITION = MAKER_OBSERVATION_NAMES.index("signed_position")


class PolicyName(StrEnum):
    """The policies of an evaluation report, under the names its files use."""

    MODEL = "model"  # the phase-3 model
    PHASE2 = "phase2"  # its parent, when it was evaluated
    RANDOM = "random"
    HOLD = "hold"
    IMBALANCE_RULE = "imbalance_rule"
    QUOTE_RULE = "quote_rule"  # maker mode only


def model_policy(model) -> Policy:
    """The model's deterministic action: ``model.predict(obs, deterministic=True)``.

    For an actor-critic model with discrete actions on a flat observation (PPO and A2C
    here), the action is computed by the same torch operations as SB3's predict, in the
    same order, without its per-call overhead (checking the input, switching the
    network's mode, building the action distribution), which was most of a decision's
    cost when paper trading: so the action is the one predict gives, bit for bit. Any
    other model, or an observation of another shape, goes through predict.
    """
    policy = getattr(model, "policy", None)
    if not _plain_actor_critic(policy):
        return lambda obs: int(model.predict(obs, deterministic=True)[0])
    import torch  # here: a model is loaded, so torch is (the module needs it not)

    shape = policy.observation_space.shape

    def act(obs: np.ndarray) -> int:
        if np.shape(obs) != shape:
            return int(model.predict(obs, deterministic=True)[0])
        if policy.training:  # as predict leaves it: evaluation mode
            policy.set_training_mode(False)
        with torch.no_grad():
            features = policy.pi_features_extractor(torch.as_tensor(obs[None]).float())
            logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
            # Categorical(logits=...).mode: the normalised logits' softmax, its argmax.
            logits = logits - logits.logsumexp(dim=-1, keepdim=True)
            return int(torch.argmax(torch.softmax(logits, dim=-1), dim=1)[0])

    return act


def _plain_actor_critic(policy) -> bool:
    """Whether ``policy`` is an SB3 actor-critic policy whose predict is the forward pass
    :func:`model_policy` makes: discrete actions, a flat Box observation."""
    from gymnasium import spaces
    from stable_baselines3.common.distributions import CategoricalDistribution
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.preprocessing import is_image_space

    return (
        isinstance(policy, ActorCriticPolicy)
        and isinstance(policy.action_dist, CategoricalDistribution)
        and isinstance(policy.action_space, spaces.Discrete)
        and isinstance(policy.observation_space, spaces.Box)
        and not is_image_space(policy.observation_space)
        and policy.device.type == "cpu"
    )


def hold_policy() -> Policy:
    return lambda obs: HOLD


def random_policy(seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.integers(5))


def imbalance_policy(threshold: float = 0.5, max_spread_cents: int = 3) -> Policy:
    """The simple rule: trade the top-of-book imbalance on tight books only."""

    def act(obs: np.ndarray) -> int:
        imbalance, position = obs[_IMBALANCE], obs[_SIGNED_POSITION]
        if position > 0:
            return SELL_YES if imbalance < 0 else HOLD
        if position < 0:
            return SELL_NO if imbalance > 0 else HOLD
        if obs[_SPREAD] * 100 > max_spread_cents + 1e-6:
            return HOLD
        if imbalance > threshold:
            return BUY_YES
        if imbalance < -threshold:
            return BUY_NO
        return HOLD

    return act


def _rests_at_touch(obs: np.ndarray, rows: tuple[int, int]) -> bool:
    """Whether the slot's order rests (or is on its way) at the touch of its book: a queue
    of -1 is no order; a distance of 0 is at the touch (within half a cent: float32)."""
    distance, queue = rows
    return obs[queue] > -0.5 and abs(obs[distance]) < 0.005


def quote_policy(threshold: float = 0.5) -> Policy:
    """The quote rule, for maker mode: rest an order at the touch of the side the
    top-of-book imbalance points to (beyond ``threshold``: BUY_YES on the YES bids, below
    ``-threshold``: BUY_NO on the NO bids); holding, rest one that closes the position
    (SELL_YES holding YES, SELL_NO holding NO) whatever the imbalance. An order that
    already rests at the touch is left alone (HOLD), since sending it again would cancel
    it and put the new one at the back of the queue; one the touch has moved away from,
    or that expired (the env's order expiry), is sent again. The observation does not say
    which action placed an order, so a BUY_NO resting at the touch while YES is held is
    kept too: it nets the YES as SELL_YES would, but fills beyond the position open NO.
    The order on the other book is left alone (the buy that opened a position may fill
    on). It reads the maker observation's rows (``MAKER_OBSERVATION_NAMES``)."""

    def act(obs: np.ndarray) -> int:
        position = obs[_MAKER_POSITION]
        if position > 0:
            return HOLD if _rests_at_touch(obs, _ASK_ORDER) else SELL_YES
        if position < 0:
            return HOLD if _rests_at_touch(obs, _BID_ORDER) else SELL_NO
        imbalance = obs[_IMBALANCE]
        if imbalance > threshold:
            return HOLD if _rests_at_touch(obs, _BID_ORDER) else BUY_YES
        if imbalance < -threshold:
            return HOLD if _rests_at_touch(obs, _ASK_ORDER) else BUY_NO
        return HOLD

    return act


def baseline_policies(
    model=None, *, phase2_model=None, quote_rule: bool = False
) -> dict[str, PolicyFactory]:
    """The model (``"model"``, the phase-3 one), the baselines, and when given the
    phase-2 model (``"phase2"``), whose target share the report then states too. With
    ``quote_rule`` (maker-mode evaluations), the quote rule too."""
    policies: dict[str, PolicyFactory] = {}
    if model is not None:
        policies[PolicyName.MODEL] = lambda seed: model_policy(model)
    if phase2_model is not None:
        policies[PolicyName.PHASE2] = lambda seed: model_policy(phase2_model)
    policies[PolicyName.RANDOM] = random_policy
    policies[PolicyName.HOLD] = lambda seed: hold_policy()
    policies[PolicyName.IMBALANCE_RULE] = lambda seed: imbalance_policy()
    if quote_rule:
        policies[PolicyName.QUOTE_RULE] = lambda seed: quote_policy()
    return policies
