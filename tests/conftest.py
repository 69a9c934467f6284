"""Shared fixtures: build + search with progress off, result helpers, Dask clusters."""

import os
import shutil
from contextlib import contextmanager

import images
import pytest
from pages import FLAGS, unavailable

import fastdif


@pytest.fixture(autouse=True)
def user_cache_folder(tmp_path_factory, monkeypatch):
    """Point XDG_CACHE_HOME at a fresh folder, so no test (nor a CLI it runs,
    which caches by default) reads or writes the real user cache."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


@pytest.fixture(autouse=True)
def user_data_folder(tmp_path_factory, monkeypatch):
    """Point XDG_DATA_HOME at a fresh folder, so no command line a test runs
    (``-d true`` trashes by default) reaches the real user's trash. In this
    process send2trash read it at import: fastdif.trash then uses no system
    trash (see tests/test_trash.py)."""
    folder = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(folder))
    return folder


def _build(*paths, processes=1, **build_kwargs):
    return fastdif.build(*paths, show_progress=False, processes=processes, **build_kwargs)


def _search(dif, similarity="duplicates", rotate=True, same_dim=True, processes=1, chunksize=None):
    return fastdif.search(
        dif,
        similarity=similarity,
        rotate=rotate,
        same_dim=same_dim,
        show_progress=False,
        processes=processes,
        chunksize=chunksize,
    )


@pytest.fixture
def build():
    """``fastdif.build`` with ``show_progress=False`` and ``processes=1`` by default."""
    return _build


@pytest.fixture
def search():
    """``fastdif.search`` with ``show_progress=False`` and ``processes=1`` by default."""
    return _search


@pytest.fixture
def find():
    """Build and search in one call; build keywords pass through.

    ``find(*paths, similarity=..., rotate=..., same_dim=..., chunksize=..., processes=1, **build)``
    """

    def run(
        *paths,
        similarity="duplicates",
        rotate=True,
        same_dim=True,
        chunksize=None,
        processes=1,
        **build_kwargs,
    ):
        dif = _build(*paths, processes=processes, **build_kwargs)
        return _search(dif, similarity, rotate, same_dim, processes, chunksize)

    return run


def groups_of(result) -> set:
    """A union result (or in_folder result) as a set of frozensets of paths."""
    out = set()
    for key, members in result.items():
        if isinstance(members, dict):
            out |= groups_of(members)
        else:
            out.add(frozenset([key, *(path for path, _ in members)]))
    return out


@pytest.fixture
def groups():
    """``groups(result)``: the match groups as a set of frozensets of paths."""
    return groups_of


@pytest.fixture
def dup_set(tmp_path):
    """Two groups in ``src``: a.png + two copies (one in a sub-folder), b.png + one copy."""
    src = tmp_path / "src"
    p = {}
    p["a"] = images.save_photo(1, src / "a.png")
    p["a1"] = images.copy_bytes(p["a"], src / "a_copy.png")
    p["a2"] = images.copy_bytes(p["a"], src / "sub" / "a_copy.png")  # same name as a1
    p["b"] = images.save_photo(2, src / "b.png")
    p["b1"] = images.copy_bytes(p["b"], src / "b_copy.png")
    p["c"] = images.save_photo(3, src / "c.png")
    return src, p


@contextmanager
def _two_worker_client():
    """Two single-threaded worker processes, as on the 2-core CI machine.

    A task may lose its worker once and be run again; a second loss fails it
    (KilledWorker), which keeps the crash tests short.
    """
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with (
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=50,
            ) as local_cluster,
            distributed.Client(local_cluster) as dask_client,
        ):
            yield dask_client


@pytest.fixture(scope="session")
def two_workers():
    """``with two_workers() as client``: a new Dask LocalCluster of two one-thread workers."""
    return _two_worker_client


@pytest.fixture(scope="module")
def client(two_workers):
    """A two-worker Dask cluster's client, shared by a module's tests."""
    with two_workers() as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (see tests/pages.py for what it needs)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    executable = os.environ.get("FASTDIF_CHROMIUM") or shutil.which("chromium")
    if not executable:
        unavailable("no chromium found (apt-get install chromium, or set FASTDIF_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        yield chromium
        chromium.close()
