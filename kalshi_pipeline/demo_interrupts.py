"""SIGTERM and SIGINT end the demo's in-process runs, and the demo, at once.

During ``execute_in_process`` Dagster owns both signals (``dagster._utils.interrupts``):
between steps its handler only notes an interrupt, which the next step raises as it
starts; inside a step the handler raises ``DagsterExecutionInterruptedError`` there. But
a step with a retry policy turns that interrupt into a retry
(``op_execution_error_boundary``), and the interrupt is spent: the step starts again from
its last checkpoint and the run goes on, to ``SUCCESS`` and a promotion. The demo's
candidate steps and the ``raw_sessions`` step have retry policies, so a SIGTERM while the
demo trained was lost.

:func:`ends_the_run_on_interrupt` puts the interrupt back: a handler on the demo's console
logger that, when a step is retried or fails because of an interrupt, delivers SIGINT to
this process again. That event is logged between steps, where Dagster only notes the
signal, so the retry (or the next step) starts by raising it and the run ends, recorded
as failed (``Execution was interrupted``); nothing after it runs, so no model is
promoted. A run that ended so is :func:`interrupted`, and the demo then stops with
:class:`RunInterrupted` instead of going on to the next session or to training.

Outside runs, :func:`signals_interrupt` makes SIGTERM raise ``KeyboardInterrupt`` as
SIGINT does (as Dagster maps them during its runs), both even where the shell started the
demo with SIGINT ignored: after a run Dagster restores SIGTERM to SIGINT's handler, which
would otherwise ignore SIGTERM too. The CLI prints one line for either and exits 130.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

# The errors an interrupt is raised as inside a run (Dagster's, and Python's own).
_INTERRUPTS = frozenset({"DagsterExecutionInterruptedError", "KeyboardInterrupt"})


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT ended one of the demo's runs; the demo stops there."""


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT raise ``KeyboardInterrupt`` in this block (main thread only);
    the previous handlers are restored after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, signal.default_int_handler)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def ends_the_run_on_interrupt(logger: logging.Logger) -> logging.Logger:
    """``logger`` (a Dagster logger of the demo's runs) with :class:`_Reinterrupt` added.

    The logger's level moves to its handlers, so that it receives every event (a retry is
    logged at DEBUG) while its handlers still show only what they showed before."""
    for handler in logger.handlers:
        handler.setLevel(max(handler.level, logger.level))
    logger.setLevel(logging.DEBUG)
    logger.addHandler(_Reinterrupt())
    return logger


class _Reinterrupt(logging.Handler):
    """Delivers SIGINT again when a step is retried or fails because of an interrupt."""

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)  # Dagster's events carry themselves
        if event is None or not (event.is_step_up_for_retry or event.is_step_failure):
            return
        error = getattr(event.event_specific_data, "error", None)
        if _interrupt_in(error) and threading.current_thread() is threading.main_thread():
            signal.raise_signal(signal.SIGINT)


def interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether an interrupt (SIGTERM, SIGINT) failed, retried or ended the run."""
    return any(
        _interrupt_in(getattr(event.event_specific_data, "error", None))
        for event in result.all_events
    )


def _interrupt_in(error) -> bool:
    """Whether a serialised error, its cause or its context is an interrupt."""
    while error is not None:
        if error.cls_name in _INTERRUPTS:
            return True
        if error.context is not None and _interrupt_in(error.context):
            return True
        error = error.cause
    return False
