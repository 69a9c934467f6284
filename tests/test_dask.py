"""Build and search on a Dask LocalCluster (2 worker processes): the local result, exactly."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import images
import numpy as np
import pytest
from commands import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import (
    THRESHOLDS,
    image_specs,
    pick_threshold,
    planted_images,
    reference_groups,
    reference_matches,
    reference_mse_matrix,
)

import fastdif
from fastdif.backends import dask as cluster

pytestmark = [pytest.mark.slow, pytest.mark.dask]

# The ``dask`` extra is part of the test extras, so this runs wherever the
# README's test command ran; it skips only in a deliberately Dask-free run.
distributed = pytest.importorskip("distributed", reason="Dask is not installed")
pytest.importorskip("dask")

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three folders of photos with byte copies, re-encodes, rotations and
    half-size copies inside and across folders, and one broken file."""
    root = tmp_path_factory.mktemp("photos")
    for k in range(30):
        folder = root / f"d{k % 3}"
        original = images.save_photo(k, folder / f"p{k:02d}.jpg", 160, 120)
        if k % 3 == 0:
            images.reencode(original, root / f"d{(k + 1) % 3}" / f"q{k:02d}.jpg", 80)
        if k % 4 == 0:
            images.rotated(original, folder / f"r{k:02d}.png", 90)
        if k % 5 == 0:
            images.copy_bytes(original, root / "d0" / f"c{k:02d}.jpg")
        if k % 6 == 0:
            images.resized(original, folder / f"h{k:02d}.png", 0.5)
    (root / "d1" / "broken.jpg").write_bytes(b"not an image")
    return root


def _search(dif, similarity, rotate=True, same_dim=True, **kwargs):
    return fastdif.search(
        dif, similarity, rotate=rotate, same_dim=same_dim, show_progress=False, **kwargs
    )


def _same_search(local, dist):
    assert dist.result == local.result
    assert dist.lower_quality == local.lower_quality
    a, b = local.stats["process"]["search"], dist.stats["process"]["search"]
    assert b["matches_found"] == a["matches_found"]
    assert b["pairs_compared_exactly"] == a["pairs_compared_exactly"]


# --------------------------------------------------------------------------- same results


@pytest.mark.parametrize("in_folder", [False, True])
def test_distributed_build_gives_the_local_repository(client, photos, in_folder):
    local = fastdif.build(photos, in_folder=in_folder, show_progress=False, processes=1)
    dist = fastdif.build(photos, in_folder=in_folder, show_progress=False, scheduler=client)

    assert dist.paths == local.paths
    assert np.array_equal(dist.tensors, local.tensors)
    assert dist.tensors.dtype == np.float32
    assert np.array_equal(dist.shapes, local.shapes)
    assert np.array_equal(dist.file_sizes, local.file_sizes)
    assert dist.groups == local.groups and dist.folders == local.folders
    assert dist.stats["invalid_files"] == local.stats["invalid_files"]
    assert list(dist.stats["invalid_files"]["logs"]) == [str(photos / "d1" / "broken.jpg")]
    build_stats = dist.stats["process"]["build"]
    assert build_stats["dask"]["workers"] == 2
    assert build_stats["dask"]["tasks"] >= 1
    assert build_stats["parameters"]["processes"] is None


@pytest.mark.parametrize("in_folder", [False, True])
@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("similarity", ["duplicates", "similar", 40.0])
def test_distributed_search_gives_the_local_result(client, photos, in_folder, rotate, similarity):
    dif = fastdif.build(photos, in_folder=in_folder, show_progress=False, processes=1)
    local = _search(dif, similarity, rotate, processes=1)
    assert local.result  # the data has matches for every setting

    # Tiles of 5 images: many tasks per group, off-diagonal tiles included.
    dist = _search(dif, similarity, rotate, scheduler=client, chunksize=5)

    _same_search(local, dist)
    assert dist.stats["process"]["search"]["parameters"]["processes"] is None
    tasks = dist.stats["process"]["search"]["dask"]["tasks"]
    assert tasks > 3 if similarity != "duplicates" else tasks >= 1


