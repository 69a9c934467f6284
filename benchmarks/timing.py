"""Timing helpers shared by the suites, the scripts and the regression check."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np


def best_of(fn, repeat: int = 5) -> float:
    """Shortest wall time of ``repeat`` calls of ``fn``."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def ratio(fn, baseline, repeat: int = 7) -> float:
    """Best time of ``fn`` over best time of ``baseline``, the two run alternately.

    Alternating puts both under the same load when the machine is busy.
    """
    times, base = np.inf, np.inf
    for _ in range(repeat):
        times = min(times, best_of(fn, 1))
        base = min(base, best_of(baseline, 1))
    return times / base


def warm_page_cache(files: list[str]) -> None:
    """Read every file once, so no run pays for the disk and the first run is not penalised."""
    for path in files:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


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
