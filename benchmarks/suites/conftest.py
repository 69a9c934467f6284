"""Shared fixtures of the benchmark suites (run: python -m pytest benchmarks/suites)."""

import numpy as np
import pytest

from benchmarks.data.thumbnails import photo_thumbnails


@pytest.fixture(scope="session")
def thumbnails():
    """``thumbnails(n)``: n photo-like uint8 thumbnails (10% near-duplicates), in RAM."""
    cache = {}

    def get(n: int) -> np.ndarray:
        if n not in cache:
            cache[n] = np.ascontiguousarray(photo_thumbnails(n))
        return cache[n]

    return get
