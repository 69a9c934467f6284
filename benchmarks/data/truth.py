"""The ground truth of a generated set, and groups scored against it.

Every generated set's folder holds its images and ``truth.json``
(:func:`write_truth`): every copy as ``{"original", "copy", "kind"}`` under
``"duplicates"``, with what else the generator records.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

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


def image_files(folder: str) -> list[str]:
    """Paths of the images in a generated set (every file but ``truth.json``), sorted."""
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name != TRUTH_FILE and os.path.isfile(os.path.join(folder, name))
    )


def write_truth(folder: str, record: dict) -> dict:
    """Write ``record`` as ``folder/truth.json``; return it."""
    with open(os.path.join(folder, TRUTH_FILE), "w") as f:
        json.dump(record, f, indent=1)
    return record


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


def group_names(result: dict) -> list[list[str]]:
    """A search result's groups (fastdif's or difPy's) as file names: key, then matches."""
    return [
        [os.path.basename(key)] + [os.path.basename(str(match[0])) for match in matches]
        for key, matches in result.items()
    ]


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


def matched_pairs(groups: list[list[str]]) -> int:
    """Distinct pairs of files that share a group."""
    pairs = set()
    for names in groups:
        unique = sorted(set(names))
        pairs.update((a, b) for i, a in enumerate(unique) for b in unique[i + 1 :])
    return len(pairs)


def score_with_precision(groups: list[list[str]], truth: Truth) -> dict:
    """:func:`score`'s figures plus ``matched_pairs`` and ``precision``.

    ``precision`` is the true matched pairs over all matched pairs (None
    when nothing matched).
    """
    figures = score(groups, truth)
    matched = matched_pairs(groups)
    figures["matched_pairs"] = matched
    figures["precision"] = (matched - figures["false_pairs"]) / matched if matched else None
    return figures
