"""Command line: ``python -m fastdif [FOLDER ...] [difPy flags]``.

Every flag is one :class:`Flag` of :data:`FLAGS`: :func:`make_parser` builds
argparse from it, and :func:`flag_table_markdown` renders the table of
docs/cli.md from it (``python -m fastdif.cli --render-docs`` rewrites it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from ._version import __version__
from .actions import undo_move, write_json, write_text
from .api import build, search
from .backends.dask import connect
from .engine import warmup
from .io.cache import CACHE_FILE, CacheWarning, clear_cache, default_cache_path
from .io.decisions import read as read_decisions
from .io.discover import validate_directories
from .io.store import has_meta
from .model import Repository, load
from .params import (
    LAZY_RENAMED,
    MOVE_AND_DELETE_EXCLUSIVE,
    SIMILARITY_LEVELS_REMOVED,
    check_keep,
)
from .report import check_report_path, listing, printable, to_csv

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _in_folder(text: str) -> bool | str:
    value = text.strip().lower()
    if value == "subfolders":
        return value
    try:
        return _bool(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected true, false or subfolders, got {text!r}"
        ) from None


def _path(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _similarity(text: str):
    if text in ("low", "normal", "high"):
        raise argparse.ArgumentTypeError(SIMILARITY_LEVELS_REMOVED)
    return text if text in ("duplicates", "similar", "near") else _number(text)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected "duplicates", "similar" or a number >= 0, got {text!r}'
        ) from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument on one line (README's promise), not after the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_escaped(message)} (see {self.prog} --help)\n")


class _Renamed(argparse.Action):
    """A difPy flag that was renamed: using it, with or without a value, is an error
    with difPy's own message."""

    def __init__(self, option_strings, dest, message, **kwargs):
        super().__init__(option_strings, dest, nargs="?", **kwargs)
        self.message = message

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(self.message)


@dataclass(frozen=True)
class Flag:
    """One command-line flag: the arguments of argparse's ``add_argument``, and a
    row of docs/cli.md's flag table.

    Attributes
    ----------
    names : tuple of str
        The option strings, short first; or the name of a positional argument.
    help : str
        What the flag does, without its default (:meth:`help_text` adds it).
    metavar : str or None
        The value's name (``BOOL``, ``DIR``); None for a flag that takes none.
    type : callable or None
        Turns the text given into the value (argparse's ``type``); None: the text.
    default : object
        The value when the flag is not given (argparse's; None is argparse's own).
    shown : str or None
        The default as the help says it, where that is not ``default`` itself
        (``"the current folder"`` for None); None: said from ``default``.
    action, nargs, choices
        argparse's, where given.
    exclusive : str
        Flags with the same non-empty name exclude each other.
    keywords : tuple of (str, object)
        More keywords of ``add_argument`` that the action takes.
    """

    names: tuple[str, ...]
    help: str
    metavar: str | None = None
    type: Callable[[str], object] | None = None
    default: object = None
    shown: str | None = None
    action: object = None
    nargs: str | None = None
    choices: tuple[str, ...] | None = None
    exclusive: str = ""
    keywords: tuple[tuple[str, object], ...] = ()

    def default_text(self) -> str:
        """The default as the help says it; "" where it says none."""
        if self.shown is not None:
            return self.shown
        if self.action is not None or self.default in (None, ()):
            return ""
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)

    def help_text(self) -> str:
        """The help that ``--help`` prints: what the flag does, then its default."""
        default = self.default_text()
        return f"{self.help} (default: {default})" if default else self.help

    def argparse_kwargs(self) -> dict:
        """The keywords of ``add_argument`` for this flag."""
        given = {
            "metavar": self.metavar,
            "type": self.type,
            "default": self.default,
            "action": self.action,
            "nargs": self.nargs,
            "choices": self.choices,
        }
        kwargs = {key: value for key, value in given.items() if value is not None}
        return {**kwargs, **dict(self.keywords), "help": self.help_text()}


