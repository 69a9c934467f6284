"""First call and first command-line run, with Numba's cache cold and warm.

    python -m pytest benchmarks/suites/bench_first_call.py --benchmark-only

- ``test_first_call``: a new interpreter imports fastdif and searches 200
  thumbnails (``from_arrays``), with an empty ``NUMBA_CACHE_DIR`` (cold:
  the search compiles its kernels) or a filled one (warm: it loads them).
- ``test_cli_cold_and_warm``: ``python -m fastdif DIR --no-cache -q`` on the
  generated photo set of 200 images (:mod:`benchmarks.data.photos`), end to end:
  each round runs it once with an empty ``NUMBA_CACHE_DIR`` (cold, as in a
  fresh environment: the kernels compile while the build decodes, see
  :mod:`fastdif.engine.warmup`) and right after with a filled one (warm). The
  figure of merit is the median of those paired differences, cold minus
  warm: on a shared machine, whose load changes, each pair is measured
  moments apart. CPU seconds (the run and its decoding processes) are
  recorded too. Rounds: ``$FASTDIF_BENCH_ROUNDS`` (default 3).
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import pytest

from benchmarks.data.photos import dataset
from benchmarks.timing import run_python

ROUNDS = int(os.environ.get("FASTDIF_BENCH_ROUNDS", "3"))
CLI_IMAGES = 200

CODE = """
import time, json
start = time.perf_counter()
import numpy as np
import fastdif
imported = time.perf_counter()
rng = np.random.default_rng(0)
dif = fastdif.from_arrays(rng.integers(0, 256, (200, 50, 50, 3), dtype=np.uint8))
fastdif.search(dif, similarity="similar", show_progress=False)
searched = time.perf_counter()
fastdif.search(dif, similarity="duplicates", show_progress=False)
print(json.dumps({"import": imported - start, "first_search": searched - imported,
                  "duplicates": time.perf_counter() - searched}))
"""


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_first_call(benchmark, tmp_path_factory, cache):
    folder = tmp_path_factory.getbasetemp() / "numba-cache"
    env = {"NUMBA_CACHE_DIR": str(folder)}
    if cache == "warm":
        run_python(CODE, env)  # fill the cache
    runs = []

    def once():
        if cache == "cold":
            for item in folder.glob("**/*.nb*"):
                item.unlink()
        runs.append(json.loads(run_python(CODE, env)))

    benchmark.pedantic(once, rounds=2, iterations=1)
    best = min(runs, key=lambda r: r["import"] + r["first_search"])
    benchmark.extra_info.update(best)


def _cli(folder: str, numba_cache, out) -> tuple[float, float]:
    """Wall and CPU seconds of one ``python -m fastdif folder`` in a new interpreter."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    command = [sys.executable, "-m", "fastdif", folder, "-Z", str(out), "--no-cache", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=out)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def test_cli_cold_and_warm(benchmark, tmp_path):
    folder = dataset(CLI_IMAGES)
    out = tmp_path / "out"
    out.mkdir()
    warm_cache = tmp_path / "numba-warm"
    _cli(folder, warm_cache, out)  # fill the warm cache
    pairs = []

    def once():
        cold = _cli(folder, tmp_path / f"numba-cold-{len(pairs)}", out)
        pairs.append((cold, _cli(folder, warm_cache, out)))

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        {
            "images": CLI_IMAGES,
            "cold_seconds": [round(cold[0], 2) for cold, _ in pairs],
            "warm_seconds": [round(warm[0], 2) for _, warm in pairs],
            "cold_cpu_seconds": [round(cold[1], 2) for cold, _ in pairs],
            "warm_cpu_seconds": [round(warm[1], 2) for _, warm in pairs],
            "cold_minus_warm_seconds": round(
                statistics.median(cold[0] - warm[0] for cold, warm in pairs), 2
            ),
        }
    )
