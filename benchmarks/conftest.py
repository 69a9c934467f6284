"""Shared fixtures for the benchmark suites (run: python -m pytest benchmarks)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.thumbnails import photo_thumbnails


@pytest.fixture(scope="session")
def thumbnails():
    """``thumbnails(n)``: n photo-like uint8 thumbnails (10% near-duplicates), in RAM."""
    cache = {}

    def get(n: int) -> np.ndarray:
        if n not in cache:
            cache[n] = np.ascontiguousarray(photo_thumbnails(n))
        return cache[n]

    return get


def run_python(code: str, env: dict | None = None) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (raises on failure)."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=True,
        timeout=3600,
    )
    return proc.stdout
