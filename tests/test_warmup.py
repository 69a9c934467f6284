"""The kernel warm-up compiles what a search calls, fills Numba's cache, and never gets in the way.

What a process compiled is read from the kernels' dispatchers
(``signatures``, ``stats.cache_misses``), in a new interpreter so that
other tests' calls do not count.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import images
import numpy as np
import pytest

import fastdif
from fastdif import kernel_cache
from fastdif.cli import main
from fastdif.engine import numpy_kernels, warmup

pytestmark = [pytest.mark.slow]

KERNELS = ("rotation_hashes", "pair_mse", "block_means", "match_ranges")

# Prints, per kernel, the argument types it was compiled for (or loaded with)
# and how many of them were compiled rather than loaded from Numba's cache.
REPORT = f"""
import json
from fastdif.engine import kernels
print(json.dumps({{
    name: {{
        "signatures": [str(s) for s in getattr(kernels, name).signatures],
        "compiled": sum(getattr(kernels, name).stats.cache_misses.values()),
    }}
    for name in {KERNELS!r}
}}))
"""


def run_python(code: str, numba_cache) -> dict:
    """Run ``code`` then :data:`REPORT` in a new interpreter; the report."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + REPORT],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def expected(dtype, readonly: bool, names) -> dict:
    types = warmup.argument_types(dtype, readonly)
    return {name: [str(types[name])] if name in names else [] for name in KERNELS}


@pytest.fixture(scope="module")
def numba_cache(tmp_path_factory):
    """One Numba cache for this module's interpreters: each kernel compiles once."""
    return tmp_path_factory.mktemp("numba-cache")


@pytest.fixture
def pics(tmp_path):
    """Two exact copies at 64 x 48 and two at 40 x 40: two sets of equal dimensions."""
    folder = tmp_path / "pics"
    for seed, (width, height) in enumerate([(64, 48), (40, 40)]):
        original = images.save_photo(seed, folder / f"a{seed}.png", width, height)
        images.copy_bytes(original, folder / f"b{seed}.png")
    return folder


@pytest.mark.parametrize("similarity", ["duplicates", "similar"])
@pytest.mark.parametrize("same_dim", ["true", "false"])  # copies of rows, or the whole repository
@pytest.mark.parametrize("store", [False, True])  # float32 in memory, or uint8 on disk
def test_the_cli_compiles_nothing_itself_and_the_next_run_loads_the_warmups_types(
    pics, tmp_path, numba_cache, similarity, same_dim, store
):
    def cli(run):
        args = [str(pics), "-s", similarity, "-dim", same_dim, "-Z", str(tmp_path), "-q"]
        args += ["-p", "false"] + (["--store", str(tmp_path / f"store{run}")] if store else [])
        return f"""
            from fastdif.cli import main
            assert main({args!r}) == 0
        """

    names = warmup.DUPLICATES_KERNELS if similarity == "duplicates" else warmup.SIMILAR_KERNELS
    want = expected(np.uint8 if store else np.float32, True, names)

    first = run_python(cli(1), numba_cache)  # the kernels compile in another process, or load
    assert warmup.wait_for_background(str(numba_cache), timeout=600)
    second = run_python(cli(2), numba_cache)

    for name in KERNELS:
        assert first[name]["compiled"] == second[name]["compiled"] == 0
        assert set(first[name]["signatures"]) <= set(want[name])  # none where NumPy searched
        assert second[name]["signatures"] == want[name]