#: Every flag of ``python -m fastdif``, in the order ``--help`` lists them.
FLAGS = (
    Flag(("folders",), "folders or files to search", "FOLDER", nargs="*",
         shown="the current folder"),
    Flag(("-D", "--directory"), "more folders or files to search", "PATH", nargs="+",
         default=()),
    Flag(("-Z", "--output_directory"), "folder for the result files", "DIR", _path,
         shown="the current folder"),
    Flag(("-r", "--recursive"), "search sub-folders", "BOOL", _bool, True),
    Flag(("-i", "--in_folder"),
         "true: search each FOLDER given on its own, with its sub-folders (difPy's meaning; a "
         "file given alone matches nothing); subfolders: each folder on its own; false: "
         "everything together", "MODE", _in_folder, False),
    Flag(("-le", "--limit_extensions"), "read only image file extensions", "BOOL", _bool, True),
    Flag(("-px", "--px_size"), "thumbnail size in pixels, 10..5000", "INT", int, 50),
    Flag(("-s", "--similarity"),
         '"duplicates" (MSE 0), "similar" (MSE 5), "near" (similar, and crops, overlays and '
         "tone edits: docs/modes.md) or an MSE threshold >= 0 on the 0..255 scale",
         "LEVEL", _similarity, "duplicates"),
    Flag(("-ro", "--rotate"), "also compare rotations by 90, 180 and 270 degrees", "BOOL",
         _bool, True),
    Flag(("-fl", "--flip"),
         "also compare mirror images (horizontal flips, of each rotation with -ro true)",
         "BOOL", _bool, False),
    Flag(("--color",),
         "false: compare the luma only, so greyscale and sepia copies match; flat images are "
         "compared in colour", "BOOL", _bool, True),
    Flag(("--normalize",),
         "compare thumbnails normalised to zero mean and one contrast, so brightness and "
         "contrast edits match; flat images are compared as they are", "BOOL", _bool, False),
    Flag(("-dim", "--same_dim"), "compare only images of the same dimensions", "BOOL", _bool,
         True),
    Flag(("-la", "--lazy"), "renamed to -dim/--same_dim in difPy 4.2: an error that says so",
         "BOOL", action=_Renamed, keywords=(("message", LAZY_RENAMED),)),
    Flag(("--reference",),
         "check the folders against a library: a folder or file (repeatable), or one saved "
         "repository; only matches with a new image are reported, and library images are "
         "always kept", "LIBRARY", _path, action="append"),
    Flag(("-wn", "--within_new"), "with --reference: also match the new images with each other",
         "BOOL", _bool, True),
    Flag(("--decisions",),
         "a decision file (downloaded from the report): files marked 'not a duplicate' are "
         "never grouped together, groups marked done are hidden (docs/curate.md)", "FILE",
         _path),
    Flag(("--show_done",), "with --decisions: also show the groups marked done", "BOOL", _bool,
         False),
    Flag(("--keep",),
         "keep-best rule, one criterion per flag (repeat it; each breaks the ties left by "
         "those before, then path order): resolution, size, newest, oldest, "
         "format:raw>png>heif>jpeg>webp, prefer:PATH[|PATH...], avoid:PATH[|PATH...]; see "
         "docs/curate.md", "CRITERION", action="append", shown="resolution, then size"),
    Flag(("-mv", "--move_to"), "move the lower quality files to DIR (never overwrites)", "DIR",
         _path),
    Flag(("-d", "--delete"),
         "move the lower quality files to the trash (the system's; where it has none for a "
         "file, .fastdif-trash in the search root, with an undo manifest), asking first; with "
         "--permanent, delete them", "BOOL", _bool, False),
    Flag(("-sd", "--silent_del"), "with -d: do not ask first", "BOOL", _bool, False),
    Flag(("--dry_run",),
         "with -d: list the files that would be trashed (deleted with --permanent), act on none",
         "BOOL", _bool, False),
    Flag(("--permanent",),
         "with -d: delete the files for good instead of moving them to the trash",
         action="store_true"),
    Flag(("--undo_move",),
         "move the files listed in a fastdif_moved_*.json manifest (written by -mv) back to "
         "where they were, never overwriting, and exit", "MANIFEST", _path),
    Flag(("-p", "--show_progress"), "show progress bars on a terminal", "BOOL", _bool, True),
    Flag(("-proc", "--processes"),
         "CPU cores to use, 1..CPU count: decoding processes, search and report threads",
         "INT", int, shown="all cores"),
    Flag(("-ch", "--chunksize"), "rows per tile for groups of more than 5,000 images", "INT",
         int, shown="1,000,000 / N"),
    Flag(("--scheduler",),
         "build and search on the Dask cluster whose scheduler is at ADDRESS (e.g. "
         'tcp://host:8786; needs pip install "fastdif[dask]"); its workers must see the files '
         "at the same paths", "ADDRESS", _path),
    Flag(("--store",),
         "stream the thumbnails (uint8) into DIR as they are decoded, instead of memory: DIR "
         "becomes a saved repository (fastdif.load reads it), memory stays flat for millions "
         "of files, and a build stopped by Ctrl-C or a crash resumes when run again with the "
         "same DIR; run again on a finished DIR, it updates it (new and changed files decoded, "
         "vanished ones dropped). The cache is used only with --cache", "DIR", _path),
    Flag(("--cache",), "thumbnail cache file: unchanged files are not decoded again", "PATH",
         _path, exclusive="cache",
         shown=f"$XDG_CACHE_HOME/fastdif/{CACHE_FILE}, or ~/.cache/fastdif/{CACHE_FILE}"),
    Flag(("--no-cache",), "decode every file; neither read nor write the cache",
         action="store_true", exclusive="cache"),
    Flag(("--clear-cache",), "delete the cache file (the default one or --cache PATH) and exit",
         action="store_true"),
    Flag(("--report",),
         "also write an HTML report to FILE (an earlier fastdif report there is replaced, any "
         "other file is an error): every group with thumbnails, sizes and MSE, to choose what "
         "to keep; written before -mv or -d act", "FILE", _path),
    Flag(("--format",),
         "format of the results file: json (_results.json, difPy's dict) or csv "
         "(_results.csv, one row per image: group, role, path, mse, width, height, bytes, "
         "folder, reference, kept_because); _lower_quality.json and _stats.json are always "
         "written", default="json", choices=("json", "csv")),
    Flag(("-q", "--quiet"), "print nothing but errors and questions; no progress bars",
         action="store_true", exclusive="talk"),
    Flag(("-v", "--verbose"),
         "also list invalid files with their reasons and every group before the summary",
         action="store_true", exclusive="talk"),
    Flag(("--version",), "show program's version number and exit", action="version",
         keywords=(("version", f"fastdif {__version__}"),)),
)  # fmt: skip


