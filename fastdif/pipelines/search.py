"""The search pipeline: criteria, units, backend, library, decisions, keep rule and stats.

:func:`search` runs it for :func:`fastdif.search` once the parameters are checked.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import numpy as np

from .. import params
from ..backends import dask
from ..backends.local import LocalSearcher
from ..backends.spread import spread_map
from ..engine.grouping import drop_distinct, library_groups, links_to_keys, unit_groups
from ..engine.keep import Facts, folder_parts, reads, set_aside, under
from ..engine.keep import choose as choose_kept
from ..engine.matching import CLASSIC_MAX_IMAGES, SYMMETRY_NAMES, comparable_units, cross_mse
from ..engine.near import NEAR_MSE, NearFeatures, find_near, verify_near
from ..engine.transforms import compared
from ..io.decisions import Decisions
from ..io.metadata import Metadata, frame_count, read_metadata
from ..model import Criteria, Repository
from ..progress import progress_bar
from ..result import SearchResult, difpy_result
from .library import check_library, in_library


@dataclass(frozen=True)
class Curation:
    """What the user asked of the groups: :func:`fastdif.search`'s checked options.

    Attributes
    ----------
    rule : tuple
        The keep rule (:func:`fastdif.params.check_keep`).
    library : Repository or None
    within_new : bool
    marks : Decisions or None
    show_done : bool
    """

    rule: tuple
    library: Repository | None = None
    within_new: bool = True
    marks: Decisions | None = None
    show_done: bool = False


@dataclass(frozen=True)
class Execution:
    """Where a search runs: progress, cores, tile size and the Dask client."""

    show_progress: bool = True
    processes: int | None = None
    chunksize: int | None = None
    scheduler: object = None


@contextmanager
def interrupts_between_kernels():
    """Hold Ctrl-C while kernels run; yield a check that delivers it between them.

    A KeyboardInterrupt raised while a parallel Numba kernel runs can crash the
    process, so in the main thread SIGINT only records itself until the check
    (called after each kernel call) or the end of the block hands it to the
    handler installed before: Python's default raises KeyboardInterrupt, a
    program's own handler is called (and the search goes on if it returns),
    SIG_DFL ends the process. SIGINT ignored, or handled outside Python,
    stays as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):  # None: a handler Python cannot put back
        yield lambda: None
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))

    def check():
        if not received:
            return
        frame = received[-1]
        received.clear()
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.raise_signal(signal.SIGINT)
        else:
            previous(signal.SIGINT, frame)

    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
    check()