@pytest.mark.parametrize("library", ["folder", "saved"])
def test_a_search_against_a_library_compiles_only_what_the_warmup_compiles(
    pics, tmp_path, numba_cache, library
):
    folder = tmp_path / "library"
    images.copy_bytes(pics / "a0.png", folder / "same.png")
    images.save_photo(9, folder / "other.png", 64, 48)
    reference = str(folder)
    if library == "saved":
        reference = fastdif.build(reference, show_progress=False, processes=1).save(
            tmp_path / "library.fastdif"
        )
    args = [str(pics), "--reference", reference, "-s", "similar", "-Z", str(tmp_path), "-q"]
    code = f"""
        from fastdif.cli import main
        assert main({args + ["-p", "false"]!r}) == 0
    """

    report = run_python(code, numba_cache)

    types = warmup.argument_types(np.float32, True, np.float32)
    assert set(report["match_ranges"]["signatures"]) == {
        str(types["match_ranges"]),
        str(types["match_library"]),
    }
    # The warm-up stops when the search ends: a quick search may end before it
    # reaches these (the library search itself calls neither). Compiled, they
    # have the warm-up's types; a second signature would be a second compile.
    for name in ("block_means", "pair_mse"):
        assert set(report[name]["signatures"]) <= {str(types[name])}


def test_a_later_process_loads_the_kernels_the_warmup_compiled(pics, tmp_path):
    fresh = tmp_path / "numba-cache"
    warmed = run_python(
        """
        from fastdif.engine import warmup
        warm = warmup.start("duplicates")
        assert isinstance(warm, warmup.Background) and warm.process is not None
        assert warm.join(timeout=300) and warm.process.returncode == 0
        """,
        fresh,
    )
    later = run_python(
        f"""
        import numpy as np
        import fastdif
        from fastdif.engine import warmup
        assert warmup.ready(np.float32, warmup.DUPLICATES_KERNELS)
        dif = fastdif.build({str(pics)!r}, show_progress=False, processes=1)
        se = fastdif.search(dif, show_progress=False)
        assert len(se.result) == 2, se.result
        """,
        fresh,
    )

    want = expected(np.float32, True, warmup.DUPLICATES_KERNELS)
    for name in warmup.DUPLICATES_KERNELS:
        assert warmed[name]["signatures"] == []  # compiled in the other process
        assert later[name]["signatures"] == want[name]
        assert later[name]["compiled"] == 0  # loaded from the cache


def test_ready_reads_this_process_and_numbas_cache_without_loading(tmp_path):
    fresh = tmp_path / "numba-cache"
    check = """
        import numpy as np
        from fastdif.engine import warmup
        types = np.uint8, ("rotation_hashes",)
    """
    filled = run_python(
        check
        + """
        assert not warmup.ready(*types)
        assert not warmup.ready(*types, readonly=False)
        warmup.load_kernels(*types, readonly=True)
        assert warmup.ready(*types)
        assert not warmup.ready(*types, readonly=False)  # another type
        """,
        fresh,
    )
    later = run_python(check + "    assert warmup.ready(*types)\n", fresh)

    assert filled["rotation_hashes"]["compiled"] == 1
    assert later["rotation_hashes"]["signatures"] == []  # asking loads nothing


def _niceness_while_running(process, timeout=60.0):
    """The highest niceness ``process`` had, polled until it ends or ``timeout`` passes."""
    seen = os.nice(0)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            seen = max(seen, os.getpriority(os.PRIO_PROCESS, process.pid))
        except OSError:  # ended meanwhile
            break
        time.sleep(0.01)
    return seen