def make_parser() -> argparse.ArgumentParser:
    """The argument parser, with difPy's flags plus positional folders (:data:`FLAGS`)."""
    parser = _Parser(
        prog="python -m fastdif",
        description="Find duplicate and similar images (difPy-compatible flags). "
        "Writes fastdif_<timestamp>_results.json, _lower_quality.json and "
        "_stats.json to the output folder and prints a summary.",
    )
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for flag in FLAGS:
        if flag.exclusive and flag.exclusive not in groups:
            groups[flag.exclusive] = parser.add_mutually_exclusive_group()
        where = groups[flag.exclusive] if flag.exclusive else parser
        where.add_argument(*flag.names, **flag.argparse_kwargs())
    return parser


#: The marker comments around docs/cli.md's flag table.
DOCS_START, DOCS_END = "<!-- flags:start -->", "<!-- flags:end -->"


def flag_table_markdown() -> str:
    """docs/cli.md's flag table, in Markdown, rendered from :data:`FLAGS`."""
    rows = ["| Flag | Value | Default | What it does |", "|---|---|---|---|"]
    for flag in FLAGS:
        value = "\\|".join(flag.choices) if flag.choices else flag.metavar or ""
        if value and flag.nargs in ("*", "+"):
            value += " ..."
        names = ", ".join(f"`{name}`" for name in flag.names)
        if not flag.names[0].startswith("-"):
            names, value = f"`{value}` (positional)", ""
        cells = (names, f"`{value}`" if value else "", flag.default_text(), flag.help)
        rows.append("| " + " | ".join([cells[0], cells[1], *map(_markdown, cells[2:])]) + " |")
    return "\n".join(rows) + "\n"