def search(dif: Repository, criteria: Criteria, curation: Curation, execution: Execution):
    """Search ``dif``: pairs ``criteria`` matches, grouped, keys chosen, counted.

    See :func:`fastdif.search` for the parameters and what is raised.
    """
    start = datetime.now()
    library = curation.library
    if library is not None:
        check_library(library, dif.px_size, dif.thumbnail_version)
        if dif.in_folder:
            raise ValueError('"reference" cannot be combined with "in_folder".')
    # What the kernels compare: the thumbnails, or their transform (never
    # the saved block means of untransformed thumbnails).
    searched = compared(dif, criteria)
    searched_library = None if library is None else compared(library, criteria)
    client = dask.checked_client(execution.scheduler, execution.processes)
    largest = max((len(g) for g in dif.groups), default=0)
    tile_rows = params.check_chunksize(execution.chunksize, largest)
    new = np.arange(len(dif), dtype=np.int64)
    if library is not None:
        # A file of the library is a library image only, however it was reached.
        new = new[~in_library(dif, library)]
    units = []
    if curation.within_new or library is None:
        units = list(_units(dif, criteria.same_dim, new))
    processes = None
    if client is None:
        processes = params.check_processes(execution.processes)
        searcher = LocalSearcher(searched, processes)
        chunked_used = any(len(index) > CLASSIC_MAX_IMAGES for _, index in units)
    else:
        if execution.chunksize is None:
            tile_rows = max(tile_rows, dask.MIN_TILE_SIDE)
        searcher = dask.DaskSearcher(client, searched)
        chunked_used = True
    keeper = _Keeper(curation.rule, dif, library)
    _warn_of_unused_folders(curation.rule, dif, library)
    total = sum(len(index) for _, index in units) + (0 if library is None else new.size)
    with (
        searcher,
        progress_bar(total, "Searching", "images", execution.show_progress) as bar,
        interrupts_between_kernels() as check,
    ):

        def tick(rows):
            bar.update(rows)
            check()

        near_run = _NearRun(
            criteria.rotate, criteria.flip, execution.show_progress, check, processes or 1
        )

        found_pairs = searcher.pairs(units, criteria, tile_rows, tick)
        if library is None:
            if criteria.near:
                found_pairs = _with_near_pairs(searched, units, found_pairs, keeper, near_run)
            found, links = _unit_groups(dif, units, found_pairs, curation.marks, keeper, check)
            summed = 0
        else:
            found, links, summed = _library_groups(
                dif, searched, searched_library, searcher, units, found_pairs, new, criteria,
                curation, keeper, tile_rows, tick, near_run,
            )  # fmt: skip
    found.sort(key=lambda g: g[1])
    paths = dif.paths if library is None else dif.paths + library.paths
    near_copy = _NearCopies(searched, searched_library, criteria) if criteria.near else None
    found, chained = _chained_apart(found, links, criteria.max_mse, near_copy)
    found = _without_done(curation.marks, paths, found, curation.show_done)
    result, lower_quality, duplicates, similar = difpy_result(paths, dif.in_folder, found)
    end = datetime.now()
    stats = {
        "directory": dif.stats["directory"],
        "process": {
            "build": dif.stats["process"]["build"],
            "search": {
                "duration": {
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "seconds_elapsed": round((end - start).total_seconds(), 4),
                },
                "parameters": {
                    "similarity_mse": criteria.max_mse,
                    "rotate": criteria.rotate,
                    "same_dim": criteria.same_dim,
                    "flip": criteria.flip,
                    "color": criteria.color,
                    "normalize": criteria.normalize,
                    "processes": processes,
                    "chunksize": tile_rows if chunked_used else execution.chunksize,
                },
                "files_searched": len(dif),
                **searcher.stats(),
                "pairs_compared_exactly": searcher.summed + summed,
                "matches_found": {"duplicates": duplicates, "similar": similar},
            },
        },
        "total_files": dif.stats["total_files"],
        "invalid_files": dif.stats["invalid_files"],
    }
    searched_stats = stats["process"]["search"]
    if library is not None:
        searched_stats["reference"] = {
            "images": len(library),
            "within_new": curation.within_new,
            "files_also_in_reference": len(dif) - int(new.size),
        }
    searched_stats.update(_group_stats(curation.rule, paths, found, keeper, chained))
    if near_copy is not None:
        near_copy.add_stats(searched_stats, paths)
    if curation.marks is not None:
        searched_stats["decisions"] = curation.marks.stats(curation.show_done)
    # As difPy's search does, the build's stats get the search's entry too
    # (the latest search's); se.stats stays this search's own dict.
    dif.stats["process"]["search"] = searched_stats
    return SearchResult(
        result, lower_quality, stats, dif, criteria, library, decisions=curation.marks
    )


def _group_stats(rule, paths, found, keeper, chained) -> dict:
    """What the search's stats say of its groups: the keep rule's reasons, how members matched."""
    shown = {key for _, key, _, _ in found}
    return {
        "keep": {
            "rule": [criterion.text for criterion in rule],
            "reasons": {paths[key]: keeper.reasons[key] for key in sorted(shown)},
        },
        # Members linked to their key only through other members: listed apart.
        "chained": {
            paths[m]: {"key": paths[key], "through": paths[through], "mse": mse}
            for m, (key, through, mse) in chained.items()
            if key in shown
        },
        # How each member matched its key, where not unchanged (a rotation or a flip).
        "transforms": {
            paths[m]: SYMMETRY_NAMES[keeper.symmetries[m]]
            for _, _, members, _ in found
            for m in members
            if m in keeper.symmetries
        },
    }


def _with_near_pairs(searched: Repository, units, found_pairs, keeper, run) -> list:
    """Each unit's ``(i, j, mse)``, its near pairs added (:func:`~.near.find_near`).

    The features are ``searched``'s: the build's for the thumbnails
    themselves, computed from the transformed ones otherwise
    (:attr:`Repository.near_features`). ``keeper`` notes the edited images
    and those bearing overlays (:meth:`_Keeper.note`); each
    :func:`~.near.find_near` runs as ``run`` (:class:`_NearRun`) says.
    """
    out = []
    for (_, index), (i, j, mse) in zip(units, found_pairs, strict=True):
        tensors = np.ascontiguousarray(searched.tensors[index])
        near_i, near_j, matches = run.find(
            tensors, searched.shapes[index], searched.near_features.take(index)
        )
        keeper.note(index[near_i], index[near_j], matches)
        pairs = np.unique(
            np.stack([np.concatenate([i, near_i]), np.concatenate([j, near_j])]), axis=1
        )
        out.append((pairs[0], pairs[1], mse))
    return out