def test_one_background_compile_at_a_time_and_a_wait_for_it(tmp_path, monkeypatch):
    folder = tmp_path / "numba-cache"
    folder.mkdir()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(folder))  # the child's cache
    monkeypatch.setattr(kernel_cache, "FOLDER", str(folder))
    names = ("rotation_hashes",)

    first = warmup.compile_in_background(np.uint8, names)
    try:
        second = warmup.compile_in_background(np.uint8, names)  # the lock is held from the start
        waited = warmup.wait_for_background(str(folder), timeout=0.01)
        niceness = _niceness_while_running(first)
    finally:
        assert first.wait(timeout=300) == 0
    after = warmup.wait_for_background(str(folder), timeout=5)
    report = run_python("", folder)  # a new interpreter on the cache it filled
    ready = run_python(
        "import numpy as np\nfrom fastdif.engine import warmup\n"
        "assert warmup.ready(np.uint8, ('rotation_hashes',))\n",
        folder,
    )

    assert second is None and waited is False and after is True
    assert niceness == min(os.nice(0) + warmup.NICENESS, 19)  # it leaves the CPU to this run
    assert report["rotation_hashes"]["signatures"] == []
    assert ready["rotation_hashes"]["compiled"] == 0


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_the_dask_tasks_find_their_kernels_loaded(numba_cache, dtype):
    # What fastdif.backends.dask's tasks compute, on writable copies of the rows.
    code = f"""
        import numpy as np
        from fastdif.backends import dask
        from fastdif.engine import kernels, warmup
        from fastdif.engine.matching import Thumbnails, match_items
        from fastdif.model import Criteria
        warmup.load_kernels(np.{dtype}, dask._TASK_KERNELS)
        whole = np.random.default_rng(0).integers(0, 256, (6, 20, 20, 3)).astype(np.{dtype})
        whole.flags.writeable = False
        ids = np.array([0, 2, 3, 5])
        shapes = np.full((6, 2), 20, dtype=np.int64)[ids]
        tensors = np.ascontiguousarray(whole[ids])
        kernels.rotation_hashes(tensors, False)
        images = Thumbnails.of(tensors, shapes, kernels.block_means(tensors, 1))
        local = np.arange(ids.size, dtype=np.int64)
        rows, begins, stops = local[:2], local[:2] + 1, np.full(2, ids.size, dtype=np.int64)
        match_items(images, rows, images, local, begins, stops, Criteria(5.0, True, True))
    """

    report = run_python(code, numba_cache)

    want = expected(np.dtype(dtype), False, ("rotation_hashes", "block_means", "match_ranges"))
    assert {name: report[name]["signatures"] for name in KERNELS} == want


def test_importing_starts_no_thread_and_compiles_nothing(numba_cache):
    report = run_python(
        """
        import threading
        import fastdif, fastdif.__main__, fastdif.backends.dask, fastdif.engine.warmup
        assert threading.active_count() == 1, threading.enumerate()
        """,
        numba_cache,
    )
    assert all(report[name]["signatures"] == [] for name in KERNELS)


def test_a_failing_warmup_ends_quietly_and_the_search_still_runs(pics, find):
    warm = warmup.Warmup(np.float32, ("no_such_kernel",))

    assert warm.join(timeout=60)
    assert isinstance(warm.error, AttributeError)
    se = find(pics)
    assert len(se.result) == 2


def test_the_cli_succeeds_when_its_warmup_fails(pics, tmp_path, monkeypatch, capsys):
    started = []

    def broken(*args):
        started.append(threading.current_thread().name)
        raise RuntimeError("warm-up broke")

    monkeypatch.setattr(warmup, "load_kernels", broken)
    monkeypatch.setattr(warmup, "ready", lambda *args: True)  # the thread, not another process

    assert main([str(pics), "-Z", str(tmp_path), "-p", "false"]) == 0

    assert started == ["fastdif-warmup"]
    out, err = capsys.readouterr()
    assert "2 groups, 2 duplicates" in out and err == ""


def test_an_invalid_similarity_warms_nothing():
    warm = warmup.start(-1)

    assert warm.join(timeout=60) and warm.error is None