def with_flag_table(text: str) -> str:
    """``text`` (docs/cli.md) with :func:`flag_table_markdown` between its two markers."""
    start, end = text.index(DOCS_START) + len(DOCS_START), text.index(DOCS_END)
    return f"{text[:start]}\n{flag_table_markdown()}{text[end:]}"


def render_docs(path: str = os.path.join("docs", "cli.md")) -> None:
    """Rewrite the flag table of the file ``path`` (docs/cli.md) from :data:`FLAGS`."""
    with open(path, encoding="utf-8") as src:
        text = src.read()
    with open(path, "w", encoding="utf-8") as dst:
        dst.write(with_flag_table(text))


def _markdown(text: str) -> str:
    """``text`` with the characters Markdown would read as markup escaped."""
    for char in "\\`*_<[]|~":
        text = text.replace(char, "\\" + char)
    return text


def run(args: argparse.Namespace) -> int:
    """Build, search, act and write the result files; return the exit status."""
    if args.clear_cache:
        return _clear_cache(args.cache)
    if args.undo_move:
        return _undo_move(args.undo_move)
    directories, output = _checked_inputs(args)
    dif, se = _build_and_search(args, directories)
    # The report goes first, while every file it shows is still where it was found.
    report_path = replaced = None
    if args.report:
        replaced = os.path.lexists(args.report)  # an earlier report: check_report_path allowed it
        report_path = se.report(
            args.report, processes=args.processes, show_progress=args.show_progress
        )
    lines = _act(args, se)
    written, unwritten = _write_results(output, args.format, se)
    wrote = [f"wrote {printable(p)}" for p in written]
    if report_path:
        wrote.append(
            f"wrote {printable(report_path)}"
            + (" (replaced the earlier report)" if replaced else "")
        )
    if not args.quiet:
        _print_summary(args, dif, se, lines + wrote)
    if unwritten:
        # After the summary: files may already be trashed, moved or deleted,
        # and what went where (and how to undo it) must not be lost with them.
        raise unwritten
    return 0


def _clear_cache(path: str | None) -> int:
    """``--clear-cache``: delete the cache file and say which files went."""
    removed = clear_cache(path or default_cache_path())
    print(f"removed {len(removed)} cache files" + "".join(f"\n  {printable(p)}" for p in removed))
    return 0


def _undo_move(manifest: str) -> int:
    """``--undo_move``: move the files back; status 1 where one could not be."""
    undone = undo_move(manifest)
    print(
        f"restored {len(undone['restored'])} files, {len(undone['failed'])} not restored, "
        f"{len(undone['not_moved'])} never moved"
    )
    for path, why in undone["failed"].items():
        print(f"  not restored: {printable(path)}: {_escaped(why)}")
    for path, why in undone["not_moved"].items():
        print(f"  never moved: {printable(path)}: {_escaped(why)}")
    return 0 if not undone["failed"] else 1


def _checked_inputs(args: argparse.Namespace) -> tuple[list[str], str]:
    """Check what can be checked before the build; the folders to search and the output folder.

    The output folder is created here, once the inputs are known to exist.
    """
    directories = list(args.folders) + list(args.directory) or [os.getcwd()]
    validate_directories(directories)  # a missing input creates no output folder
    check_keep(args.keep)  # a bad rule stops before the build
    if args.decisions:
        with _warnings_in_one_line(args):
            read_decisions(args.decisions)  # a bad file stops before the build
    output = args.output_directory or os.getcwd()
    if args.report:
        # Before the build: a photo named by mistake is never replaced, and
        # nothing is searched, moved or deleted.
        check_report_path(args.report)
    _output_folder(output)
    if args.quiet:
        args.show_progress = False
    return directories, output


