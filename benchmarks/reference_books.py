"""The plain per-event reference for book reconstruction: obviously right, slow.

It replays the cleaned events one at a time on dict books and reads off the same columns
as :func:`kalshi_pipeline.market.books.books_from_events`; the fast path must equal it
exactly. ``benchmarks/bench_reconstruction.py`` times the two on the same events, and
``kalshi_pipeline_tests/market/test_books.py`` checks they agree; it lives here, beside the
benchmark, so that no benchmark imports the tests.
"""

from __future__ import annotations

import numpy as np

from kalshi_pipeline.market.books import empty_replay_columns
from kalshi_pipeline.market.cleaning import CleanEvents
from kalshi_pipeline.sources.raw import LEVELS


def reference_books(events: CleanEvents, top_levels: int = 5) -> dict[str, np.ndarray]:
    out = empty_replay_columns(len(events), top_levels)
    books: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
    for i in range(len(events)):
        market = int(events.market[i])
        if events.is_snapshot[i]:
            row = events.snapshot_books[events.snapshot_index[i]]
            books[market] = tuple(
                {
                    p: int(row[side * LEVELS + p - 1])
                    for p in range(1, LEVELS + 1)
                    if row[side * LEVELS + p - 1] > 0
                }
                for side in (0, 1)
            )
        else:
            level = int(events.level[i])
            side, price = divmod(level, LEVELS)
            book = books[market][side]
            size = int(events.new_size[i])
            if size > 0:
                book[price + 1] = size
            else:
                book.pop(price + 1, None)
        for name, book in zip(("yes", "no"), books[market], strict=True):
            prices = sorted(book, reverse=True)
            out[f"best_{name}_bid"][i] = prices[0] if prices else 0
            for j, price in enumerate(prices[:top_levels]):
                out[f"{name}_bid_depth"][i, j] = book[price]
                out[f"{name}_bid_prices"][i, j] = price
            out[f"{name}_bid_volume"][i] = sum(book.values())
    return out
