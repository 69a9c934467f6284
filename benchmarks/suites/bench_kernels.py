"""The pairwise MSE kernel against the matrix-product bound on this machine.

A pair of D-value thumbnails costs 3 D flops as squared differences (subtract,
multiply, add) and 2 D flops as a dot product in BLAS ``X @ X.T``. The kernel
figures below are *effective* GFLOP/s: 3 D flops per pair, over all N(N-1)/2
pairs, whatever the bounds skipped. "full" forces every exact sum (a threshold
above every MSE); "similar" is the real search with its bounds.
"""

import numpy as np
import pytest

from benchmarks.timing import best_of
from fastdif.engine import matching as search_module
from fastdif.model import Criteria

N = 1500


@pytest.fixture(scope="module")
def data(thumbnails):
    tensors = thumbnails(N)
    return tensors, np.full((N, 2), tensors.shape[1], np.int64)


def test_blas_bound(benchmark, data):
    tensors, _ = data
    flat = tensors.reshape(N, -1).astype(np.float32)
    benchmark.pedantic(lambda: flat @ flat.T, rounds=3, iterations=1)
    flops = 2.0 * N * N * flat.shape[1]
    benchmark.extra_info["gflops"] = flops / benchmark.stats.stats.min / 1e9


@pytest.mark.parametrize("mode", ["full", "similar"])
@pytest.mark.parametrize("rotate", [False, True], ids=["no-rotate", "rotate"])
def test_kernel_vs_blas(benchmark, data, mode, rotate):
    tensors, shapes = data
    flat = tensors.reshape(N, -1).astype(np.float32)
    max_mse = 1e9 if mode == "full" else 5.0
    criteria = Criteria(max_mse, rotate, True)
    search_module.find_matches(tensors[:50], shapes[:50], criteria)  # compile
    benchmark.pedantic(
        search_module.find_matches,
        args=(tensors, shapes, criteria),
        rounds=3,
        iterations=1,
    )
    kernel = benchmark.stats.stats.min
    blas = best_of(lambda: flat @ flat.T)
    pairs = N * (N - 1) / 2
    size = flat.shape[1]
    benchmark.extra_info.update(
        effective_gflops=3.0 * size * pairs * (4 if rotate else 1) / kernel / 1e9,
        blas_gflops=2.0 * N * N * size / blas / 1e9,
        kernel_over_blas_time=kernel / blas,
    )
