"""Command line: ``python -m fastdif [FOLDER ...] [difPy flags]``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from datetime import datetime

from ._version import __version__
from .actions import undo_move, write_json, write_text
from .api import build, search
from .backends.dask import connect
from .engine import warmup
from .io.cache import CACHE_FILE, CacheWarning, clear_cache, default_cache_path
from .io.decisions import read as read_decisions
from .io.discover import validate_directories
from .io.store import META_FILE
from .model import Repository, load
from .params import LAZY_RENAMED, SIMILARITY_LEVELS_REMOVED, check_keep
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
    return text if text in ("duplicates", "similar") else _number(text)


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


def make_parser() -> argparse.ArgumentParser:
    """The argument parser, with difPy's flags plus positional folders."""
    parser = _Parser(
        prog="python -m fastdif",
        description="Find duplicate and similar images (difPy-compatible flags). "
        "Writes fastdif_<timestamp>_results.json, _lower_quality.json and "
        "_stats.json to the output folder and prints a summary.",
    )
    add = parser.add_argument
    add(
        "folders",
        nargs="*",
        metavar="FOLDER",
        help="folders or files to search (default: the current folder)",
    )
    add(
        "-D",
        "--directory",
        nargs="+",
        default=[],
        metavar="PATH",
        help="more folders or files to search",
    )
    add(
        "-Z",
        "--output_directory",
        type=_path,
        default=None,
        metavar="DIR",
        help="folder for the result files (default: the current folder)",
    )
    add(
        "-r",
        "--recursive",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="search sub-folders (default: true)",
    )
    add(
        "-i",
        "--in_folder",
        type=_in_folder,
        default=False,
        metavar="MODE",
        help="true: search each FOLDER given on its own, with its sub-folders (difPy's "
        "meaning; a file given alone matches nothing); subfolders: each folder on its own; "
        "false: everything together (default: false)",
    )
    add(
        "-le",
        "--limit_extensions",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="read only image file extensions (default: true)",
    )
    add(
        "-px",
        "--px_size",
        type=int,
        default=50,
        metavar="INT",
        help="thumbnail size in pixels, 10..5000 (default: 50)",
    )
    add(
        "-s",
        "--similarity",
        type=_similarity,
        default="duplicates",
        metavar="LEVEL",
        help='"duplicates" (MSE 0), "similar" (MSE 5) or an MSE threshold >= 0 '
        "on the 0..255 scale (default: duplicates)",
    )
    add(
        "-ro",
        "--rotate",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="also compare rotations by 90, 180 and 270 degrees (default: true)",
    )
    add(
        "-fl",
        "--flip",
        type=_bool,
        default=False,
        metavar="BOOL",
        help="also compare mirror images (horizontal flips, of each rotation with -ro true) "
        "(default: false)",
    )
    add(
        "--color",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="false: compare the luma only, so greyscale and sepia copies match; flat "
        "images are compared in colour (default: true)",
    )
    add(
        "--normalize",
        type=_bool,
        default=False,
        metavar="BOOL",
        help="compare thumbnails normalised to zero mean and one contrast, so brightness "
        "and contrast edits match; flat images are compared as they are (default: false)",
    )
    add(
        "-dim",
        "--same_dim",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="compare only images of the same dimensions (default: true)",
    )
    add(
        "-la",
        "--lazy",
        action=_Renamed,
        message=LAZY_RENAMED,
        metavar="BOOL",
        help="renamed to -dim/--same_dim in difPy 4.2: an error that says so",
    )
    add(
        "--reference",
        type=_path,
        action="append",
        default=None,
        metavar="LIBRARY",
        help="check the folders against a library: a folder or file (repeatable), or one "
        "saved repository; only matches with a new image are reported, and library images "
        "are always kept",
    )
    add(
        "-wn",
        "--within_new",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="with --reference: also match the new images with each other (default: true)",
    )
    add(
        "--decisions",
        type=_path,
        default=None,
        metavar="FILE",
        help="a decision file (downloaded from the report): files marked 'not a duplicate' "
        "are never grouped together, groups marked done are hidden (docs/curate.md)",
    )
    add(
        "--show_done",
        type=_bool,
        default=False,
        metavar="BOOL",
        help="with --decisions: also show the groups marked done (default: false)",
    )
    add(
        "--keep",
        action="append",
        default=None,
        metavar="CRITERION",
        help="keep-best rule, one criterion per flag (repeat it; each breaks the ties left "
        "by those before, then path order): resolution, size, newest, oldest, "
        "format:raw>png>heif>jpeg>webp, prefer:PATH[|PATH...], avoid:PATH[|PATH...] "
        "(default: resolution, then size); see docs/curate.md",
    )
    add(
        "-mv",
        "--move_to",
        type=_path,
        default=None,
        metavar="DIR",
        help="move the lower quality files to DIR (never overwrites)",
    )
    add(
        "-d",
        "--delete",
        type=_bool,
        default=False,
        metavar="BOOL",
        help="move the lower quality files to the trash (the system's; where it has none for "
        "a file, .fastdif-trash in the search root, with an undo manifest), asking first; "
        "with --permanent, delete them (default: false)",
    )
    add(
        "-sd",
        "--silent_del",
        type=_bool,
        default=False,
        metavar="BOOL",
        help="with -d: do not ask first (default: false)",
    )
    add(
        "--dry_run",
        type=_bool,
        default=False,
        metavar="BOOL",
        help="with -d: list the files that would be trashed (deleted with --permanent), "
        "act on none (default: false)",
    )
    add(
        "--permanent",
        action="store_true",
        help="with -d: delete the files for good instead of moving them to the trash",
    )
    add(
        "--undo_move",
        type=_path,
        default=None,
        metavar="MANIFEST",
        help="move the files listed in a fastdif_moved_*.json manifest (written by -mv) "
        "back to where they were, never overwriting, and exit",
    )
    add(
        "-p",
        "--show_progress",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="show progress bars on a terminal (default: true)",
    )
    add(
        "-proc",
        "--processes",
        type=int,
        default=None,
        metavar="INT",
        help="CPU cores to use, 1..CPU count: decoding processes, search and report "
        "threads (default: all cores)",
    )
    add(
        "-ch",
        "--chunksize",
        type=int,
        default=None,
        metavar="INT",
        help="rows per tile for groups of more than 5,000 images (default: 1,000,000 / N)",
    )
    add(
        "--scheduler",
        type=_path,
        default=None,
        metavar="ADDRESS",
        help="build and search on the Dask cluster whose scheduler is at ADDRESS "
        '(e.g. tcp://host:8786; needs pip install "fastdif[dask]"); its workers must see '
        "the files at the same paths",
    )
    add(
        "--store",
        type=_path,
        default=None,
        metavar="DIR",
        help="stream the thumbnails (uint8) into DIR as they are decoded, instead of memory: "
        "DIR becomes a saved repository (fastdif.load reads it), memory stays flat for "
        "millions of files, and a build stopped by Ctrl-C or a crash resumes when run again "
        "with the same DIR. The cache is used only with --cache. DIR must not exist",
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache",
        type=_path,
        default=None,
        metavar="PATH",
        help="thumbnail cache file: unchanged files are not decoded again (default: "
        "$XDG_CACHE_HOME/fastdif/" + CACHE_FILE + ", or ~/.cache/fastdif/" + CACHE_FILE + ")",
    )
    cache.add_argument(
        "--no-cache",
        action="store_true",
        help="decode every file; neither read nor write the cache",
    )
    add(
        "--clear-cache",
        action="store_true",
        help="delete the cache file (the default one or --cache PATH) and exit",
    )
    add(
        "--report",
        type=_path,
        default=None,
        metavar="FILE",
        help="also write an HTML report to FILE (an earlier fastdif report there is "
        "replaced, any other file is an error): every group with thumbnails, sizes and MSE, "
        "to choose what to keep; written before -mv or -d act",
    )
    add(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="format of the results file: json (_results.json, difPy's dict) or csv "
        "(_results.csv, one row per image: group, role, path, mse, width, height, bytes, "
        "folder, reference, kept_because); _lower_quality.json and _stats.json are always "
        "written (default: json)",
    )
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing but errors and questions; no progress bars",
    )
    talk.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also list invalid files with their reasons and every group before the summary",
    )
    add("--version", action="version", version=f"fastdif {__version__}")
    return parser


