"""Search speed: seconds and pairs/s, classic path (<= 5,000) and chunked path.

Searches run over photo-like thumbnails (:mod:`benchmarks.data.thumbnails`, 10%
near-duplicates) held as uint8 in RAM, so decoding is not measured here.
"""

import numpy as np
import pytest

import fastdif

SIZES = [1000, 5000, 6000, 20000, 50000]


@pytest.mark.parametrize("rotate", [True, False], ids=["rotate", "no-rotate"])
@pytest.mark.parametrize("similarity", ["duplicates", "similar"])
@pytest.mark.parametrize("n", SIZES)
def test_search(benchmark, thumbnails, n, similarity, rotate):
    dif = fastdif.from_arrays(thumbnails(n))
    fastdif.search(dif, similarity=similarity, rotate=rotate, show_progress=False)  # compile
    se = benchmark.pedantic(
        fastdif.search,
        args=(dif,),
        kwargs={"similarity": similarity, "rotate": rotate, "show_progress": False},
        rounds=3,
        iterations=1,
    )
    seconds = benchmark.stats.stats.min
    pairs = n * (n - 1) / 2
    benchmark.extra_info.update(
        path="classic" if n <= 5000 else "chunked",
        pairs_per_s=pairs / seconds,
        groups=len(se.result),
        lower_quality=len(se.lower_quality),
    )
    assert np.isfinite(seconds)
