"""Build throughput (images/s) against the plain-Pillow decode ceiling.

    python -m pytest benchmarks/suites/bench_build.py --benchmark-only

On the generated photo set of ``$FASTDIF_BENCH_IMAGES`` images (default
1000; see :mod:`benchmarks.data.photos`), with all cores:

- ``test_decode_ceiling``: the least work a faithful build must do per file,
  :func:`fastdif.io.decode.load_thumbnail` (full decode with the fastest decoder
  for the format, exact area filter to 50 x 50, EXIF orientation; see
  ``python -m benchmarks.scripts.decoders`` for how it compares with other decoders
  and filters) in a bare ``ProcessPoolExecutor`` with as many processes;
  pool start-up included. The build's extra cost is its own process
  management, the parent's array and the search-ready repository.
- ``test_build_warm``: ``fastdif.build`` in this process (modules imported).
- ``test_build_cold``: a fresh interpreter with an empty ``NUMBA_CACHE_DIR``
  running ``import fastdif; fastdif.build(...)``, timed end to end.
- ``test_worker_start``: the CPU seconds one spawned decoding worker takes to
  start (imports included) and stop, decoding nothing; ``extra_info`` has the
  best per-worker figure (``worker_start_cpu_s``).

Every round of the ceiling and of the warm build runs the other one just
before it (untimed), so each timed figure has a partner measured moments
apart; the build/ceiling ratio is the median over those pairs, which keeps it
meaningful on a shared machine whose load changes. CPU seconds (this process
plus its workers) are recorded too: a ratio of CPU time is not moved by
other programs' load, a ratio of wall time is. Figures are in each
benchmark's ``extra_info`` and printed as a summary at the end. Rounds:
``$FASTDIF_BENCH_ROUNDS`` (default 3).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

import fastdif
from benchmarks.data.photos import dataset
from benchmarks.data.truth import image_files
from benchmarks.timing import warm_page_cache
from fastdif.backends import pool
from fastdif.io import decode
from fastdif.io.decode import load_thumbnail

IMAGES = int(os.environ.get("FASTDIF_BENCH_IMAGES", "1000"))
ROUNDS = int(os.environ.get("FASTDIF_BENCH_ROUNDS", "3"))
PROCESSES = os.cpu_count() or 1
PX_SIZE = 50

#: (wall seconds, CPU seconds) of every run, by measurement, in run order.
_runs: dict[str, list[tuple[float, float]]] = {"ceiling": [], "build": [], "cold": []}


def plain_thumbnail(path: str) -> tuple[bytes, tuple[int, int]]:
    """The least per-file work of a build: a 50 x 50 RGB thumbnail and the size."""
    thumb, width, height = load_thumbnail(path, PX_SIZE)
    return thumb.tobytes(), (width, height)


def decode_ceiling(files: list[str], processes: int) -> int:
    """Thumbnail every file in a bare process pool; return how many were made."""
    chunksize = max(1, len(files) // (8 * processes))
    with ProcessPoolExecutor(processes) as pool:
        return sum(1 for _ in pool.map(plain_thumbnail, files, chunksize=chunksize))


def build_warm(folder: str) -> int:
    """``fastdif.build`` of ``folder`` in this process; return the images built."""
    return len(fastdif.build(folder, show_progress=False, processes=PROCESSES))


def _cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _timed(name: str, function, *args):
    """Run ``function(*args)``, appending its wall and CPU seconds to ``_runs[name]``."""
    cpu, start = _cpu_seconds(), time.perf_counter()
    result = function(*args)
    _runs[name].append((time.perf_counter() - start, _cpu_seconds() - cpu))
    return result


def _partner(name: str, function, *args) -> None:
    """A round's untimed setup: the other measurement, recorded (returns None for pedantic)."""
    _timed(name, function, *args)


@pytest.fixture(scope="module")
def photos():
    """The generated set's folder and files, every file read once (page cache warm)."""
    folder = dataset(IMAGES)
    files = image_files(folder)
    warm_page_cache(files)
    return folder, files


def _rate(seconds: list[float], n: int) -> float:
    return round(n / statistics.median(seconds), 1)


def _paired_ratio(index: int) -> float | None:
    """Median of build/ceiling over adjacent runs: wall (index 0) or CPU (index 1)."""
    pairs = zip(_runs["build"], _runs["ceiling"], strict=False)
    ratios = [b[index] / c[index] for b, c in pairs]
    return round(statistics.median(ratios), 3) if ratios else None


def _summary(n: int) -> dict:
    out: dict = {"images": n, "processes": PROCESSES}
    for name in ("ceiling", "build", "cold"):
        if _runs[name]:
            out[f"{name}_images_per_s"] = _rate([wall for wall, _ in _runs[name]], n)
    out["build_over_ceiling_wall"] = _paired_ratio(0)
    out["build_over_ceiling_cpu"] = _paired_ratio(1)
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    return out


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    """Print the images/s and build/ceiling ratios once the module's benchmarks ran."""
    yield
    if _runs["build"]:
        figures = _summary(IMAGES)
        text = ", ".join(f"{key}={value}" for key, value in figures.items())
        # Output is captured during teardown; this line is for the person running it.
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\nbuild vs decode ceiling: {text}")


def test_decode_ceiling(benchmark, photos):
    folder, files = photos
    made = benchmark.pedantic(
        lambda: _timed("ceiling", decode_ceiling, files, PROCESSES),
        setup=lambda: _partner("build", build_warm, folder),
        rounds=ROUNDS,
        iterations=1,
    )
    assert made == len(files)
    benchmark.extra_info.update(
        start_method=multiprocessing.get_start_method(), **_summary(len(files))
    )


def test_build_warm(benchmark, photos):
    folder, files = photos
    built = benchmark.pedantic(
        lambda: _timed("build", build_warm, folder),
        setup=lambda: _partner("ceiling", decode_ceiling, files, PROCESSES),
        rounds=ROUNDS,
        iterations=1,
    )
    assert built == len(files)
    benchmark.extra_info.update(_summary(len(files)))


COLD = """
import fastdif, sys
dif = fastdif.build(sys.argv[1], show_progress=False, processes=int(sys.argv[2]))
assert len(dif) == int(sys.argv[3]), len(dif)
"""


def test_build_cold(benchmark, photos, tmp_path):
    folder, files = photos
    rounds = max(1, ROUNDS - 1)

    def cold(k: int) -> None:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / f"numba-{k}")}
        command = [sys.executable, "-c", COLD, folder, str(PROCESSES), str(len(files))]
        subprocess.run(command, env=env, check=True, cwd=tmp_path)

    counter = iter(range(rounds))
    benchmark.pedantic(lambda: _timed("cold", cold, next(counter)), rounds=rounds, iterations=1)
    benchmark.extra_info.update(_summary(len(files)))


def worker_start_cpu(workers: int) -> float:
    """CPU seconds per decoding worker to start, report ready and stop, decoding nothing."""
    context = multiprocessing.get_context("spawn")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = [
        pool._Worker(context, PX_SIZE, decode.FILE_TIME_LIMIT, decode.decode_file)
        for _ in range(workers)
    ]
    for worker in started:
        assert worker.conn.recv() is None  # ready
    for worker in started:
        worker.stop(kill=False)  # reaped: its CPU time is counted in RUSAGE_CHILDREN
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return used / workers


def test_worker_start(benchmark):
    cpu: list[float] = []
    benchmark.pedantic(lambda: cpu.append(worker_start_cpu(PROCESSES)), rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        workers=PROCESSES,
        worker_start_cpu_s=round(min(cpu), 3),
        load_average_1min=round(os.getloadavg()[0], 2),
    )
