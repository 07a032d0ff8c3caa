"""Collector values into the raw schema's columns, whatever they hold: never an exception.

A database without the collector's constraints (or a collector with a bug) can hold any
value where the raw schema wants an integer or a word: a NaN, a number of 5,000 digits, a
string, a bool, a JSON text nested 5,000 levels deep. None of them may fail a whole
session. Here an integer too large for its column is clamped to the column's limit (far
outside any valid value, so cleaning counts it: ``price_out_of_range``,
``size_out_of_range``, ``timestamp_out_of_window``, ``sequence_outlier``), and a value that
is not an integer at all (or a word that is not text) becomes NULL, which cleaning counts
as missing (``negative_size``, ``price_out_of_range``, ``unknown_side``, ``unknown_action``,
``missing_timestamp`` ...). A string of plain decimal digits is an integer (a column of
type TEXT holds nothing else). Every such row is counted and named by cleaning; nothing here
raises. :func:`shown` describes a value in an error message in a few characters, whatever
its size or depth.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

import pyarrow as pa

# An integer literal longer than this is far outside every column's range: it is clamped
# without being converted (Python refuses to convert more than 4,300 digits, and a
# number of 10^8 digits would take minutes).
MAX_DIGITS = 30
_HUGE = 10**MAX_DIGITS
# The largest value of the raw schema's integer columns.
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1
_LIMITS = {pa.int32(): INT32_MAX, pa.int64(): INT64_MAX}
_SHOWN_CHARS = 40
INTEGER_TEXT = re.compile(r"-?[0-9]+")  # plain decimal digits: not "1_0", " 1", "+1" or "١"


def bounded_int(text: str) -> int:
    """A decimal integer literal as an int; beyond :data:`MAX_DIGITS` digits, +-10^30."""
    if len(text.lstrip("-")) > MAX_DIGITS:
        return -_HUGE if text.startswith("-") else _HUGE
    return int(text)


def clamp(value: int, limit: int) -> int:
    return max(-limit, min(value, limit))


def integer(value: object, limit: int) -> int | None:
    """``value`` as an integer clamped to +-``limit``, or None if it is not an integer
    (a bool, a fraction, a NaN or an infinity, a list, a string other than plain decimal
    digits ...). A string of plain digits is one: a column of type TEXT holds them so."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return clamp(value, limit)
    if isinstance(value, str):
        return clamp(bounded_int(value), limit) if INTEGER_TEXT.fullmatch(value) else None
    if isinstance(value, float):
        finite_integer = math.isfinite(value) and value == int(value)
        return clamp(int(value), limit) if finite_integer else None
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            return None
        if value.adjusted() > MAX_DIGITS:  # int() of 1E+100000000 would not end
            return -limit if value < 0 else limit
        return clamp(int(value), limit)
    return None


def column_array(values: list, type_: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``type_`` (an integer or string type of the raw
    schema): what does not fit is clamped or NULL (see the module docstring)."""
    if pa.types.is_integer(type_):
        if all(type(v) is int or v is None for v in values):
            try:
                return pa.array(values, type=type_)
            except (pa.ArrowException, OverflowError):
                pass  # an integer beyond the column's range: clamped below
        return pa.array([integer(v, _LIMITS[type_]) for v in values], type=type_)
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([v if _is_text(v) else None for v in values], type=type_)


def _is_text(value: object) -> bool:
    """Whether ``value`` is a string Arrow can hold (no lone surrogate)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(value: object) -> str:
    """``value`` for an error message: its ``repr`` if short, else what kind of value it
    is (a repr of a list nested 5,000 deep, or of 5,000 digits, would itself raise)."""
    if isinstance(value, str):
        if len(value) <= _SHOWN_CHARS:
            return repr(value)
        return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"
    if isinstance(value, bool | float | Decimal) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() <= 64:
            return repr(value)
        return f"an integer of {value.bit_length()} bits"
    return f"a {type(value).__name__}"


def json_error(exc: BaseException) -> str:
    """Why a text could not be decoded as JSON, in a few words."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at char {exc.pos})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8 (byte {exc.start})"
    if isinstance(exc, RecursionError):
        return "not valid JSON (nested too deeply to decode)"
    return f"not valid JSON ({type(exc).__name__})"
