"""The collector's JSONB price maps ``{"<price_cents>": size}``, read and written.

Reading never raises anything but :class:`PriceMapError`: a map that cannot be read marks
its snapshot row (``map_error``, :func:`kalshi_pipeline.sources.raw.snapshot_table`) and
cleaning decides what to do with the market.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from kalshi_pipeline.sources.raw_values import INTEGER_TEXT, bounded_int, json_error, shown


class PriceMapError(ValueError):
    """A stored price map that is not ``{"<price_cents>": integer size}``."""


def decode_price_map(raw: str | bytes | Mapping[str, Any] | None) -> list[tuple[int, int | None]]:
    """Decode one collector price map into ``[(price_cents, size), ...]``.

    Accepts JSON text or an already parsed mapping; ``None`` is an empty book side.
    A key must be a plain decimal integer (``"64"``, ``"-3"``): ``"6_3"``, ``" 64"`` or
    ``"1e2"``, which Python's ``int()`` would take, make the map malformed. A size must be
    an integer (``5`` or ``5.0``) or null. Range checks are not done here: they are
    repairs counted by the cleaning step, which knows the session, market and sequence
    number. So that the cleaning step can see them, a null size stays ``None`` (a missing
    size), and a price or size too large for its column is clamped to the column's limit
    (``PRICE_LIMIT``, ``SIZE_LIMIT``), far outside any valid value, instead of failing
    the whole session with an overflow (a literal of 5,000 digits too). Any other text
    that cannot be decoded (nested too deeply, not UTF-8) raises :class:`PriceMapError`:
    no input raises anything else. So does a price given twice (a JSON key repeated, or
    ``"29"`` beside ``"029"``): the book cannot know which size is meant.
    """
    if raw is None:
        return []
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw, parse_int=bounded_int, object_pairs_hook=_unique_keys)
        except PriceMapError:
            raise  # a key given twice (_unique_keys)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, depth
            raise PriceMapError(json_error(exc)) from None
        if raw is None:  # JSON null, like SQL NULL: no map stored for this side
            return []
    if not isinstance(raw, Mapping):
        raise PriceMapError(f"expected an object of price -> size, got {type(raw).__name__}")
    levels = []
    for key, size in raw.items():
        if not isinstance(key, str) or not INTEGER_TEXT.fullmatch(key):
            raise PriceMapError(f"price key {shown(key)} is not an integer")
        levels.append((_clamp(bounded_int(key), PRICE_LIMIT), _size(key, size)))
    levels.sort(key=lambda level: level[0])
    prices = [price for price, _ in levels]
    if len(set(prices)) != len(prices):  # "29" and "029": which size is the book's?
        twice = next(a for a, b in zip(prices, prices[1:], strict=False) if a == b)
        raise PriceMapError(f"price {twice} is given twice, with different keys")
    return levels


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a key given twice (JSON keeps the last one
    silently) makes the map malformed."""
    found = dict(pairs)
    if len(found) != len(pairs):
        twice = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
        raise PriceMapError(f"price key {shown(twice)} is given twice")
    return found


PRICE_LIMIT = 2**31 - 1  # the map's int32 price column
SIZE_LIMIT = 2**63 - 1  # the map's int64 size column


def _clamp(value: int, limit: int) -> int:
    return max(-limit, min(value, limit))


def _size(key: str, size: Any) -> int | None:
    if size is None:
        return None
    if isinstance(size, float) and math.isfinite(size) and size == int(size):
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int):
        raise PriceMapError(f"size {shown(size)} at price {shown(key)} is not an integer")
    return _clamp(size, SIZE_LIMIT)


def encode_price_map(levels: list[tuple[int, int]] | None) -> str:
    """The collector's JSON form of a price map (keys are price strings)."""
    return json.dumps(
        {str(p): None if s is None else int(s) for p, s in (levels or [])}, separators=(",", ":")
    )
