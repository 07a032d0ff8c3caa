"""Every ``KALSHI_*`` environment variable the package reads: read, checked and named here.

Each setting is declared once below, with its default and the values it accepts, and
every module that needs one calls its reader (``SOURCE_RETRY_DELAY.read()``) instead of
``os.environ``. An unset or empty variable (a blank number too) takes the default. A value
the setting does not accept raises :class:`SettingError`, one line naming the variable, the
value (never a URL's: it may hold a password) and what is accepted; the command line exits
2 on it.
Numbers are written in plain decimal notation (``12``, ``-1``, ``0.5``, ``.5``; surrounding
blanks ignored): no exponent, ``+``, ``_`` between digits or non-ASCII digits, all of which
Python's ``float()`` would take. They must be finite and within sane bounds: ``nan``,
``inf`` or ``1e9`` seconds would turn a wait into a busy loop, an overflow or a sleep of
decades.

- ``KALSHI_PIPELINE_HOME``: the home, a path whose absolute form is UTF-8 text (default
  ``./.kalshi-pipeline``): TensorBoard writes the training logs under it and encodes their
  paths as UTF-8, so another byte would fail a run late, naming no path
  (:func:`not_utf8`, which the command line's path options share);
- ``KALSHI_COLLECTOR_URL``: the collector's libpq URL (checked on connecting), else unset;
- ``KALSHI_PAPER_DATABASE_URL``: the libpq URL of the database paper trading records
  sessions in (never the collector's; checked on connecting), else unset: no paper database;
- ``KALSHI_COLLECTOR_CONNECT_TIMEOUT_S`` (10) and ``KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S``
  (600): seconds, above 0 and at most a day;
- ``KALSHI_SOURCE_RETRY_DELAY_SECONDS`` (10): seconds, 0 to an hour;
- ``KALSHI_RETRAIN_AFTER_SESSIONS`` (3): a whole number, 1 to 100000;
- ``KALSHI_TUNING_RETRY_SECONDS`` (15): seconds, 0 to an hour;
- ``KALSHI_EXECUTOR``: ``multiprocess`` (the default) or ``celery``;
- ``KALSHI_CELERY_BROKER`` (``pyamqp://guest@127.0.0.1:5672//``) and
  ``KALSHI_CELERY_BACKEND`` (unset; required with Celery, checked in
  :mod:`kalshi_pipeline.defs.executors`).

The module sits in ``sources``, the lowest layer, and imports nothing of the package, so
that every layer may read its settings from it (``docs/architecture.md``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

_SHOWN_CHARS = 40  # a longer bad value is cut, so that the error stays one line
# Plain decimal notation, ASCII digits only (see the module docstring).
_DECIMAL = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)", re.ASCII)
_WHOLE = re.compile(r"-?[0-9]+", re.ASCII)
UTF8_TODO = "choose a path of UTF-8 characters: TensorBoard and the stores need one"


class SettingError(ValueError):
    """A ``KALSHI_*`` variable holds a value its setting does not accept (see the message)."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


def _raw(name: str, environ: Mapping[str, str]) -> str | None:
    """The variable's value, ``None`` when unset or blank."""
    text = environ.get(name, "").strip()
    return text or None


@dataclass(frozen=True)
class Number:
    """A finite number from ``minimum`` to ``maximum`` (``minimum`` itself excluded when
    ``above`` is set); ``whole`` ones are ints written as plain integers."""

    name: str
    default: float
    minimum: float
    maximum: float
    unit: str
    above: bool = False
    whole: bool = False

    def accepts(self) -> str:
        kind = "a whole number" if self.whole else "a finite number"
        low = f"above {self.minimum:g} and at most" if self.above else f"from {self.minimum:g} to"
        return f"{kind} of {self.unit} {low} {self.maximum:g}"

    def read(self, environ: Mapping[str, str] = os.environ) -> float:
        text = _raw(self.name, environ)
        if text is None:
            return self.default
        if (_WHOLE if self.whole else _DECIMAL).fullmatch(text) is None:
            value = math.nan
        else:
            value = int(text) if self.whole else float(text)
        low_ok = value > self.minimum if self.above else value >= self.minimum
        if not (math.isfinite(value) and low_ok and value <= self.maximum):
            raise SettingError(
                f"{self.name}={_shown(text)} is not {self.accepts()} "
                f"(fix it, or unset it for the default {self.default:g})"
            )
        return value


@dataclass(frozen=True)
class Count(Number):
    """A :class:`Number` that is a whole number."""

    whole: bool = True

    def read(self, environ: Mapping[str, str] = os.environ) -> int:
        return int(super().read(environ))


@dataclass(frozen=True)
class Choice:
    """One of a few words (case and surrounding blanks ignored)."""

    name: str
    default: str
    choices: tuple[str, ...]

    def read(self, environ: Mapping[str, str] = os.environ) -> str:
        text = _raw(self.name, environ)
        if text is None:
            return self.default
        if text.lower() not in self.choices:
            raise SettingError(
                f"{self.name}={_shown(text)} is not one of {', '.join(self.choices)} "
                f"(fix it, or unset it for the default {self.default})"
            )
        return text.lower()