def _act(args: argparse.Namespace, se) -> list[str]:
    """Move, trash or delete the lower quality files as the flags say; the summary's lines."""
    if args.move_to:
        return _moved_lines(se.move_to(args.move_to), args.move_to)
    if not args.delete:
        return []
    if args.dry_run and args.permanent:
        return _would_delete_lines(se.delete(dry_run=True))
    if args.dry_run:
        return _would_trash_lines(se.delete(dry_run=True, trash=True))
    if args.permanent:
        return _deleted_lines(se.delete(silent_del=args.silent_del))
    return _trashed_lines(se.delete(silent_del=args.silent_del, trash=True))


def _moved_lines(report: dict, folder: str) -> list[str]:
    """The summary of ``move_to``: how many files moved, those that did not, how to undo."""
    lines = [f"moved {len(report['moved'])} files to {printable(folder)}, "
             f"{len(report['failed'])} failed"]  # fmt: skip
    lines += [_reason("not moved", path, why) for path, why in report["failed"].items()]
    if report["manifest"]:
        lines.append(f"  undo with: python -m fastdif --undo_move {printable(report['manifest'])}")
    return lines


def _would_trash_lines(report: dict) -> list[str]:
    """The summary of ``delete(dry_run=True, trash=True)``: each file and its trash."""
    lines = [f"dry run: would trash {len(report['would_trash'])} files"]
    lines += [
        f"  would trash: {printable(path)} -> {printable(where)}"
        for path, where in report["would_trash"].items()
    ]
    return lines + [_reason("would keep", path, why) for path, why in report["failed"].items()]


def _would_delete_lines(report: dict) -> list[str]:
    """The summary of ``delete(dry_run=True)``: each file that would be deleted."""
    lines = [f"dry run: would delete {len(report['would_delete'])} files"]
    lines += [f"  would delete: {printable(path)}" for path in report["would_delete"]]
    return lines + [_reason("would keep", path, why) for path, why in report["failed"].items()]


def _deleted_lines(report: dict) -> list[str]:
    """The summary of ``delete()``: how many files were deleted, those kept and why."""
    if report.get("cancelled"):
        return ["cancelled: no file deleted"]
    lines = [f"deleted {len(report['deleted'])} files, {len(report['failed'])} kept"]
    return lines + [_reason("not deleted", path, why) for path, why in report["failed"].items()]


def _trashed_lines(report: dict) -> list[str]:
    """The summary of ``delete(trash=True)``: how many files went to which trash, how to undo."""
    if report.get("cancelled"):
        return ["cancelled: no file trashed"]
    lines = [f"trashed {len(report['trashed'])} files, {len(report['failed'])} kept"]
    counts: dict[tuple[bool, str], int] = {}
    for path, where in report["trashed"].items():
        place = (path in report["moved"], where)
        counts[place] = counts.get(place, 0) + 1
    for (fallback, where), count in counts.items():
        place = printable(where) if fallback else f"the system trash ({printable(where)})"
        lines.append(f"  {count} to {place}")
    lines += [
        f"  undo with: python -m fastdif --undo_move {printable(manifest)}"
        for manifest in report["manifests"]
    ]
    lines += [_reason("not trashed", path, why) for path, why in report["failed"].items()]
    return lines