def run(args: argparse.Namespace) -> int:
    """Build, search, act and write the result files; return the exit status."""
    # A store resumes by itself; the default cache would hold its thumbnails a second time.
    cache = None if args.no_cache else (args.cache or args.store is None)
    if args.clear_cache:
        removed = clear_cache(args.cache or default_cache_path())
        print(
            f"removed {len(removed)} cache files" + "".join(f"\n  {printable(p)}" for p in removed)
        )
        return 0
    if args.undo_move:
        undone = undo_move(args.undo_move)
        print(
            f"restored {len(undone['restored'])} files, {len(undone['failed'])} not restored, "
            f"{len(undone['not_moved'])} never moved"
        )
        for path, why in undone["failed"].items():
            print(f"  not restored: {printable(path)}: {_escaped(why)}")
        for path, why in undone["not_moved"].items():
            print(f"  never moved: {printable(path)}: {_escaped(why)}")
        return 0 if not undone["failed"] else 1
    directories = list(args.folders) + list(args.directory) or [os.getcwd()]
    validate_directories(directories)  # a missing input creates no output folder
    check_keep(args.keep)  # a bad rule stops before the build
    if args.decisions:
        read_decisions(args.decisions)  # a bad file stops before the build
    output = args.output_directory or os.getcwd()
    if args.report:
        # Before the build: a photo named by mistake is never replaced, and
        # nothing is searched, moved or deleted.
        check_report_path(args.report)
    _output_folder(output)
    if args.quiet:
        args.show_progress = False
    library = _library(args.reference)
    scheduler = None
    if args.scheduler:
        scheduler = connect(args.scheduler)
    # The local search's kernels compile (or load) while the build decodes.
    warm = None
    if scheduler is None:
        library_dtype = None
        if library is not None:
            saved = isinstance(library, Repository) and args.color and not args.normalize
            # A transformed search compares float32 copies of the thumbnails.
            library_dtype = library.tensors.dtype if saved else "f4"
        warm = warmup.start(args.similarity, library_dtype, "u1" if args.store else "f4")
    try:
        dif, se = _build_and_search(args, directories, cache, scheduler, library)
    finally:
        if scheduler is not None:
            scheduler.close()
        if warm is not None:
            warm.stop()
    # The report goes first, while every file it shows is still where it was found.
    report_path = None
    if args.report:
        report_path = se.report(
            args.report, processes=args.processes, show_progress=args.show_progress
        )
    lines = []
    if args.move_to:
        report = se.move_to(args.move_to)
        lines.append(
            f"moved {len(report['moved'])} files to {printable(args.move_to)}, "
            f"{len(report['failed'])} failed"
        )
        lines += [_reason("not moved", path, why) for path, why in report["failed"].items()]
        if report["manifest"]:
            lines.append(
                f"  undo with: python -m fastdif --undo_move {printable(report['manifest'])}"
            )
    elif args.delete and args.dry_run and not args.permanent:
        report = se.delete(dry_run=True, trash=True)
        lines.append(f"dry run: would trash {len(report['would_trash'])} files")
        lines += [
            f"  would trash: {printable(path)} -> {printable(where)}"
            for path, where in report["would_trash"].items()
        ]
        lines += [_reason("would keep", path, why) for path, why in report["failed"].items()]
    elif args.delete and args.dry_run:
        report = se.delete(dry_run=True)
        lines.append(f"dry run: would delete {len(report['would_delete'])} files")
        lines += [f"  would delete: {printable(path)}" for path in report["would_delete"]]
        lines += [_reason("would keep", path, why) for path, why in report["failed"].items()]
    elif args.delete and not args.permanent:
        lines += _trashed_lines(se.delete(silent_del=args.silent_del, trash=True))
    elif args.delete:
        report = se.delete(silent_del=args.silent_del)
        lines.append(f"deleted {len(report['deleted'])} files, {len(report['failed'])} kept")
        lines += [_reason("not deleted", path, why) for path, why in report["failed"].items()]
    written, unwritten = _write_results(output, args.format, se)
    if report_path:
        written.append(report_path)
    if args.quiet:
        if unwritten:
            raise unwritten
        return 0
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
    marked = stats["process"]["search"].get("decisions")
    if marked:
        print(
            f"decisions: {marked['pairs_dropped']} pairs dropped, "
            f"{marked['groups_hidden']} done groups hidden"
        )
    used = stats["process"]["build"].get("cache")
    if used:
        print(f"cache {printable(used['path'])}: {used['hits']} reused, {used['decoded']} decoded")
    for line in lines:
        print(line)
    for path in written:
        print(f"wrote {printable(path)}")
    if unwritten:
        # After the summary: files may already be trashed, moved or deleted,
        # and what went where (and how to undo it) must not be lost with them.
        raise unwritten
    return 0


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


def _trashed_lines(report: dict) -> list[str]:
    """The summary of ``delete(trash=True)``: how many files went to which trash, how to undo."""
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
    saved = [os.path.isfile(os.path.join(path, META_FILE)) for path in paths]
    if not any(saved):
        return paths
    if len(paths) > 1:
        raise ValueError("--reference: a saved repository must be the only library given")
    return load(paths[0])


def _build_and_search(args, directories, cache, scheduler, library):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        dif = build(
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
    for warning in caught:
        # One line each, without the source line Python's default format adds.
        print(f"fastdif: warning: {_escaped(str(warning.message))}", file=sys.stderr)
    se = search(
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
    return dif, se


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fastdif`` and the ``fastdif`` command."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.move_to and args.delete:
        parser.error(
            '"move_to" and "delete" parameter are mutually exclusive. Please select one of them.'
        )
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
