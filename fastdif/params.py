"""Validation of public parameters: one place for the messages users see."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from numbers import Real

from PIL import Image

SIMILARITY_MSE = {"duplicates": 0.0, "similar": 5.0, "near": 5.0}


def invalid(name: str, problem: str, error: type[Exception] = ValueError) -> Exception:
    """The error for a bad value of the parameter ``name``, for the caller to raise.

    Every such message users see reads ``Invalid value for "name" parameter:
    problem``; the checks below build theirs here, and so do the few that
    need what only their module knows (a cache file's kind, a manifest's
    content).
    """
    return error(f'Invalid value for "{name}" parameter: {problem}')


def check_type(name: str, value, types, expected: str, *, show_type: bool = False):
    """Return ``value`` if it is an instance of ``types``, else raise TypeError naming ``name``.

    The message says ``must be {expected}, got ...``, then the value
    (``repr``), or with ``show_type`` its type's name (an object whose
    ``repr`` says little, or too much).
    """
    if not isinstance(value, types):
        got = type(value).__name__ if show_type else repr(value)
        raise invalid(name, f"must be {expected}, got {got}.", TypeError)
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise TypeError naming ``name``."""
    return check_type(name, value, bool, "of type BOOL")


def check_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int (not a bool), else raise TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, f"must be of type INT, got {value!r}.", TypeError)
    return value


def check_int_range(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int in ``low..high``, else raise naming ``name``."""
    if not low <= check_int(name, value) <= high:
        raise invalid(name, f"must be between {low} and {high}, got {value}.")
    return value


def check_int_from(name: str, value: object, low: int) -> int:
    """Return ``value`` if it is an int ``>= low``, else raise naming ``name``."""
    if check_int(name, value) < low:
        raise invalid(name, f"must be >= {low}, got {value}.")
    return value


def check_choice(name: str, value: object, allowed: tuple) -> object:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError naming ``name``."""
    if value not in allowed:
        raise invalid(name, f"must be one of {allowed}, got {value!r}.")
    return value


def check_path(name: str, value, types=(str, os.PathLike)) -> str:
    """``value``, a path to a file (an instance of ``types``), as a string; else raise.

    Raises TypeError for a value of another type, and ValueError for an
    empty path; both name the parameter.
    """
    path = os.fspath(check_type(name, value, types, "of type STRING or os.PathLike"))
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise invalid(name, 'must name a file, got "".')
    return path


def check_in_folder(value: object) -> bool | str:
    """``in_folder``: False (one search), True or "subfolders"; returned as given.

    True is difPy's meaning: each input (a folder with its sub-folders, or a
    file) is searched on its own. "subfolders": each folder on its own.

    Raises TypeError for a value that is neither a bool nor a string, and
    ValueError for any other string; both name the parameter and the values
    allowed.
    """
    if isinstance(value, bool) or (isinstance(value, str) and value == "subfolders"):
        return value
    error = ValueError if isinstance(value, str) else TypeError
    raise invalid("in_folder", f'must be True, False or "subfolders", got {value!r}.', error)


#: difPy's message for its renamed ``lazy`` parameter (``-la``/``--lazy`` on its command line).
LAZY_RENAMED = (
    'Parameter "-la" / "lazy" was renamed to "-dim" / "same_dim" with difPy v4.2. '
    "Please update your script."
)

#: difPy's message for the similarity levels it removed in 3.0.8.
SIMILARITY_LEVELS_REMOVED = (
    'Since difPy v3.0.8, "similarity" parameter only accepts "duplicates" and "similar" '
    "as input options."
)


def check_processes(value: object) -> int:
    """``processes``, the CPU cores to use (processes or threads), 1..cores; None: all cores."""
    cores = os.cpu_count() or 1
    if value is None:
        return cores
    return check_int_range("processes", value, 1, cores)


def check_similarity(value: object) -> float:
    """Map ``similarity`` to an MSE threshold on the 0..255 scale ("near": "similar"'s,
    with near copies on top: :attr:`fastdif.model.Criteria.near`)."""
    if isinstance(value, str):
        if value in SIMILARITY_MSE:
            return SIMILARITY_MSE[value]
        if value in ("low", "normal", "high"):
            raise ValueError(f"{SIMILARITY_LEVELS_REMOVED} A number >= 0 is an MSE threshold.")
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, Real) or value != value:
        raise invalid(
            "similarity", 'must be "duplicates", "similar", "near" or of type INT or FLOAT.'
        )
    if value < 0:
        raise invalid("similarity", f"must be >= 0, got {value}.")
    return float(value)