def _print_summary(args: argparse.Namespace, dif, se, lines: list[str]) -> None:
    """Print the groups (with ``-v``), the one-line summary, then ``lines``."""
    stats = se.stats
    found = stats["process"]["search"]["matches_found"]
    groups = sum(len(g) for g in se.result.values()) if dif.in_folder else len(se.result)
    if args.verbose:
        print(listing(se))
    print(
        f"fastdif: {stats['total_files']} files, {stats['invalid_files']['count']} invalid, "
        f"{groups} groups, {found['duplicates']} duplicates, {found['similar']} similar; "
        f"build {stats['process']['build']['duration']['seconds_elapsed']:.2f} s, "
        f"search {stats['process']['search']['duration']['seconds_elapsed']:.2f} s"
    )
    chained = stats["process"]["search"].get("chained")
    if chained:
        print(
            f"{len(chained)} more files match a group member but not its key within the "
            "threshold: listed apart as chained, never moved or deleted"
        )
    marked = stats["process"]["search"].get("decisions")
    if marked:
        print(
            f"decisions: {marked['pairs_dropped']} pairs dropped, "
            f"{marked['groups_hidden']} done groups hidden"
        )
    used = stats["process"]["build"].get("cache")
    if used:
        print(f"cache {printable(used['path'])}: {used['hits']} reused, {used['decoded']} decoded")
    loaded = stats["process"]["build"].get("saved")
    if loaded:
        print(
            f"saved repositories {', '.join(printable(p) for p in loaded['paths'])}: "
            f"reused {loaded['reused']}, decoded {loaded['decoded']}"
        )
    kept = stats["process"]["build"].get("store")
    if kept:
        reused = kept["resumed"] + kept.get("reused", 0)
        print(f"store {printable(kept['path'])}: reused {reused}, decoded {kept['decoded']}")
    for line in lines:
        print(line)


def _write_results(output: str, results_format: str, se) -> tuple[list[str], OSError | None]:
    """Write the result files to the folder ``output``, stopping at the first that fails.

    Returns the paths written and, if one could not be written, an error
    that names it (a full disk says only "No space left on device").
    """
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    if results_format == "csv":
        files = [(f"fastdif_{stamp}_results.csv", write_text, to_csv(se))]
    else:
        files = [(f"fastdif_{stamp}_results.json", write_json, se.result)]
    files += [
        (f"fastdif_{stamp}_{part}.json", write_json, data)
        for part, data in (("lower_quality", se.lower_quality), ("stats", se.stats))
    ]
    written = []
    for name, write, data in files:
        try:
            written.append(write(output, name, data))
        except OSError as exc:
            path = printable(os.path.join(output, name))
            return written, OSError(f"could not write {path}: {exc.strerror or exc}")
    return written, None


def _output_folder(path: str) -> None:
    """Create the output folder ``path`` with its parents, as difPy's ``-Z`` does."""
    if os.path.isdir(path):
        return
    if os.path.lexists(path):
        raise NotADirectoryError(f'Output directory "{path}" is not a directory')
    os.makedirs(path)


def _reason(what: str, path: str, why: str) -> str:
    return f"  {what}: {printable(path)}: {_escaped(why)}"


def _escaped(text: str) -> str:
    """``text`` with each character that is not printable as its escape (a line
    break as ``\\n``), for messages that quote file names."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _library(paths: list[str] | None):
    """The ``reference`` of ``build`` for ``--reference``: paths, or one saved repository."""
    if not paths:
        return None
    saved = [has_meta(path) for path in paths]
    if not any(saved):
        return paths
    if len(paths) > 1:
        raise ValueError("--reference: a saved repository must be the only library given")
    return load(paths[0])


def _build_and_search(args: argparse.Namespace, directories: list[str]):
    """Build the repository of ``directories`` and search it; the repository and the result.

    Connects to ``--scheduler`` for both, or warms the local search's
    kernels up while the build decodes.
    """
    # A store resumes by itself; the default cache would hold its thumbnails a second time.
    cache = None if args.no_cache else (args.cache or args.store is None)
    library = _library(args.reference)
    scheduler = connect(args.scheduler) if args.scheduler else None
    warm = _warm_up(args, library) if scheduler is None else None
    try:
        dif = _build(args, directories, cache, scheduler, library)
        return dif, _search(args, dif, scheduler)
    finally:
        if scheduler is not None:
            scheduler.close()
        if warm is not None:
            warm.stop()


def _warm_up(args: argparse.Namespace, library):
    """Start compiling (or loading) the local search's kernels for the dtypes it will compare."""
    library_dtype = None
    if library is not None:
        saved = isinstance(library, Repository) and args.color and not args.normalize
        # A transformed search compares float32 copies of the thumbnails.
        library_dtype = library.tensors.dtype if saved else "f4"
    return warmup.start(args.similarity, library_dtype, "u1" if args.store else "f4")