def test_distributed_search_without_same_dim_and_one_tile(client, photos):
    dif = fastdif.build(photos, show_progress=False, processes=1)
    local = _search(dif, "similar", same_dim=False, processes=1)
    # Default chunksize: every group fits one tile.
    dist = _search(dif, "similar", same_dim=False, scheduler=client)
    _same_search(local, dist)
    assert dist.stats["process"]["search"]["parameters"]["chunksize"] >= len(dif)


def test_scattered_and_memory_mapped_thumbnails_give_the_same_result(client, tmp_path):
    rng = np.random.default_rng(7)
    tensors = rng.integers(0, 256, (300, 12, 12, 3), dtype=np.uint8)
    noise = rng.integers(-3, 4, (150, 12, 12, 3))
    tensors[150:] = np.clip(tensors[:150].astype(int) + noise, 0, 255)
    tensors[10] = np.rot90(tensors[20])
    np.save(tmp_path / "t.npy", tensors)
    local = _search(fastdif.from_arrays(tensors), 6.0, processes=1)
    assert len(local.result) > 100

    scattered = _search(fastdif.from_arrays(tensors), 6.0, scheduler=client, chunksize=64)
    mapped = np.load(tmp_path / "t.npy", mmap_mode="r")
    by_path = _search(fastdif.from_arrays(mapped), 6.0, scheduler=client, chunksize=64)

    _same_search(local, scattered)
    _same_search(local, by_path)
    assert scattered.stats["process"]["search"]["dask"]["thumbnails"] == "scattered"
    assert by_path.stats["process"]["search"]["dask"]["thumbnails"] == str(tmp_path / "t.npy")


@settings(max_examples=25, deadline=None)
@given(
    spec=image_specs(max_n=40),
    rotate=st.booleans(),
    same_dim=st.booleans(),
    choice=st.sampled_from(THRESHOLDS),
    random_value=st.floats(0, 200),
    which=st.integers(0, 100),
    chunksize=st.sampled_from([1, 2, 3, 5, 64]),
)
def test_distributed_search_matches_the_reference_on_planted_images(
    client, spec, rotate, same_dim, choice, random_value, which, chunksize
):
    tensors, shapes, planted = planted_images(*spec)
    mse = reference_mse_matrix(tensors, rotate)
    max_mse = pick_threshold(choice, random_value, mse, planted, shapes, same_dim, which)
    dif = fastdif.from_arrays(tensors, shapes=shapes)
    pairs = reference_matches(tensors, shapes, max_mse, rotate, same_dim, mse)
    i, j = [p for p, _ in pairs], [q for _, q in pairs]
    expected = {frozenset(g) for g in reference_groups(len(tensors), i, j)}

    dist = _search(dif, max_mse, rotate, same_dim, scheduler=client, chunksize=chunksize)

    chained = dist.stats["process"]["search"]["chained"]  # linked through another member
    found = {
        frozenset(
            int(p)
            for p in (
                key,
                *(m for m, _ in members),
                *(m for m, c in chained.items() if c["key"] == key),
            )
        )
        for key, members in dist.result.items()
    }
    assert found == expected
    _same_search(_search(dif, max_mse, rotate, same_dim, processes=1), dist)


# --------------------------------------------------------------------------- store


def test_store_writes_a_saved_repository_the_search_reads_by_path(client, photos, tmp_path):
    local = fastdif.build(photos, show_progress=False, processes=1)
    store = tmp_path / "store"

    dif = fastdif.build(photos, show_progress=False, scheduler=client, store=store)

    assert sorted(os.listdir(store)) == [
        "file_sizes.npy", "inodes.npy", "mtimes_ns.npy", "near_features.npy", "repository.json",
        "shapes.npy", "tensors.npy",
    ]  # fmt: skip
    assert not [name for name in os.listdir(tmp_path) if name != "store"]  # no staging left
    assert dif.tensors.dtype == np.uint8
    assert np.array_equal(dif.tensors, local.tensors)
    assert dif.paths == local.paths
    assert dif.stats["invalid_files"] == local.stats["invalid_files"]
    loaded = fastdif.load(store)  # checksums verified
    assert np.array_equal(loaded.tensors, local.tensors)

    dist = _search(dif, "similar", scheduler=client, chunksize=8)
    _same_search(_search(local, "similar", processes=1), dist)
    assert dist.stats["process"]["search"]["dask"]["thumbnails"] == str(store / "tensors.npy")