class _NearCopies:
    """``near_copy(key, member) -> score or None``: ``member`` as a near copy of ``key``.

    Only a copy with at most its key's pixels, bearing any overlay the key
    bears, counts (:meth:`~.near.NearMatch.refusal`;
    :func:`fastdif.verify.check_pair` refuses the others too). Keeps each
    copy's description and how many pairs it verified.
    """

    def __init__(self, searched: Repository, library: Repository | None, criteria: Criteria):
        self.searched, self.library, self.criteria = searched, library, criteria
        self.described: dict[int, str] = {}
        self.verified = 0

    def _image(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``k``'s thumbnail and shape (``searched``'s numbers, then the library's)."""
        n = len(self.searched)
        repository, k = (self.searched, k) if k < n else (self.library, k - n)
        return repository.tensors[k], repository.shapes[k]

    def __call__(self, key: int, member: int) -> float | None:
        (key_thumb, key_shape), (thumb, shape) = self._image(key), self._image(member)
        if int(np.prod(shape)) > int(np.prod(key_shape)):
            return None
        self.verified += 1
        match = verify_near(
            key_thumb, thumb, key_shape, shape, self.criteria.rotate, self.criteria.flip
        )
        if match is None or match.refusal(1) is not None:
            return None
        self.described[member] = match.as_copy(1).describe()
        return float(match.score)

    def add_stats(self, stats: dict, paths) -> None:
        """Say in a search's ``stats`` how each near copy differs from its key
        (in words, over a symmetry's name), and the pairs verified."""
        stats["transforms"].update({paths[m]: how for m, how in self.described.items()})
        stats["near"] = {"threshold": NEAR_MSE, "pairs_verified": self.verified}


def _unit_groups(dif: Repository, units, found_pairs, marks, keeper, check):
    """The groups of each unit's matching pairs: ``(folder, key, members, mses)``.

    And the pairs they were formed from, ``(i, j)`` in image numbers.
    """
    found, links = [], []
    for (folder, index), (i, j, mse) in zip(units, found_pairs, strict=True):
        i, j = _without_distinct(marks, dif.paths, index, i, j, mse)
        groups = unit_groups(
            index, i, j, mse, dif.shapes, dif.file_sizes, keeper, keeper.symmetries
        )
        found += [(folder, key, members, mses) for key, members, mses in groups]
        links.append((index[i], index[j]))
        check()
    return found, links


def _chained_apart(found, links, max_mse, near_copy=None):
    """``found`` with only the members that match their key, and the others.

    A member matches its key within ``max_mse``, or, with ``near_copy``
    (``near_copy(key, member) -> score or None``), as a near copy of it,
    its number then the near score. A group is a connected set of matches,
    so a member may match its key only through other members: such a member
    is not lower quality than the key by the search's measure, and a move or
    delete would refuse it. Returns the groups, and ``{member: (key,
    through, mse)}`` for the members left out (``through``: the image one
    step nearer the key, :func:`links_to_keys`).
    """
    i = np.concatenate([np.empty(0, np.int64)] + [a for a, _ in links])
    j = np.concatenate([np.empty(0, np.int64)] + [b for _, b in links])
    through = None
    direct, chained = [], {}
    for folder, key, members, mses in found:
        values = list(mses)
        for k, member in enumerate(members):
            if values[k] > max_mse and near_copy is not None:
                score = near_copy(key, member)
                values[k] = values[k] if score is None else score
        near = [k for k in range(len(members)) if mses[k] <= max_mse or values[k] != mses[k]]
        if len(near) < len(members):
            through = through or links_to_keys(i, j, [key for _, key, _, _ in found])
            for k in sorted(set(range(len(members))) - set(near)):
                chained[members[k]] = (key, through[members[k]], mses[k])
        direct.append((folder, key, [members[k] for k in near], [values[k] for k in near]))
    return direct, chained


def _library_groups(
    dif, searched, searched_library, searcher, units, found_pairs, new, criteria, curation,
    keeper, tile_rows, tick, near_run,
):  # fmt: skip
    """The groups of a library search, the pairs they were formed from, and the pairs
    it compared exactly.

    Pairs among ``dif``'s new images (``units``) and between new images and
    the library, both searched by the backend (and, for ``criteria.near``,
    :func:`_library_near_pairs`), are grouped together; image numbers are
    ``dif``'s, then the library's.
    """
    library = curation.library
    pairs = [(index[i], index[j]) for (_, index), (i, j, _) in zip(units, found_pairs, strict=True)]
    i, j, summed = searcher.library_matches(new, searched_library, criteria, tile_rows, tick)
    pairs.append((i, len(dif) + j))
    if criteria.near:
        near = _library_near_pairs(
            searched, searched_library, new, curation.within_new, keeper, near_run
        )
        pairs.append(near)
    pairs = _library_pairs_without_distinct(
        curation.marks, searched, searched_library, pairs, criteria
    )
    groups = library_groups(
        len(dif),
        np.concatenate([np.empty(0, np.int64)] + [a for a, _ in pairs]),
        np.concatenate([np.empty(0, np.int64)] + [b for _, b in pairs]),
        cross_mse(searched.tensors, searched_library.tensors, criteria),
        np.concatenate([dif.shapes, library.shapes]),
        np.concatenate([dif.file_sizes, library.file_sizes]),
        keeper,
        keeper.symmetries,
    )
    found = [(dif.folders[0], key, members, mses) for key, members, mses in groups]
    return found, pairs, summed


def _library_near_pairs(searched, searched_library, new, within_new, keeper, run):
    """The near pairs ``(i, j)`` of each new image with the library's, and with the
    other new ones when ``within_new`` (:func:`~.near.find_near`; ``searched``'s
    numbers, then the library's); ``keeper`` notes their edits; it runs as
    ``run`` (:class:`_NearRun`) says."""
    n = len(searched)
    numbers = np.concatenate([new, n + np.arange(len(searched_library), dtype=np.int64)])
    i, j, matches = run.find(
        _Rows(np.asarray(searched.tensors[new]), searched_library.tensors),
        np.concatenate([searched.shapes[new], searched_library.shapes]),
        NearFeatures.concatenate(
            [searched.near_features.take(new), searched_library.near_features]
        ),
    )
    i, j = numbers[i], numbers[j]  # still i < j: new images are numbered first
    wanted = (j >= n) | within_new
    keeper.note(i[wanted], j[wanted], [m for m, w in zip(matches, wanted, strict=True) if w])
    return i[wanted], j[wanted]


@dataclass
class _NearRun:
    """How a search runs :func:`~.near.find_near`: its symmetries, progress and processes.

    ``rotate`` and ``flip`` as the search's criteria say; ``show`` a
    progress bar, ``check`` for an interrupt after each batch, verify the
    batches in ``processes`` processes (:func:`~fastdif.backends.spread.spread_map`).
    """

    rotate: bool
    flip: bool
    show: bool
    check: object
    processes: int

    def find(self, tensors, shapes, features):
        """:func:`~.near.find_near` of ``tensors`` (and their ``shapes`` and ``features``)."""
        with ExitStack() as stack:
            bar = None

            def progress(done: int, total: int) -> None:
                nonlocal bar
                if bar is None:  # opened once the candidates to verify are known
                    bar = stack.enter_context(
                        progress_bar(total, "Near copies", "pairs", self.show)
                    )
                bar.update(done - bar.n)
                self.check()

            return find_near(
                tensors, shapes, self.rotate, self.flip, features=features, progress=progress,
                map=partial(spread_map, processes=self.processes),
            )  # fmt: skip


class _Rows:
    """The rows of two arrays one after the other, each read only where indexed.

    What :func:`~.near.find_near` reads of a library search's thumbnails:
    the new images', then the library's (memory-mapped from its store),
    without a copy of the library.
    """

    def __init__(self, first, second):
        self.first, self.second = first, second
        self.shape = (len(first) + len(second), *np.shape(first)[1:])
        self.dtype = np.result_type(first.dtype, second.dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        n = len(self.first)
        if isinstance(index, (int, np.integer)):
            k = int(index) % len(self)
            return self.first[k] if k < n else self.second[k - n]
        index = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        low = index < n
        out[low] = self.first[index[low]]
        out[~low] = self.second[index[~low] - n]
        return out


def _warn_of_unused_folders(rule, dif: Repository, library: Repository | None) -> None:
    """Warn of each ``prefer:``/``avoid:`` folder that holds none of the searched files."""
    patterns = [(c.text, p) for c in rule if c.kind in ("prefer", "avoid") for p in c.values]
    if not patterns:
        return
    paths = list(dif.paths) + ([] if library is None else list(library.paths))
    places = {folder_parts(os.path.join(os.path.dirname(p), "_")) for p in paths}
    for text, pattern in patterns:
        if not any(under(pattern, folders) for folders in places):
            warnings.warn(
                params.keep_names_no_folder(text, pattern.text), UserWarning, stacklevel=4
            )


@dataclass
class _Keeper:
    """``keeper(images) -> key`` for the grouping functions: the image ``rule`` keeps.

    Image numbers are ``dif``'s, then ``library``'s. The reason of each key
    is kept in ``reasons`` by image number, and the grouping functions note
    in ``symmetries`` how each member matched its key; a near search notes
    edits and overlays (:meth:`note`). Dimensions, sizes and
    modification times come from the repositories; dates and formats are
    read from the candidates' headers (:func:`~fastdif.io.metadata.read_metadata`),
    and only when the rule compares them; frame counts always (a header read
    per candidate).
    """

    rule: tuple
    dif: Repository
    library: Repository | None
    reasons: dict = field(default_factory=dict)
    symmetries: dict = field(default_factory=dict)
    edited: set = field(default_factory=set)
    marked: set = field(default_factory=set)

    def __post_init__(self):
        self.fields = reads(self.rule)

    def facts(self, k: int) -> Facts:
        dif, fields = self.dif, self.fields
        repository, i = (dif, k) if k < len(dif) else (self.library, k - len(dif))
        path = repository.paths[i]
        meta = Metadata()
        if fields & {"format", "taken"}:
            meta = read_metadata(path, "format" in fields, "taken" in fields)
        return Facts(
            width=int(repository.shapes[i, 0]),
            height=int(repository.shapes[i, 1]),
            size=int(repository.file_sizes[i]),
            taken=meta.taken,
            mtime_ns=int(repository.mtimes_ns[i]) if "mtime_ns" in fields else 0,
            format=meta.format,
            folders=folder_parts(path) if "folders" in fields else (),
            frames=frame_count(path),
            aside=set_aside(path),
            edited=k in self.edited,
            marked=k in self.marked,
        )

    def note(self, i, j, matches) -> None:
        """Note the edited images, and those bearing overlays, of near pairs ``(i[k], j[k])``."""
        for a, b, match in zip(i.tolist(), j.tolist(), matches, strict=True):
            if set(match.edits()) - {"symmetry"}:
                self.edited.update((a, b))
            if match.marked >= 0:
                self.marked.add((a, b)[match.marked])

    def __call__(self, images) -> int:
        images = sorted(int(k) for k in images)  # path order
        in_library = images[0] >= len(self.dif)
        position, why = choose_kept(self.rule, [self.facts(k) for k in images], library=in_library)
        self.reasons[images[position]] = why
        return images[position]


def _without_distinct(marks, paths, index, i, j, mse):
    """``(i, j)``, matching pairs of positions in ``index``, less those ``marks`` drop.

    Only the images of pairs (group members) are hashed; see
    :func:`~fastdif.engine.grouping.drop_distinct` for which pairs go.
    """
    if marks is None or not marks.distinct or not i.size:
        return i, j
    labels = np.full(index.size, -1, dtype=np.int64)
    members = np.union1d(i, j)
    labels[members] = [marks.label(paths[index[m]]) for m in members.tolist()]
    keep = drop_distinct(index.size, i, j, labels, marks.distinct, mse)
    marks.pairs_dropped += int(keep.size - np.count_nonzero(keep))
    return i[keep], j[keep]


def _library_pairs_without_distinct(marks, dif, library, pairs, criteria):
    """:func:`_without_distinct` of a library search's pairs of image numbers, as one pair."""
    if marks is None:
        return pairs
    i = np.concatenate([np.empty(0, np.int64)] + [a for a, _ in pairs])
    j = np.concatenate([np.empty(0, np.int64)] + [b for _, b in pairs])
    everyone = dif.paths + library.paths
    mse = cross_mse(dif.tensors, library.tensors, criteria)
    return [_without_distinct(marks, everyone, np.arange(len(everyone)), i, j, mse)]


def _without_done(marks, paths, found, show_done):
    """``found`` less the groups ``marks`` has as done (all kept with ``show_done``)."""
    if marks is None:
        return found
    kept = []
    for group in found:
        _, key, members, _ = group
        if marks.is_done([paths[key]] + [paths[m] for m in members]):
            if not show_done:
                marks.groups_hidden += 1
                continue
            marks.done_keys.append(paths[key])
        kept.append(group)
    return kept


def _units(dif: Repository, same_dim: bool, images: np.ndarray):
    """:func:`~fastdif.engine.matching.comparable_units` of ``dif``, of ``images`` only."""
    keep = np.zeros(len(dif), dtype=bool)
    keep[images] = True
    for folder, index in comparable_units(dif, same_dim):
        index = index[keep[index]]
        if index.size > 1:
            yield folder, index