@contextmanager
def _warnings_in_one_line(args: argparse.Namespace):
    """Print the warnings raised inside, one line each, each text once per run."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        warnings.simplefilter("always", UserWarning)
        yield
    shown = args.__dict__.setdefault("warned", set())
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, UserWarning) and text not in shown:
            shown.add(text)
            # Without the source line Python's default format adds.
            print(f"fastdif: warning: {_escaped(text)}", file=sys.stderr)


def _build(args: argparse.Namespace, directories, cache, scheduler, library):
    with _warnings_in_one_line(args):
        return build(
            directories,
            recursive=args.recursive,
            in_folder=args.in_folder,
            limit_extensions=args.limit_extensions,
            px_size=args.px_size,
            show_progress=args.show_progress,
            processes=args.processes,
            cache=cache,
            scheduler=scheduler,
            store=args.store,
            reference=library,
        )


def _search(args: argparse.Namespace, dif, scheduler):
    with _warnings_in_one_line(args):
        return search(
            dif,
            similarity=args.similarity,
            rotate=args.rotate,
            same_dim=args.same_dim,
            show_progress=args.show_progress,
            processes=args.processes,
            chunksize=args.chunksize,
            scheduler=scheduler,
            within_new=args.within_new,
            keep=args.keep,
            decisions=args.decisions,
            show_done=args.show_done,
            flip=args.flip,
            color=args.color,
            normalize=args.normalize,
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fastdif`` and the ``fastdif`` command."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.move_to and args.delete:
        parser.error(MOVE_AND_DELETE_EXCLUSIVE)
    if args.permanent and not args.delete:
        parser.error('"--permanent" only goes with "-d true"')
    if hasattr(sys.stdout, "reconfigure"):
        # Paths with undecodable bytes (non-UTF-8 names) print as \udcXX
        # instead of failing after the work is done.
        sys.stdout.reconfigure(errors="backslashreplace")
    terminated: list[int] = []
    previous = _terminate_as_interrupt(terminated)
    try:
        return run(args)
    except (
        ValueError,
        TypeError,
        OSError,  # missing paths, permissions, a Dask scheduler that cannot be reached
        RuntimeError,
        ImportError,
    ) as exc:
        print(f"{parser.prog}: error: {_escaped(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = ""
        if args.store and not os.path.exists(args.store):
            resume = f"; run the same command again to resume the build of {printable(args.store)}"
        what = "terminated" if terminated else "interrupted"
        print(f"{parser.prog}: {what}{resume}", file=sys.stderr)
        return 128 + (terminated[0] if terminated else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_as_interrupt(received: list[int]):
    """Make SIGTERM (``kill``, a service manager, ``timeout``) stop the run as Ctrl-C does.

    By default SIGTERM ends Python at once, with no cleanup: the decoding
    workers are left to find a broken pipe, and nothing says what happened.
    Here it is handed to the SIGINT handler in force, so it is held wherever
    Ctrl-C is (while a worker starts, while a kernel runs) and then raises
    KeyboardInterrupt; ``received`` records it. Returns the handler to put
    back, or None where nothing was installed (not the main thread, SIGTERM
    ignored).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_IGN, None):
        return None

    def handler(signum, frame):
        received.append(signum)
        interrupt = signal.getsignal(signal.SIGINT)
        if not callable(interrupt):  # SIGINT ignored (a background job) or default
            raise KeyboardInterrupt
        interrupt(signal.SIGINT, frame)

    signal.signal(signal.SIGTERM, handler)
    return previous


if __name__ == "__main__":
    # python -m fastdif.cli --render-docs [FILE] rewrites docs/cli.md's table; else as fastdif.
    if sys.argv[1:2] == ["--render-docs"]:
        render_docs(*sys.argv[2:3])
        sys.exit(0)
    sys.exit(main())
