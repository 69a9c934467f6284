"""Keep-best rules: which image of a group is kept (its key), and why.

Values in, values out. What a rule compares of each image (:class:`Facts`)
is gathered by the caller: :func:`fastdif.search` takes dimensions, sizes
and modification times from the repository and reads EXIF dates and formats
of group members only, through :mod:`fastdif.io.metadata`, with each
member's frame count. Nothing here opens a file.

Before any rule, the image with the most frames or pages is kept: an
animated GIF or a multi-page TIFF is never lower quality than a copy of its
first frame, whose other frames would exist nowhere else. Then, in a
group where a near search found an edit (a crop, an overlay, a tone
curve), the most pixels (a crop never
has more than what it was cut from), then no overlay: a near copy is never
kept over a larger, uncropped, unmarked original. After the rule,
among images it leaves equal, a visible file is kept over one that is hidden
or lies in a trash or cache folder (:func:`set_aside`, counted per
name, so folders all candidates share do not decide), then path order
decides. The rule itself is
checked and parsed by :func:`fastdif.params.check_keep`; docs/curate.md
describes it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..params import KeepCriterion, PathPattern, path_parts


@dataclass(frozen=True)
class Facts:
    """What a keep-best rule may compare of one image.

    Attributes
    ----------
    width, height : int
        Displayed dimensions, as the repository holds them.
    size : int
        File size in bytes.
    taken : datetime or None
        EXIF DateTimeOriginal (naive, as the camera wrote it); None when the
        file has none or the rule does not read dates.
    mtime_ns : int
        Modification time recorded at build, ns since the epoch; 0 when unknown.
    format : str or None
        Canonical format name (:func:`fastdif.params.canonical_format`, or
        ``"raw"``); None when unknown or not read.
    folders : tuple of str
        Case-folded names of the folders holding the file (:func:`folder_parts`).
    frames : int
        Frames or pages in the file (an animation's frames, a TIFF's pages); 1
        when it has one or it is unknown.
    aside : int
        How many names of its path mark it hidden or in a trash or cache
        folder (:func:`set_aside`); fewer is better.
    edited, marked : bool
        Found by a near search (:mod:`fastdif.engine.near`) to be a crop, an
        overlay or a tone edit of another image of its group, or the other
        way round (``edited``); to bear an overlay another has not (``marked``).
    """

    width: int = 0
    height: int = 0
    size: int = 0
    taken: datetime | None = None
    mtime_ns: int = 0
    format: str | None = None
    folders: tuple[str, ...] = ()
    frames: int = 1
    aside: int = 0
    edited: bool = False
    marked: bool = False


#: Folder names (case-folded) of trash and cache folders: a file in one is a
#: copy set aside, never the one to keep over a copy elsewhere.
ASIDE_FOLDERS = frozenset(
    {
        "$recycle.bin", "recycler", "recycled", "trash", "trashes", "deleted items",
        "cache", "caches", "thumbnails", "thumbs", "@eadir", "lost+found", "tmp", "temp",
    }
)  # fmt: skip


def set_aside(path: str) -> int:
    """How many names in ``path`` mark it hidden or in a trash or cache folder.

    By name, links not followed, in its absolute path: a name starting with
    ``.`` (``.coins_copy.png``, ``~/.Trash/``), or a folder named in
    :data:`ASIDE_FOLDERS`, in any case. 0: a visible file.
    """
    parts = [p for p in path_parts(os.path.abspath(path)) if p not in ("", ".", "..")]
    hidden = sum(p.startswith(".") for p in parts)
    return hidden + sum(p.casefold() in ASIDE_FOLDERS and not p.startswith(".") for p in parts[:-1])


def folder_parts(path: str) -> tuple[str, ...]:
    """Case-folded names of the folders of ``path``'s absolute path (by name: links not followed).

    ``/photos/Originals/a.jpg`` gives ``("photos", "originals")``; a relative
    path is taken from the current folder.
    """
    folder = os.path.dirname(os.path.abspath(path))
    return tuple(p.casefold() for p in path_parts(folder) if p)


def under(pattern: PathPattern, folders: tuple[str, ...]) -> bool:
    """Whether a file in ``folders`` (:func:`folder_parts`) is under ``pattern``.

    An absolute pattern matches the first folders; a relative one any run of
    whole consecutive folder names (``Trash`` never matches ``.Trash`` or
    ``Trashcan``). Both compare case-folded names.
    """
    parts, n = pattern.parts, len(pattern.parts)
    if pattern.absolute:
        return folders[:n] == parts
    return any(folders[k : k + n] == parts for k in range(len(folders) - n + 1))


def reads(rule: Sequence[KeepCriterion]) -> set[str]:
    """Which :class:`Facts` fields beyond dimensions and size ``rule`` compares:
    some of ``"taken"``, ``"mtime_ns"``, ``"format"``, ``"folders"``."""
    fields = {
        "newest": ("taken", "mtime_ns"),
        "oldest": ("taken", "mtime_ns"),
        "format": ("format",),
        "prefer": ("folders",),
        "avoid": ("folders",),
    }
    return {field for c in rule for field in fields.get(c.kind, ())}


@dataclass(frozen=True)
class _Step:
    """One comparison of a rule: ``key`` (smaller is better) and ``why(kept, runner_up)``."""

    key: Callable[[Facts], object]
    why: Callable[[Facts, Facts], str]


_EPOCH = datetime(1, 1, 1)


def _microseconds(taken: datetime) -> int:
    return (taken - _EPOCH) // timedelta(microseconds=1)


def _modified(mtime_ns: int) -> datetime:
    """A modification time in local time (UTC where the platform cannot convert it)."""
    seconds, ns = divmod(mtime_ns, 10**9)
    try:
        return datetime.fromtimestamp(seconds).replace(microsecond=ns // 1000)
    except (OverflowError, OSError, ValueError):
        return datetime(1970, 1, 1) + timedelta(microseconds=mtime_ns // 1000)


def _when(a: datetime, b: datetime | None) -> tuple[str, str]:
    """``a`` and ``b`` to the second, or to the microsecond where that is all that differs."""
    shown = "%Y-%m-%d %H:%M:%S"
    if b is not None and a.strftime(shown) == b.strftime(shown):
        shown += ".%f"
    return a.strftime(shown), "" if b is None else b.strftime(shown)


def _date_steps(kind: str) -> tuple[_Step, ...]:
    sign = -1 if kind == "newest" else 1

    def taken_why(kept: Facts, other: Facts) -> str:
        a, b = _when(kept.taken, other.taken)
        return f"{kind} (taken {a} vs {b or 'no EXIF date'})"

    def modified_why(kept: Facts, other: Facts) -> str:
        a, b = _when(
            _modified(kept.mtime_ns), _modified(other.mtime_ns) if other.mtime_ns else None
        )
        return f"{kind} (modified {a} vs {b or 'unknown'})"

    return (
        _Step(
            lambda f: (f.taken is None, 0 if f.taken is None else sign * _microseconds(f.taken)),
            taken_why,
        ),
        _Step(lambda f: (f.mtime_ns == 0, sign * f.mtime_ns), modified_why),
    )


def _format_name(fmt: str | None) -> str:
    return "an unknown format" if fmt is None else fmt.upper()


def _first_under(patterns, folders) -> PathPattern | None:
    return next((p for p in patterns if under(p, folders)), None)


#: Compared before any rule: the image with more frames or pages is kept.
_MORE_FRAMES = _Step(lambda f: -f.frames, lambda a, b: f"more frames ({a.frames} vs {b.frames})")

#: Compared before the rule in a group where a near search found an edit:
#: the most pixels of content (a crop never has more than what it was cut
#: from), then no overlay.
_NEAR_STEPS = (
    _Step(
        lambda f: -(f.width * f.height),
        lambda a, b: f"larger ({a.width} x {a.height} vs {b.width} x {b.height})",
    ),
    _Step(lambda f: f.marked, lambda a, b: "no overlay (the other bears one)"),
)

#: Compared after the rule: a visible file is kept over one set aside.
_NOT_ASIDE = _Step(
    lambda f: f.aside, lambda a, b: "not hidden or in a trash or cache folder (the other is)"
)


@functools.cache
def _steps(criterion: KeepCriterion) -> tuple[_Step, ...]:
    """The comparisons of one criterion (two for dates: EXIF, then modification time)."""
    kind, values = criterion.kind, criterion.values
    if kind == "resolution":
        return (
            _Step(
                lambda f: -(f.width * f.height),
                lambda a, b: f"larger ({a.width} x {a.height} vs {b.width} x {b.height})",
            ),
        )
    if kind == "size":
        return (
            _Step(lambda f: -f.size, lambda a, b: f"larger file ({a.size:,} vs {b.size:,} bytes)"),
        )
    if kind in ("newest", "oldest"):
        return _date_steps(kind)
    if kind == "format":
        rank = {fmt: n for n, fmt in enumerate(values)}
        return (
            _Step(
                lambda f: rank.get(f.format, len(values)),
                lambda a, b: f"{_format_name(a.format)} preferred over {_format_name(b.format)}",
            ),
        )
    if kind == "prefer":
        return (
            _Step(
                lambda f: _first_under(values, f.folders) is None,
                lambda a, b: f"under {_first_under(values, a.folders).text}/",
            ),
        )
    if kind == "avoid":
        return (
            _Step(
                lambda f: _first_under(values, f.folders) is not None,
                lambda a, b: f"not under {_first_under(values, b.folders).text}/",
            ),
        )
    raise ValueError(f"unknown keep criterion {kind!r}")


def choose(
    rule: Sequence[KeepCriterion], facts: Sequence[Facts], library: bool = False
) -> tuple[int, str]:
    """The image a rule keeps among ``facts`` (in path order), and why.

    Each criterion keeps only the images best by it, breaking the ties the
    criteria before it left; the first image in path order is kept when
    several remain. Before the rule, only the images with the most frames or
    pages remain (:attr:`Facts.frames`): a multi-frame file is never lower
    quality than a copy of one of its frames. Then, where a near search
    found an edit among them (:attr:`Facts.edited`), the most pixels, then
    no overlay (:attr:`Facts.marked`). After the rule, a file neither hidden
    nor in a trash or cache folder (fewest such names, :attr:`Facts.aside`) is
    kept over one that is.

    Parameters
    ----------
    rule : sequence of KeepCriterion
        From :func:`fastdif.params.check_keep`.
    facts : sequence of Facts
        The candidates, in path order; at least one.
    library : bool, default False
        The candidates are a group's library images: the reason says so.

    Returns
    -------
    position : int
        Index into ``facts`` of the image kept.
    reason : str
        ``"kept: "`` and the deciding criterion with the values that decided
        it, against the best image it ruled out, e.g. ``"kept: larger (4032 x
        3024 vs 2016 x 1512)"``, ``"kept: more frames (3 vs 1)"``,
        ``"kept: PNG preferred over JPEG"``,
        ``"kept: not hidden or in a trash or cache folder (the other is)"``,
        ``"kept: path order (all else equal)"``; for library images
        ``"kept: library image"``, then the reason among several.
    """
    survivors = list(range(len(facts)))
    why = "path order (all else equal)"
    if len(survivors) == 1:
        why = "the only candidate"
    near = _NEAR_STEPS if any(f.edited for f in facts) else ()
    steps = [_MORE_FRAMES, *near, *(step for c in rule for step in _steps(c)), _NOT_ASIDE]
    for step in steps:
        if len(survivors) == 1:
            break
        keys = [step.key(facts[p]) for p in survivors]
        best = min(keys)
        kept = [p for p, k in zip(survivors, keys, strict=True) if k == best]
        if len(kept) == 1:
            # The runner-up: the best of those this step ruled out (first in path order).
            _, runner = min((k, p) for p, k in zip(survivors, keys, strict=True) if k != best)
            why = step.why(facts[kept[0]], facts[runner])
        survivors = kept
    if library:
        return survivors[0], "kept: library image" + ("" if len(facts) == 1 else f", then {why}")
    return survivors[0], f"kept: {why}"
