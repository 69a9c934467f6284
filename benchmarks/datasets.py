"""Generated photo sets with ground truth, kept in the benchmark cache folder.

``dataset(1000)`` is the folder ``<cache>/photos-n1000-dup500-seed0`` made by
:func:`benchmarks.make_dataset.make_dataset` (``n`` images, ``n // 2`` of
them duplicates), generated on first use and reused afterwards. The cache
folder is ``$FASTDIF_BENCH_CACHE`` or ``~/.cache/fastdif-bench`` (see
:func:`benchmarks.thumbnails.cache_folder`); a folder made earlier with
``python -m benchmarks.make_dataset`` can be linked there under that name.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from .make_dataset import make_dataset
from .thumbnails import cache_folder

TRUTH_FILE = "truth.json"


@dataclass(frozen=True)
class Truth:
    """Labelled duplicates of a generated set, as file names inside its folder.

    Attributes
    ----------
    pairs : tuple of (str, str, str)
        ``(original, copy, kind)`` for every duplicate written.
    components : dict of str to int
        Each file name that belongs to a duplicate pair, mapped to the id of
        its connected component (an original and all its copies).
    """

    pairs: tuple[tuple[str, str, str], ...]
    components: dict[str, int]

    def related(self, a: str, b: str) -> bool:
        """Whether file names ``a`` and ``b`` are copies of one picture."""
        ca = self.components.get(a)
        return ca is not None and ca == self.components.get(b)


def dataset_name(n: int, seed: int = 0) -> str:
    """Folder name of the set of ``n`` images (``n // 2`` duplicates) in the cache folder."""
    return f"photos-n{n}-dup{n // 2}-seed{seed}"


def dataset(n: int, seed: int = 0) -> str:
    """The folder of the generated set of ``n`` images, made if missing.

    Parameters
    ----------
    n : int
        Number of image files; ``n // 2`` of them are duplicates.
    seed : int, default 0
        Generator seed.

    Returns
    -------
    str
        Absolute path of the folder (images and ``truth.json``).
    """
    return cached_set(dataset_name(n, seed), lambda tmp: make_dataset(tmp, n, n // 2, seed))


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


def image_files(folder: str) -> list[str]:
    """Paths of the images in a generated set (every file but ``truth.json``), sorted."""
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name != TRUTH_FILE and os.path.isfile(os.path.join(folder, name))
    )


def load_truth(folder: str) -> Truth:
    """Read ``folder/truth.json``; paths become file names (the sets are flat).

    File names rather than recorded paths, so a set that was moved or linked
    into the cache folder still matches the paths a tool reports.
    """
    with open(os.path.join(folder, TRUTH_FILE)) as f:
        record = json.load(f)
    pairs = tuple(
        (os.path.basename(d["original"]), os.path.basename(d["copy"]), d["kind"])
        for d in record["duplicates"]
    )
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for original, copy, _ in pairs:
        parent[root(copy)] = root(original)
    ids: dict[str, int] = {}
    components = {name: ids.setdefault(root(name), len(ids)) for name in parent}
    return Truth(pairs, components)


def score(groups: list[list[str]], truth: Truth) -> dict:
    """Compare a tool's groups with the truth.

    Parameters
    ----------
    groups : list of list of str
        Each group's file names: the key and its members.
    truth : Truth

    Returns
    -------
    dict
        ``pairs_found``: truth pairs whose original and copy are in one group;
        ``pairs_found_by_kind``: the same per duplicate kind, with
        ``pairs_by_kind`` the totals; ``false_pairs``: grouped pairs of files
        from different truth components (or not in the truth at all), and
        ``false_examples`` up to five of them; ``groups`` and ``grouped_files``.
    """
    # A name can sit in several difPy groups (its groups are not transitive):
    # a pair counts as found when some group holds both names.
    groups_of: dict[str, set[int]] = {}
    for g, names in enumerate(groups):
        for name in names:
            groups_of.setdefault(name, set()).add(g)
    found_by_kind: dict[str, int] = {}
    total_by_kind: dict[str, int] = {}
    for original, copy, kind in truth.pairs:
        total_by_kind[kind] = total_by_kind.get(kind, 0) + 1
        if groups_of.get(original, set()) & groups_of.get(copy, set()):
            found_by_kind[kind] = found_by_kind.get(kind, 0) + 1
    false = set()
    for names in groups:
        unique = sorted(set(names))
        for i, a in enumerate(unique):
            false.update((a, b) for b in unique[i + 1 :] if not truth.related(a, b))
    return {
        "pairs_found": sum(found_by_kind.values()),
        "pairs_total": len(truth.pairs),
        "pairs_found_by_kind": dict(sorted(found_by_kind.items())),
        "pairs_by_kind": dict(sorted(total_by_kind.items())),
        "false_pairs": len(false),
        "false_examples": [list(pair) for pair in sorted(false)[:5]],
        "groups": len(groups),
        "grouped_files": len(groups_of),
    }
