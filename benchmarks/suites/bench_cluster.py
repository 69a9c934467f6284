"""Dask overhead: the same build and search on a LocalCluster and locally, on the same cores.

    python -m pytest benchmarks/suites/bench_cluster.py --benchmark-only

The cluster has one single-threaded worker process per core
(``LocalCluster(n_workers=cores, threads_per_worker=1)``); the local runs
use all cores (``processes=None``). Measured:

- ``test_build``: the generated photo set of ``$FASTDIF_BENCH_IMAGES``
  images (default 1000; see :mod:`benchmarks.data.photos`).
- ``test_search_photo_set``: ``"similar"``, rotate on, same_dim on, over
  that photo set's repository (saved, then loaded memory-mapped): many
  small sets of equal dimensions.
- ``test_search``: ``"similar"``, rotate on, over
  ``$FASTDIF_BENCH_CLUSTER_THUMBNAILS`` photo-like thumbnails (default
  100,000; :mod:`benchmarks.data.thumbnails`), read by the workers from a
  memory-mapped ``.npy`` file (``mapped``) or scattered to them from
  memory (``scattered``).

Every timed cluster run has its local partner run just before it (untimed
by pytest-benchmark, recorded here), so each ratio cluster/local is taken
over runs moments apart; the median ratio per measurement is printed at the
end. Rounds: ``$FASTDIF_BENCH_ROUNDS`` (default 3).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest

import fastdif
from benchmarks.data.photos import dataset
from benchmarks.data.thumbnails import thumbnail_file as cluster_thumbnail_file
from benchmarks.data.truth import image_files

IMAGES = int(os.environ.get("FASTDIF_BENCH_IMAGES", "1000"))
THUMBNAILS = int(os.environ.get("FASTDIF_BENCH_CLUSTER_THUMBNAILS", "100000"))
ROUNDS = int(os.environ.get("FASTDIF_BENCH_ROUNDS", "3"))
CORES = os.cpu_count() or 1

distributed = pytest.importorskip("distributed", reason='needs the dask extra: "fastdif[dask]"')

#: (local seconds, cluster seconds) per round, by measurement.
_pairs: dict[str, list[tuple[float, float]]] = {}


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=CORES, threads_per_worker=1, dashboard_address=None, silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    """Print the median cluster/local ratio of each measurement at the end."""
    yield
    lines = []
    for name, pairs in _pairs.items():
        local = statistics.median(a for a, _ in pairs)
        dask = statistics.median(b for _, b in pairs)
        ratio = statistics.median(b / a for a, b in pairs)
        lines.append(
            f"{name}: local {local:.2f} s, LocalCluster {dask:.2f} s, "
            f"ratio {ratio:.2f} (median of {len(pairs)} pairs)"
        )
    if lines:
        load = os.getloadavg()[0]
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\nDask overhead on {CORES} cores (load {load:.1f}):\n  " + "\n  ".join(lines))


def _paired(benchmark, name, local, dask):
    """Benchmark ``dask()`` with ``local()`` timed just before each round."""
    before: list[float] = []

    def setup():
        start = time.perf_counter()
        local()
        before.append(time.perf_counter() - start)

    dask()  # warm: workers import fastdif and load the compiled kernels
    benchmark.pedantic(dask, setup=setup, rounds=ROUNDS, iterations=1)
    times = benchmark.stats.stats.data
    _pairs[name] = list(zip(before, times, strict=True))
    benchmark.extra_info.update(
        local_seconds=before,
        cluster_over_local=statistics.median(b / a for a, b in _pairs[name]),
    )


def test_build(benchmark, client):
    folder = dataset(IMAGES)
    n = len(image_files(folder))

    def local():
        assert len(fastdif.build(folder, show_progress=False)) == n

    def dask():
        assert len(fastdif.build(folder, show_progress=False, scheduler=client)) == n

    _paired(benchmark, f"build of {n} files", local, dask)


def test_search_photo_set(benchmark, client, tmp_path):
    folder = dataset(IMAGES)
    fastdif.build(folder, show_progress=False).save(tmp_path / "photos.fastdif")
    dif = fastdif.load(tmp_path / "photos.fastdif")

    def local():
        fastdif.search(dif, "similar", show_progress=False)

    def dask():
        fastdif.search(dif, "similar", show_progress=False, scheduler=client)

    _paired(benchmark, f"search of the {len(dif)} photos' repository (mapped)", local, dask)


@pytest.fixture(scope="module")
def thumbnail_file():
    """The thumbnails as a .npy file in the benchmark cache (written once)."""
    return cluster_thumbnail_file(THUMBNAILS)


@pytest.mark.parametrize("source", ["mapped", "scattered"])
def test_search(benchmark, client, thumbnail_file, source):
    mapped = np.load(thumbnail_file, mmap_mode="r")
    dif = fastdif.from_arrays(mapped if source == "mapped" else np.array(mapped))
    fastdif.search(dif, "similar", show_progress=False)  # compile

    def local():
        fastdif.search(dif, "similar", show_progress=False)

    def dask():
        se = fastdif.search(dif, "similar", show_progress=False, scheduler=client)
        benchmark.extra_info["tasks"] = se.stats["process"]["search"]["dask"]["tasks"]

    _paired(benchmark, f"search of {THUMBNAILS} thumbnails ({source})", local, dask)
