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

import images
import numpy as np
import pytest

import fastdif
from fastdif.cli import main
from fastdif.engine import warmup

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
def test_the_cli_compiles_each_kernel_once_for_the_types_the_warmup_uses(
    pics, tmp_path, numba_cache, similarity, same_dim, store
):
    args = [str(pics), "-s", similarity, "-dim", same_dim, "-Z", str(tmp_path), "-q", "-p", "false"]
    args += ["--store", str(tmp_path / "store")] if store else []
    code = f"""
        from fastdif.cli import main
        assert main({args!r}) == 0
    """

    report = run_python(code, numba_cache)

    names = warmup.DUPLICATES_KERNELS if similarity == "duplicates" else warmup.SIMILAR_KERNELS
    want = expected(np.uint8 if store else np.float32, True, names)
    assert {name: report[name]["signatures"] for name in KERNELS} == want


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
        assert warm.join(timeout=300) and warm.error is None, warm.error
        """,
        fresh,
    )
    later = run_python(
        f"""
        import fastdif
        dif = fastdif.build({str(pics)!r}, show_progress=False, processes=1)
        se = fastdif.search(dif, show_progress=False)
        assert len(se.result) == 2, se.result
        """,
        fresh,
    )

    for name in warmup.DUPLICATES_KERNELS:
        assert warmed[name]["compiled"] == 1
        assert later[name]["signatures"] == warmed[name]["signatures"]
        assert later[name]["compiled"] == 0  # loaded from the cache


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

    assert main([str(pics), "-Z", str(tmp_path), "-p", "false"]) == 0

    assert started == ["fastdif-warmup"]
    out, err = capsys.readouterr()
    assert "2 groups, 2 duplicates" in out and err == ""


def test_an_invalid_similarity_warms_nothing():
    warm = warmup.start(-1)

    assert warm.join(timeout=60) and warm.error is None
