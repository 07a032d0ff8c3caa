"""The shared column helpers give what Arrow's own kernels give, for a few rows (looked
up one by one) and for many (handed to Arrow)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kalshi_pipeline.market.cleaning.columns import among, market_codes, market_names, positions

TICKERS = sorted(["KX-A", "KX-B", "KX-D", "KX-É"])


def _drawn(values: list, rows: int) -> pa.ChunkedArray:
    """A string column of ``rows`` values drawn from ``values`` (seeded by ``rows``)."""
    drawn = np.random.default_rng(rows).integers(len(values), size=rows)
    return pa.chunked_array([pa.array([values[i] for i in drawn], pa.string())])


@pytest.mark.parametrize("rows", [0, 1, 5, 32, 33, 200])
def test_among_is_arrows_is_in_with_nulls_as_no(rows):
    column = _drawn([None, "KX-A", "KX-B", "KX-C", "KX-D", "KX-É", "kx-a", "KX-A "], rows)
    expected = pc.is_in(column, value_set=pa.array(TICKERS)).fill_null(False)
    assert among(column, TICKERS).tolist() == expected.to_pylist()
    assert not among(column, []).any()


@pytest.mark.parametrize("rows", [0, 1, 32, 33, 200])
def test_market_codes_of_few_rows_and_many_agree(rows):
    rng = np.random.default_rng(rows)
    code = {ticker: i for i, ticker in enumerate(TICKERS)}
    tickers = [TICKERS[i] for i in rng.integers(len(TICKERS), size=rows)]
    codes = market_codes(pa.chunked_array([pa.array(tickers, pa.string())]), code)
    assert codes.dtype == np.int32
    assert codes.tolist() == [code[t] for t in tickers]


@pytest.mark.parametrize("rows", [0, 1, 5, 32, 33, 200])
def test_positions_is_arrows_index_in_with_others_and_nulls_as_minus_one(rows):
    column = _drawn([None, "add", "remove", "update", "REMOVE", "explode", " add", ""], rows)
    wanted = ("add", "remove", "update")
    expected = pc.index_in(column, value_set=pa.array(wanted)).fill_null(-1)
    found = positions(column, wanted)
    assert found.dtype == np.int64
    assert found.tolist() == expected.to_pylist()


@pytest.mark.parametrize("rows", [0, 1, 7])
def test_market_names_are_the_tickers_of_the_codes(rows):
    codes = np.random.default_rng(rows).integers(len(TICKERS), size=rows).astype(np.int32)
    names = market_names(TICKERS, codes)
    assert names.dtype == object and names.tolist() == [TICKERS[c] for c in codes]