def test_store_of_only_invalid_files_is_an_empty_repository(client, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"not an image")

    store = tmp_path / "s"
    dif = fastdif.build(tmp_path / "bad", show_progress=False, scheduler=client, store=store)

    assert len(dif) == 0 and dif.stats["invalid_files"]["count"] == 1
    assert len(fastdif.load(store)) == 0
    assert _search(dif, "similar", scheduler=client).result == {}


def test_store_refuses_an_existing_folder_and_bad_combinations(client, photos, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match='"store"'):
        fastdif.build(photos, show_progress=False, scheduler=client, store=tmp_path / "taken")
    with pytest.raises(ValueError, match='"cache" and "store"'):
        fastdif.build(
            photos, show_progress=False, scheduler=client, store=tmp_path / "s", cache=True
        )
    assert os.listdir(tmp_path) == ["taken"]


def test_cache_with_a_scheduler_decodes_only_new_files(client, photos, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    cache = tmp_path / "cache.sqlite3"
    first = fastdif.build(folder, show_progress=False, scheduler=client, cache=cache)
    images.save_photo(99, folder / "d2" / "new.jpg", 160, 120)

    second = fastdif.build(folder, show_progress=False, scheduler=client, cache=cache)

    stats = second.stats["process"]["build"]["cache"]
    assert stats["decoded"] == 1 and stats["hits"] == len(first) + 1  # the broken file too
    local = fastdif.build(folder, show_progress=False, processes=1)
    assert second.paths == local.paths and np.array_equal(second.tensors, local.tensors)


# --------------------------------------------------------------------------- faults


@pytest.fixture
def own_client(two_workers):
    """A cluster for one test that kills workers: the shared one sees no deaths.

    Before, a test killed the shared cluster's workers and a later test on it
    waited forever (a task bound to a dead worker's address).
    """
    with two_workers() as dask_client:
        yield dask_client


def test_a_worker_killed_during_the_search_does_not_change_the_result(own_client, photos):
    client = own_client
    dif = fastdif.build(photos, show_progress=False, processes=1)
    local = _search(dif, 60.0, processes=1)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    killed = []
    stop = threading.Event()

    def kill_when_busy():
        # Kill the victim while it holds one of this search's tile tasks.
        while not stop.is_set():
            held = client.processing(workers=[victim]).get(victim, [])
            if any("_match_tiles" in str(key) for key in held):
                os.kill(pids[victim], signal.SIGKILL)
                killed.append((time.monotonic(), len(held)))
                return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    try:
        # Tiles of 2 images: hundreds of small tasks, so the search outlasts the kill.
        dist = _search(dif, 60.0, scheduler=client, chunksize=2)
    finally:
        stop.set()
        killer.join()
    ended = time.monotonic()

    assert killed, "the worker was never seen holding a tile task"
    assert killed[0][0] < ended
    _same_search(local, dist)
    client.wait_for_workers(2, timeout=60)


def _kill_workers(client, count: int) -> None:
    """SIGKILL ``count`` workers and wait until their nannies have started new
    ones (at new addresses)."""
    pids = client.run(os.getpid)
    victims = sorted(pids)[:count]
    for victim in victims:
        os.kill(pids[victim], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while set(victims) & set(client.scheduler_info(n_workers=-1)["workers"]):
        assert time.monotonic() < deadline, "a killed worker never left the scheduler"
        time.sleep(0.05)
    client.wait_for_workers(2, timeout=60)


def test_first_task_on_each_host_runs_after_a_worker_came_back(own_client):
    # Bound to the dead worker's address, the first task waited forever.
    tasks = cluster._Tasks(own_client)
    _kill_workers(own_client, 2)
    done = []
    runner = threading.Thread(
        target=lambda: done.append(tasks.first_on_each_host(os.getpid)), daemon=True
    )
    runner.start()
    runner.join(timeout=60)
    assert done, "the first task on each host never ran"


def test_data_lost_with_a_worker_is_scattered_again(own_client):
    client = own_client
    data = np.arange(10.0)
    pids = client.run(os.getpid)
    holder = sorted(pids)[0]
    lost = client.scatter(data, workers=[holder], hash=False)
    _kill_workers(client, 1)
    tasks = cluster._Tasks(client)
    resent = []

    def resend():
        resent.append(client.scatter(data, broadcast=True, hash=False))
        return resent[-1]

    calls = [(lost, k) for k in range(4)]
    assert tasks.run(_times, calls, resend=resend) == [data.sum() * k for k in range(4)]
    assert len(resent) == 1
    with pytest.raises(distributed.client.FutureCancelledError):
        tasks.run(_times, calls)  # without resend, the loss is an error, not a wrong result


def _times(array, k):
    return float(array.sum() * k)


@pytest.mark.parametrize("store", [False, True], ids=["in-memory", "store"])
def test_a_file_that_kills_its_workers_is_reported_and_the_rest_decoded(
    own_client, tmp_path, monkeypatch, store
):
    import faults

    client = own_client

    photos = tmp_path / "photos"
    kept = [images.save_photo(k, photos / f"p{k:02d}.jpg", 80, 60) for k in range(5)]
    images.save_photo(5, photos / "kill.jpg", 80, 60)  # not a copy: copies are decoded once
    local = fastdif.build(kept, show_progress=False, processes=1)
    monkeypatch.setattr(fastdif.io.decode, "decode_file", faults.decode)
    folder = tmp_path / "store" if store else None

    dif = fastdif.build(photos, show_progress=False, scheduler=client, store=folder)

    assert list(dif.paths) == sorted(kept)
    assert np.array_equal(dif.tensors, local.tensors)
    assert dif.stats["invalid_files"]["logs"] == {
        str(photos / "kill.jpg"): "Dask worker died decoding this file (KilledWorker)"
    }
    if store:
        assert not [name for name in os.listdir(folder) if name.startswith("shard-")]
    client.wait_for_workers(2, timeout=60)


def test_a_file_that_killed_a_dask_worker_is_not_cached_as_invalid(
    two_workers, tmp_path, monkeypatch
):
    # A cluster of its own: the shared one sees no more worker deaths than before.
    import faults

    photos = tmp_path / "photos"
    images.save_photo(1, photos / "p01.jpg", 80, 60)
    images.save_photo(2, photos / "kill.jpg", 80, 60)  # not a copy: copies are decoded once
    monkeypatch.setattr(fastdif.io.decode, "decode_file", faults.decode)
    cache = tmp_path / "cache.sqlite3"

    with two_workers() as client:
        first = fastdif.build(photos, show_progress=False, scheduler=client, cache=cache)
        client.wait_for_workers(2, timeout=60)
        monkeypatch.undo()  # the worker would survive the file now: it must be decoded again
        second = fastdif.build(photos, show_progress=False, scheduler=client, cache=cache)

    assert list(first.stats["invalid_files"]["logs"]) == [str(photos / "kill.jpg")]
    assert second.stats["process"]["build"]["cache"]["decoded"] == 1
    assert second.stats["invalid_files"]["count"] == 0 and len(second) == 2


def test_build_progress_counts_every_file_once_also_after_a_worker_dies(
    two_workers, tmp_path, monkeypatch
):
    # A cluster of its own: the shared one sees no more worker deaths than before
    # (a later test on it once waited forever for a task after this one).
    import faults

    paths = [images.save_photo(k, tmp_path / f"p{k:03d}.jpg", 40, 30) for k in range(70)]
    paths.insert(3, images.save_photo(70, tmp_path / "kill.jpg", 40, 30))  # in the first shard
    monkeypatch.setattr(fastdif.io.decode, "decode_file", faults.decode)
    ticks = []

    with two_workers() as client:
        decoded = list(cluster.DaskDecoder(client, 16).decode(paths, lambda: ticks.append(1)))

    assert len(decoded) == len(paths) == len(ticks)
    assert [d.reason is None for d in decoded] == [path != paths[3] for path in paths]


def test_numba_threads_in_a_task_share_the_host_cores_with_dask_threads(client):
    import numba

    def threads_in_task(host_threads):  # nested: Dask sends it by value
        with cluster._numba_threads(host_threads):
            return numba.get_num_threads()

    client.wait_for_workers(2, timeout=60)
    tasks = cluster._Tasks(client)
    workers = sorted(tasks.host_threads)
    assert len(workers) == 2
    cores = len(os.sched_getaffinity(0))

    def run(host_threads):
        futures = [
            client.submit(threads_in_task, host_threads, workers=[w], pure=False) for w in workers
        ]
        return [future.result(timeout=120) for future in futures]  # a failure, never a hang

    assert tasks.host_threads == {w: 2 for w in workers}  # 2 one-thread workers, one host
    assert run(tasks.host_threads) == [max(1, cores // 2)] * 2
    assert run({w: 1 for w in workers}) == [min(cores, numba.config.NUMBA_NUM_THREADS)] * 2


# --------------------------------------------------------------------------- errors


def test_scheduler_must_be_a_client_and_processes_left_to_dask(client, photos):
    dif = fastdif.from_arrays(np.zeros((3, 10, 10, 3), np.uint8))
    with pytest.raises(TypeError, match='"scheduler" parameter: must be a dask.distributed.Client'):
        fastdif.search(dif, scheduler="tcp://127.0.0.1:8786", show_progress=False)
    with pytest.raises(TypeError, match='"scheduler"'):
        fastdif.build(photos, scheduler=object(), show_progress=False)
    with pytest.raises(ValueError, match='"processes" parameter'):
        fastdif.search(dif, scheduler=client, processes=2, show_progress=False)
    with pytest.raises(ValueError, match='"processes" parameter'):
        fastdif.build(photos, scheduler=client, processes=2, show_progress=False)


_WITHOUT_DASK = """
import sys
sys.modules["dask"] = sys.modules["distributed"] = None  # as if not installed
import numpy as np
import fastdif
dif = fastdif.from_arrays(np.zeros((4, 10, 10, 3), np.uint8))
assert len(fastdif.search(dif, show_progress=False).lower_quality) == 3
assert not [m for m in sys.modules if m.split(".")[0] in ("dask", "distributed") and sys.modules[m]]
try:
    fastdif.search(dif, scheduler=object(), show_progress=False)
except ImportError as exc:
    print(exc)
"""


def test_without_dask_the_search_works_and_scheduler_says_what_to_install():
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_DASK], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        '"scheduler" needs Dask, which is not installed: pip install "fastdif[dask]"'
    )


def test_nothing_imports_dask_unless_a_scheduler_is_given():
    code = (
        "import sys, fastdif, fastdif.__main__; "
        "print(sorted(m for m in sys.modules if m.startswith(('dask', 'distributed'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


# --------------------------------------------------------------------------- command line


def test_cli_scheduler_gives_the_local_result(client, photos, tmp_path):
    local = _search(fastdif.build(photos, show_progress=False, processes=1), "similar")
    address = client.scheduler.address

    done = run_cli(str(photos), "-s", "similar", "--scheduler", address, "-q", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    [results] = [name for name in os.listdir(tmp_path) if name.endswith("_results.json")]
    [stats] = [name for name in os.listdir(tmp_path) if name.endswith("_stats.json")]
    assert json.loads((tmp_path / results).read_text()) == json.loads(json.dumps(local.result))
    stats = json.loads((tmp_path / stats).read_text())
    assert stats["process"]["search"]["dask"]["scheduler"] == address
    assert stats["process"]["build"]["dask"]["workers"] == 2


def test_cli_bad_scheduler_address_is_one_line_and_exit_2(photos, tmp_path):
    done = run_cli(str(photos), "--scheduler", "no-port-here", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "python -m fastdif: error: missing port number in address 'no-port-here'"
    ]
    assert os.listdir(tmp_path) == []
