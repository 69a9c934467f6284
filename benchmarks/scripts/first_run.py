"""The first run against the hundredth: Numba's cache empty (cold) and filled (warm).

    python -m benchmarks.scripts.first_run            # both tables below
    python -m benchmarks.scripts.first_run kernels    # only the per-kernel table
    python -m benchmarks.scripts.first_run runs       # only the API and CLI table

- Per kernel and thumbnail type: seconds to compile it in a new interpreter
  with an empty ``NUMBA_CACHE_DIR`` (``compile``), then to load it from the
  filled cache in another (``load``), for the argument types a local search
  passes (:func:`fastdif.engine.warmup.argument_types`, read-only arrays);
  and ``import numba`` alone.
- API and CLI, every similarity, default options, on the generated photo
  set of 200 images (:mod:`benchmarks.data.photos`): wall seconds of a new
  interpreter with an empty ``NUMBA_CACHE_DIR`` (cold) and right after with
  the one it filled (warm), alternated, best of ``$FASTDIF_BENCH_ROUNDS``
  (default 3). The API run builds (``processes=1``) and searches; the CLI
  runs ``python -m fastdif DIR --no-cache -q``.

:func:`first_run_seconds` gives the CLI pair for :mod:`benchmarks.regression`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.data.photos import dataset

ROUNDS = int(os.environ.get("FASTDIF_BENCH_ROUNDS", "3"))
SIMILARITIES = ("duplicates", "similar")
KERNELS = ("rotation_hashes", "pair_mse", "block_means", "match_ranges")

_ONE_KERNEL = """
import time, json, sys
start = time.perf_counter()
import numpy as np
from fastdif.engine import kernels, warmup
imported = time.perf_counter()
types = warmup.argument_types(np.dtype(sys.argv[2]), True)
getattr(kernels, sys.argv[1]).compile(types[sys.argv[1]])
print(json.dumps({"import": imported - start, "kernel": time.perf_counter() - imported}))
"""

_IMPORT_NUMBA = """
import time, json
start = time.perf_counter()
import numba
print(json.dumps({"import": time.perf_counter() - start}))
"""

_API = """
import time, json, sys
start = time.perf_counter()
import fastdif
dif = fastdif.build(sys.argv[1], show_progress=False, processes=1)
built = time.perf_counter()
fastdif.search(dif, similarity=sys.argv[2], show_progress=False)
end = time.perf_counter()
print(json.dumps({"total": end - start, "search": end - built}))
"""


def _python(code: str, args, numba_cache) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def kernel_seconds(name: str, dtype: str) -> tuple[float, float]:
    """(compile, load) seconds of kernel ``name`` for thumbnails of ``dtype``, new interpreters."""
    with tempfile.TemporaryDirectory() as cache:
        cold = _python(_ONE_KERNEL, (name, dtype), cache)["kernel"]
        warm = _python(_ONE_KERNEL, (name, dtype), cache)["kernel"]
    return cold, warm


def _cli_seconds(folder: str, numba_cache: str, out: str, similarity: str) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache}
    command = [sys.executable, "-m", "fastdif", folder, "-Z", out, "--no-cache", "-q"]
    start = time.perf_counter()
    subprocess.run(
        command + ["-s", similarity], env=env, check=True, cwd=out, timeout=600, capture_output=True
    )
    return time.perf_counter() - start


def _api_seconds(folder: str, numba_cache: str, similarity: str) -> float:
    return _python(_API, (folder, similarity), numba_cache)["total"]


def _pair(run, rounds: int) -> tuple[float, float]:
    """Best cold and best warm of ``run(numba_cache)``, alternated, each cold with a new cache.

    Between the two, whatever compile the cold run left running in the
    background ends (:func:`fastdif.engine.warmup.wait_for_background`): the
    warm run is the next run minutes later, on a quiet machine.
    """
    from fastdif.engine import warmup

    colds, warms = [], []
    with tempfile.TemporaryDirectory() as root:
        for k in range(rounds):
            cache = os.path.join(root, f"numba-{k}")
            colds.append(run(cache))
            if not warmup.wait_for_background(cache, timeout=600):
                raise RuntimeError("the background compile did not end")
            warms.append(run(cache))
    return min(colds), min(warms)


def first_run_seconds(
    similarity: str, images: int = 200, rounds: int = ROUNDS
) -> tuple[float, float]:
    """(cold, warm) wall seconds of a CLI run on ``images`` generated photos.

    Cold: a new interpreter with an empty ``NUMBA_CACHE_DIR``; warm: the next
    run, with the cache the cold one filled (once the compile it left running
    in the background has ended). Best of ``rounds`` pairs (:data:`ROUNDS`:
    ``benchmarks.regression`` takes one).
    """
    folder = dataset(images)
    with tempfile.TemporaryDirectory() as out:
        return _pair(lambda cache: _cli_seconds(folder, cache, out, similarity), rounds)


def api_seconds(similarity: str, images: int = 200) -> tuple[float, float]:
    """(cold, warm) wall seconds of a new interpreter that builds and searches ``images`` photos."""
    folder = dataset(images)
    return _pair(lambda cache: _api_seconds(folder, cache, similarity), ROUNDS)


def print_kernels() -> None:
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
    numba_import = min(
        _python(_IMPORT_NUMBA, (), tempfile.gettempdir())["import"] for _ in range(3)
    )
    print(f"import numba: {numba_import:.2f} s\n")
    print("| kernel | thumbnails | compile (s) | load (s) |")
    print("|---|---|---|---|")
    for name in KERNELS:
        for dtype in ("float32", "uint8"):
            cold, warm = kernel_seconds(name, dtype)
            print(f"| {name} | {dtype} | {cold:.2f} | {warm:.3f} |", flush=True)


def print_runs(images: int = 200) -> None:
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
    print(f"\n| {images} images | cold (s) | warm (s) | cold - warm (s) |")
    print("|---|---|---|---|")
    for similarity in SIMILARITIES:
        for what, measure in (("API", api_seconds), ("CLI", first_run_seconds)):
            cold, warm = measure(similarity, images)
            row = f"| {what} {similarity} | {cold:.2f} | {warm:.2f} | {cold - warm:.2f} |"
            print(row, flush=True)
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; print the tables asked for (both by default)."""
    tables = ("kernels", "runs")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="*", help=f"any of {', '.join(tables)} (default: both)")
    which = parser.parse_args(argv).tables or list(tables)
    if set(which) - set(tables):
        parser.error(f"tables are {', '.join(tables)}")
    if "kernels" in which:
        print_kernels()
    if "runs" in which:
        print_runs()


if __name__ == "__main__":
    main()