#: Fewest rows per tile by default: below this, per-tile overhead dominates.
MIN_DEFAULT_CHUNKSIZE = 1024


def check_chunksize(value: object, n_images: int) -> int:
    """Rows per tile of the chunked path: default ``round(1_000_000 / N)``, at least 1,024."""
    if value is None:
        return max(MIN_DEFAULT_CHUNKSIZE, round(1_000_000 / max(n_images, 1)))
    return check_int_from("chunksize", value, 1)


#: How ``keep`` spells a rule: one criterion per list item (per ``--keep`` flag).
KEEP_SYNTAX = (
    "resolution, size, newest, oldest, format:A>B>... (e.g. format:raw>png>heif>jpeg>webp), "
    "prefer:PATH[|PATH...], avoid:PATH[|PATH...]"
)

#: The default keep-best rule: largest width x height, then file size (then path order).
DEFAULT_KEEP = ("resolution", "size")

#: Other names of a format, to its canonical name (Pillow's format name, lower case).
FORMAT_ALIASES = {"jpg": "jpeg", "mpo": "jpeg", "heic": "heif", "tif": "tiff"}


def canonical_format(name: str) -> str:
    """A format name as keep rules compare it: lower case, aliases resolved (``jpg``: ``jpeg``)."""
    name = name.strip().lower()
    return FORMAT_ALIASES.get(name, name)


@dataclass(frozen=True)
class PathPattern:
    """A folder named by ``prefer:`` or ``avoid:`` (see :func:`check_keep`).

    Attributes
    ----------
    text : str
        As written, less trailing separators.
    absolute : bool
        An absolute path matches the start of a file's absolute folder; a
        relative one matches whole consecutive folder names anywhere in it.
    parts : tuple of str
        Its folder names, case-folded.
    """

    text: str
    absolute: bool
    parts: tuple[str, ...]


@dataclass(frozen=True)
class KeepCriterion:
    """One criterion of a keep-best rule.

    Attributes
    ----------
    kind : str
        "resolution", "size", "newest", "oldest", "format", "prefer" or "avoid".
    values : tuple
        "format": canonical format names, best first; "prefer", "avoid":
        :class:`PathPattern`; else empty.
    text : str
        The criterion as :func:`check_keep` spells it back (format aliases resolved).
    """

    kind: str
    values: tuple = ()
    text: str = ""


def path_parts(path: str) -> list[str]:
    """The names of ``path`` split at every separator (``/``; on Windows also ``\\``)."""
    separators = "".join(re.escape(s) for s in {os.sep, os.altsep or os.sep})
    return re.split(f"[{separators}]", path)


def check_keep(value: object) -> tuple[KeepCriterion, ...]:
    """``keep``, a keep-best rule: criteria in order, each breaking the ties left before it.

    None is :data:`DEFAULT_KEEP`. A string is one criterion; a list or tuple
    of strings is the rule, and the criteria of :data:`DEFAULT_KEEP` it does
    not name follow it as tie-breakers (``"newest"`` is ``newest, resolution,
    size``). Criteria (see docs/curate.md): ``resolution``
    (larger width x height), ``size`` (larger file), ``newest``/``oldest``
    (EXIF DateTimeOriginal, then the modification time), ``format:A>B>...``
    (formats best first: ``raw`` or a format Pillow reads; aliases ``jpg``,
    ``heic``, ``tif``, ``mpo``), ``prefer:PATH[|PATH...]`` and
    ``avoid:PATH[|PATH...]`` (folders; ``|`` separates several, which count
    as one). Names and formats are case-insensitive.

    Raises TypeError for a value that is not a string or a list of strings,
    and ValueError for an unknown criterion or format, an empty rule, a
    criterion that could never break a tie (``size`` twice, ``newest`` with
    ``oldest``, ``format:`` twice) and an empty or ``..`` path; the message
    names the parameter and lists what is allowed.
    """
    if value is None:
        value = DEFAULT_KEEP
    elif isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        problem = f"must be a list of criteria (strings): {KEEP_SYNTAX}; got {value!r}."
        raise invalid("keep", problem, TypeError)
    if not value:
        raise invalid(
            "keep",
            "must name at least one criterion "
            f"(None for the default, {', '.join(DEFAULT_KEEP)}): {KEEP_SYNTAX}.",
        )
    rule = [_keep_criterion(text) for text in value]
    seen: dict[str, str] = {}
    for criterion in rule:
        once = "date" if criterion.kind in ("newest", "oldest") else criterion.kind
        if once in ("prefer", "avoid"):
            continue  # a second folder preference breaks the ties the first leaves
        if once in seen:
            raise invalid(
                "keep",
                f'"{criterion.text}" after "{seen[once]}" can never break a tie; give each of '
                "resolution, size, newest or oldest, and format: once.",
            )
        seen[once] = criterion.text
    # The default rule breaks the ties a given rule leaves, before path order.
    rule += [KeepCriterion(kind, (), kind) for kind in DEFAULT_KEEP if kind not in seen]
    return tuple(rule)


