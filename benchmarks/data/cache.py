"""The benchmark cache folder, where generated sets and thumbnails are kept between runs.

It is ``$FASTDIF_BENCH_CACHE``, default ``~/.cache/fastdif-bench``. A set is
made under a temporary name and renamed (:func:`cached_set`), so an
interrupted or concurrent run never leaves a half-made set under its name.
"""

from __future__ import annotations

import os
import shutil

from .truth import TRUTH_FILE


def cache_folder() -> str:
    """Where generated sets and thumbnails are kept between runs."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "fastdif-bench")
    return os.environ.get("FASTDIF_BENCH_CACHE", default)


def cached_set(name: str, make) -> str:
    """The folder ``name`` in the cache folder, made by ``make(folder)`` if missing.

    Returns the absolute path of the folder (images and ``truth.json``).
    """
    folder = os.path.join(cache_folder(), name)
    if os.path.exists(os.path.join(folder, TRUTH_FILE)):
        return os.path.abspath(folder)
    os.makedirs(cache_folder(), exist_ok=True)
    # Written under a temporary name and renamed, so an interrupted run or a
    # concurrent one never leaves a half-made set under the final name.
    tmp = f"{folder}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    make(tmp)
    try:
        os.rename(tmp, folder)
    except OSError:
        if not os.path.exists(os.path.join(folder, TRUTH_FILE)):
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    return os.path.abspath(folder)