@dataclass(frozen=True)
class Text:
    """Free text (a path or a URL), checked where it is used; unset or empty: ``default``.
    Kept as given: blanks may belong to a path."""

    name: str
    default: str | None = None

    def read(self, environ: Mapping[str, str] = os.environ) -> str | None:
        return environ.get(self.name) or self.default

    def is_set(self, environ: Mapping[str, str] = os.environ) -> bool:
        """Whether the variable gives a value (not unset or empty)."""
        return bool(environ.get(self.name))


def shown_path(path: str | os.PathLike) -> str:
    """``path`` printable: a byte that is not UTF-8 as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def not_utf8(name: str, path: str | os.PathLike) -> str | None:
    """What is wrong with ``path``, named ``name`` (an option or a variable), if its
    absolute form (the working directory too) is not UTF-8 text; ``None`` if it is."""
    absolute = os.path.abspath(path)
    try:
        absolute.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name} {shown_path(absolute)} holds a byte that is not UTF-8"
    return None


@dataclass(frozen=True)
class PathText(Text):
    """A path (:class:`Text`) whose absolute form must be UTF-8 text (:func:`not_utf8`),
    when the variable gives one (the default's working directory is the command's to
    name)."""

    def read(self, environ: Mapping[str, str] = os.environ) -> str | None:
        if self.is_set(environ) and (problem := not_utf8(self.name, environ[self.name])):
            raise SettingError(f"{problem} ({UTF8_TODO})")
        return super().read(environ)


DAY_S, HOUR_S = 86_400.0, 3_600.0
PIPELINE_HOME = PathText("KALSHI_PIPELINE_HOME", ".kalshi-pipeline")
COLLECTOR_URL = Text("KALSHI_COLLECTOR_URL")
PAPER_DATABASE_URL = Text("KALSHI_PAPER_DATABASE_URL")
CONNECT_TIMEOUT = Number("KALSHI_COLLECTOR_CONNECT_TIMEOUT_S", 10, 0, DAY_S, "seconds", above=True)
STATEMENT_TIMEOUT = Number(
    "KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S", 600, 0, DAY_S, "seconds", above=True
)
SOURCE_RETRY_DELAY = Number("KALSHI_SOURCE_RETRY_DELAY_SECONDS", 10, 0, HOUR_S, "seconds")
RETRAIN_AFTER_SESSIONS = Count("KALSHI_RETRAIN_AFTER_SESSIONS", 3, 1, 100_000, "sessions")
TUNING_RETRY = Number("KALSHI_TUNING_RETRY_SECONDS", 15, 0, HOUR_S, "seconds")
EXECUTOR = Choice("KALSHI_EXECUTOR", "multiprocess", ("multiprocess", "celery"))
CELERY_BROKER = Text("KALSHI_CELERY_BROKER", "pyamqp://guest@127.0.0.1:5672//")
CELERY_BACKEND = Text("KALSHI_CELERY_BACKEND")
SETTINGS = (
    PIPELINE_HOME,
    COLLECTOR_URL,
    PAPER_DATABASE_URL,
    CONNECT_TIMEOUT,
    STATEMENT_TIMEOUT,
    SOURCE_RETRY_DELAY,
    RETRAIN_AFTER_SESSIONS,
    TUNING_RETRY,
    EXECUTOR,
    CELERY_BROKER,
    CELERY_BACKEND,
)


DURABLE_BACKEND = "db+"  # SQLAlchemy: Celery's results in a database, which outlives the broker


def celery_result_backend(environ: Mapping[str, str] = os.environ) -> str:
    """``KALSHI_CELERY_BACKEND``, which the Celery executor needs to be a database
    (``db+...``): ``rpc://`` loses the results in flight when the broker restarts,
    ``cache+memory://`` keeps them in one process (:mod:`kalshi_pipeline.defs.executors`)."""
    backend = CELERY_BACKEND.read(environ) or ""
    if not backend.strip().lower().startswith(DURABLE_BACKEND):
        scheme = backend.strip().partition(":")[0] + "://" if backend else "nothing"
        raise SettingError(
            f"{CELERY_BACKEND.name} must name a database as the Celery result backend with "
            f"{EXECUTOR.name}=celery, got {scheme} "
            "(e.g. db+postgresql+psycopg2://user@host:5432/dagster; rpc:// loses the results "
            "in flight when the broker restarts, cache+memory:// keeps them in one process)"
        )
    return backend


def check_all(environ: Mapping[str, str] = os.environ) -> None:
    """Read every setting: raises :class:`SettingError` for the first bad one (the Celery
    backend too when the executor is Celery)."""
    for setting in SETTINGS:
        setting.read(environ)
    if EXECUTOR.read(environ) == "celery":
        celery_result_backend(environ)
