"""The live outline's centre: the median of the first rows' numbers, as ``np.median``."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from kalshi_pipeline.market.live_outline import CENTER_ROWS, LiveOutline
from kalshi_pipeline_tests.factories import make_session


def _rows(numbers) -> pa.Table:
    return pa.table({"sequence_number": pa.array(numbers, pa.int64())})


@pytest.mark.parametrize("spread", [10, 2**40, 2**62])
def test_the_centre_is_numpys_median_of_the_first_rows_bit_for_bit(spread):
    rng = np.random.default_rng(7)
    outline, seen = LiveOutline(make_session().info, Counter()), []
    for size in rng.integers(0, 30, 400):  # past CENTER_ROWS: later rows leave it alone
        numbers = rng.integers(-spread, spread, size).tolist()
        outline.add(_rows(numbers), _rows([]), set())
        seen.extend(numbers)
        if seen:
            expected = np.float64(np.median(np.array(seen[:CENTER_ROWS], np.int64)))
            assert np.float64(outline.now().center).tobytes() == expected.tobytes()
    assert len(seen) > CENTER_ROWS