def _keep_criterion(text: str) -> KeepCriterion:
    name, colon, argument = text.partition(":")
    name = name.strip().lower()
    if not colon and name in ("resolution", "size", "newest", "oldest"):
        return KeepCriterion(name, (), name)
    if colon and name == "format":
        formats = tuple(canonical_format(f) for f in argument.split(">"))
        known = _known_formats()
        for fmt in formats:
            if fmt not in known:
                raise invalid(
                    "keep",
                    f'"{text}" names an unknown format "{fmt}"; formats are separated by ">" '
                    f"and may be raw or one Pillow reads: {', '.join(sorted(known))} "
                    f"(also {', '.join(sorted(FORMAT_ALIASES))}).",
                )
        if len(set(formats)) < len(formats):
            raise invalid("keep", f'"{text}" names a format twice.')
        return KeepCriterion("format", formats, "format:" + ">".join(formats))
    if colon and name in ("prefer", "avoid"):
        patterns = tuple(_path_pattern(text, p) for p in argument.split("|"))
        return KeepCriterion(name, patterns, f"{name}:" + "|".join(p.text for p in patterns))
    raise invalid(
        "keep",
        f'unknown criterion "{text}"; allowed: {KEEP_SYNTAX}. '
        "Give one criterion per list item (per --keep flag).",
    )


def _path_pattern(criterion: str, text: str) -> PathPattern:
    path = os.path.expanduser(text) if text.startswith("~") else text
    absolute = os.path.isabs(path)
    if absolute:
        path = os.path.abspath(path)  # "." and ".." resolved by name, as for the files
    parts = [p for p in path_parts(path) if p not in ("", ".")]
    if not absolute and ".." in parts:
        raise invalid(
            "keep", f'"{criterion}": a relative folder may not hold "..": use an absolute path.'
        )
    if not parts or (absolute and len(parts) == 1 and re.fullmatch(r"[A-Za-z]:", parts[0])):
        raise invalid(
            "keep",
            f'"{criterion}" holds an empty path or one that names no folder; '
            'separate several folders with "|".',
        )
    shown = text.rstrip("/" + (os.altsep or "") + os.sep) or text
    return PathPattern(shown, absolute, tuple(p.casefold() for p in parts))


def _known_formats() -> set[str]:
    """``raw``, ``heif`` (pillow-heif) and every format Pillow opens, in lower case."""
    Image.init()
    return {"raw", "heif"} | {name.lower() for name in Image.ID}


#: difPy's message for ``-mv`` (``move_to``) given with ``-d true`` (``delete``).
MOVE_AND_DELETE_EXCLUSIVE = (
    '"move_to" and "delete" parameter are mutually exclusive. Please select one of them.'
)


#: Keywords of older difPy versions that difPy 4.2.1 accepts and ignores in
#: ``build`` and ``search``, and what to do instead (fastdif warns, then
#: ignores them as difPy does).
LEGACY_KEYWORDS = {
    "logs": "the stats hold what it logged: dif.stats, and se.stats after a search",
    "lower_quality": "read se.lower_quality after the search",
    "show_output": "print se.result after the search",
    "delete": "call se.delete() after the search",
    "silent_del": "call se.delete(silent_del=True) after the search",
    "move_to": "call se.move_to(FOLDER) after the search",
}


def legacy_keyword(function: str, name: str) -> str:
    """The warning for difPy's legacy keyword ``name`` given to ``function``."""
    return (
        f'{function}(): "{name}" is a keyword of older difPy versions; it is ignored, as '
        f"difPy 4.2 ignores it. Instead, {LEGACY_KEYWORDS[name]}."
    )


def missing_decisions(path) -> str:
    """The warning for a decision file that does not exist."""
    return (
        f'decision file "{os.fspath(path)}" does not exist: no earlier decision applies '
        "(a first run has none; the report saves one)"
    )


def keep_names_no_folder(criterion: str, folder: str) -> str:
    """The warning for a ``prefer:``/``avoid:`` folder that holds none of the searched files."""
    return f'keep rule "{criterion}": no searched file is under {folder}/, so it never decides'
