"""Decoding workers that only decode, and an ``import fastdif`` that loads no search code.

A spawned decode worker imports this package on its way to
:mod:`fastdif.io.decode`: the package's public names are imported on first
use (``fastdif/__init__.py``), so the worker loads neither Numba nor Dask nor
the engine, and starts in a fraction of the time. Workers also keep freed
memory for the next file (:data:`fastdif.backends.pool.KEEP_FREED_MEMORY`),
and a build decodes byte-identical files once.
"""

import os
import subprocess
import sys

import faults
import pytest

from fastdif.backends import pool
from fastdif.io import decode

#: What a decoding worker must never import: the search side of the package
#: and the libraries only it needs.
SEARCH_SIDE = (
    "numba",
    "llvmlite",
    "dask",
    "distributed",
    "fastdif.engine",
    "fastdif.api",
    "fastdif.pipelines",
    "fastdif.backends.local",
    "fastdif.backends.dask",
)


def _search_side(modules) -> list[str]:
    return sorted(
        name
        for name in modules
        if any(name == top or name.startswith(top + ".") for top in SEARCH_SIDE)
    )


def _fresh_python(code: str, *args: str) -> str:
    """Run ``code`` in a new interpreter (with ``args``); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(120)
def test_a_spawned_decode_worker_imports_no_search_code(monkeypatch):
    # The substitute decoder reports its worker's modules instead of decoding:
    # the real pool, its real spawned processes, so many paths that it is used.
    monkeypatch.setattr(decode, "decode_file", faults.imported_modules)
    paths = [f"file{i}.png" for i in range(pool.MIN_FILES_FOR_POOL)]
    reports = list(pool.decode_all(paths, 8, processes=2))
    assert len(reports) == len(paths)
    for modules in reports:
        assert "fastdif.io.decode" in modules  # it is a decoding worker
        assert _search_side(modules) == []


@pytest.mark.timeout(120)
@pytest.mark.skipif(faults.mallinfo2() is None, reason="needs glibc 2.33 or later (mallinfo2)")
def test_decode_workers_reuse_freed_memory_for_large_images(monkeypatch):
    # A worker keeps a large image's freed pixels for the next file, instead
    # of mapping fresh pages for each (pool.KEEP_FREED_MEMORY); the caller's
    # process keeps glibc's default, where such a buffer is always mapped.
    assert faults.LARGE_BUFFER < pool.KEEP_FREED_MEMORY
    monkeypatch.setattr(decode, "decode_file", faults.mapped_memory)
    paths = [f"file{i}.png" for i in range(pool.MIN_FILES_FOR_POOL)]
    in_workers = list(pool.decode_all(paths, 8, processes=2))
    assert max(in_workers) < faults.LARGE_BUFFER
    # A fresh caller's process: this one's allocator state depends on the
    # tests before (threads, libraries), not on fastdif.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import faults; "
        "from fastdif.backends import pool; "  # imported, as a caller has it
        "print(faults.mapped_memory('file.png', 8))"
    )
    in_this_process = _fresh_python(code, os.path.dirname(__file__))
    assert int(in_this_process) >= faults.LARGE_BUFFER


@pytest.mark.timeout(120)
def test_import_fastdif_loads_no_search_code_until_a_name_is_used():
    out = _fresh_python(
        "import sys, fastdif\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('numba', 'llvmlite', 'dask', 'distributed', 'fastdif')))\n"
    )
    modules = eval(out)
    assert "fastdif" in modules
    assert _search_side(modules) == []


@pytest.mark.timeout(120)
def test_the_public_names_and_submodules_import_on_first_use():
    out = _fresh_python(
        "import fastdif\n"
        "from fastdif import build, search, Repository\n"
        "import fastdif.api, fastdif.model, fastdif.result, fastdif.actions\n"
        "print(build is fastdif.api.build, search is fastdif.search is fastdif.api.search)\n"
        "print(Repository is fastdif.model.Repository, fastdif.load is fastdif.model.load)\n"
        "print(fastdif.from_arrays is fastdif.model.from_arrays)\n"
        "print(fastdif.SearchResult is fastdif.result.SearchResult)\n"
        "print(fastdif.undo_move is fastdif.actions.undo_move)\n"
        "print(sorted(set(fastdif.__all__) - set(dir(fastdif))))\n"
        "print(fastdif.io.decode.__name__, fastdif.engine.kernels.__name__)\n"
        "for name in ('no_such_name', 'no_such_module', '_private'):\n"
        "    try:\n"
        "        getattr(fastdif, name)\n"
        "    except AttributeError as error:\n"
        "        print(error)\n"
    )
    assert out.splitlines() == [
        "True True",
        "True True",
        "True",
        "True",
        "True",
        "[]",
        "fastdif.io.decode fastdif.engine.kernels",
        "module 'fastdif' has no attribute 'no_such_name'",
        "module 'fastdif' has no attribute 'no_such_module'",
        "module 'fastdif' has no attribute '_private'",
    ]


@pytest.mark.timeout(120)
def test_the_kernel_cache_folder_is_chosen_before_numba_is_imported():
    # Import order as it happens, on the way a user's first search takes.
    out = _fresh_python(
        "import sys\n"
        "order = []\n"
        "class Record:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        order.append(name)\n"
        "sys.meta_path.insert(0, Record())\n"
        "import fastdif\n"
        "fastdif.search\n"
        "print(order.index('fastdif.kernel_cache'), order.index('numba'))\n"
    )
    cache, numba = map(int, out.split())
    assert cache < numba


# ------------------------------------------------------------ byte-identical files, decoded once