def _spy(monkeypatch, module, names):
    """Count the calls of ``module``'s functions ``names``."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(module, name)

        def spy(*args, real=real, name=name):
            calls[name] += 1
            return real(*args)

        monkeypatch.setattr(module, name, spy)
    return calls


def _search_all(dif):
    return {
        similarity: fastdif.search(dif, similarity, show_progress=False, processes=1)
        for similarity in ("duplicates", "similar", 40.0)
    }


NUMPY_FUNCTIONS = ("find_matches", "rotation_hashes", "pair_mse")


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_a_small_search_takes_numpy_while_the_kernels_are_not_ready(monkeypatch, dtype):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 16, 16, 3))
    tensors = np.concatenate([base, np.rot90(base[:4], 1, axes=(1, 2)), base[4:8] + 3])
    dif = fastdif.from_arrays(np.clip(tensors, 0, 255).astype(dtype))
    with_kernels = _search_all(dif)
    monkeypatch.setattr(warmup, "ready", lambda *args: False)
    calls = _spy(monkeypatch, numpy_kernels, NUMPY_FUNCTIONS)

    with_numpy = _search_all(dif)

    assert all(calls.values()), calls
    for similarity, found in with_numpy.items():
        want = with_kernels[similarity]
        assert (found.result, found.lower_quality) == (want.result, want.lower_quality)
        assert (
            found.stats["process"]["search"]["transforms"]
            == (want.stats["process"]["search"]["transforms"])
        )
    assert with_numpy[40.0].result  # rotated copies and near copies found


@pytest.mark.parametrize("why", ["ready", "large", "inexact"])
def test_the_kernels_search_ready_large_or_inexact_units(monkeypatch, why):
    rng = np.random.default_rng(1)
    tensors = rng.integers(0, 256, (6, 16, 16, 3)).astype(np.float32)
    if why == "inexact":  # from_arrays keeps fractional values as they are
        tensors += np.float32(0.25) + rng.random(tensors.shape, dtype=np.float32)
    dif = fastdif.from_arrays(tensors)
    monkeypatch.setattr(warmup, "ready", lambda *args: why == "ready")
    if why == "large":
        monkeypatch.setattr(numpy_kernels, "MAX_VALUES", 5 * 16 * 16 * 3)
    waits = []
    monkeypatch.setattr(warmup, "wait_for_background", lambda: waits.append(1) or True)
    calls = _spy(monkeypatch, numpy_kernels, NUMPY_FUNCTIONS)

    _search_all(dif)

    assert not any(calls.values()), calls
    assert bool(waits) == (why != "ready")  # a compile in the background ends first


@pytest.mark.skipif(kernel_cache.fcntl is None, reason="no file locks on this system")
@pytest.mark.timeout(120)
def test_a_kernel_is_saved_to_numbas_cache_only_under_the_save_lock(tmp_path):
    folder = tmp_path / "numba-cache"
    folder.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(folder)}
    code = "from fastdif.engine import kernels; kernels.ring_size.compile('(int64, int64)')"
    with open(folder / kernel_cache.SAVE_LOCK, "w") as lock:
        kernel_cache.fcntl.flock(lock, kernel_cache.fcntl.LOCK_EX)  # as another process saving
        child = subprocess.Popen([sys.executable, "-c", code], env=env)
        try:
            # The compile takes well under this: then it waits for the lock, unsaved.
            with pytest.raises(subprocess.TimeoutExpired):
                child.wait(timeout=8)
            saved_meanwhile = list(folder.rglob("*.nbi"))
        finally:
            kernel_cache.fcntl.flock(lock, kernel_cache.fcntl.LOCK_UN)
            returncode = child.wait(timeout=60)

    assert saved_meanwhile == []
    assert returncode == 0 and list(folder.rglob("*ring_size*.nbi"))


def test_a_first_small_search_compiles_nothing(pics, tmp_path):
    report = run_python(
        f"""
        import numba
        import fastdif
        from fastdif.engine import kernels
        dif = fastdif.build({str(pics)!r}, show_progress=False, processes=1)
        for similarity in ("duplicates", "similar"):
            se = fastdif.search(dif, similarity, show_progress=False, processes=1)
            assert len(se.result) == 2, se.result
        compiled = [
            name for name, value in vars(kernels).items()
            if isinstance(value, numba.core.dispatcher.Dispatcher) and value.signatures
        ]
        assert compiled == [], compiled
        """,
        tmp_path / "numba-cache",
    )
    assert all(report[name]["signatures"] == [] for name in KERNELS)


def test_units_hashed_in_numpy_are_hashed_in_one_call(pics, find, monkeypatch):
    monkeypatch.setattr(warmup, "ready", lambda *args: False)
    calls = _spy(monkeypatch, numpy_kernels, ("rotation_hashes",))

    se = find(pics)  # two units: the pictures at 64 x 48, and those at 40 x 40

    assert len(se.result) == 2
    assert calls == {"rotation_hashes": 1}
