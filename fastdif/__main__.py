"""Command line: ``python -m fastdif [FOLDER ...] [difPy flags]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime

from . import __version__
from .repository import build
from .search import search

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _similarity(text: str):
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


def make_parser() -> argparse.ArgumentParser:
    """The argument parser, with difPy's flags plus positional folders."""
    parser = argparse.ArgumentParser(
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
        type=_bool,
        default=False,
        metavar="BOOL",
        help="search every folder on its own (default: false)",
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
        "-dim",
        "--same_dim",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="compare only images of the same dimensions (default: true)",
    )
    add(
        "-mv",
        "--move_to",
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
        help="delete the lower quality files, asking first (default: false)",
    )
    add(
        "-sd",
        "--silent_del",
        type=_bool,
        default=False,
        metavar="BOOL",
        help="delete without asking (default: false)",
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
        help="worker processes, 1..CPU count (default: all cores)",
    )
    add(
        "-ch",
        "--chunksize",
        type=int,
        default=None,
        metavar="INT",
        help="rows per tile for groups of more than 5,000 images (default: 1,000,000 / N)",
    )
    add("--version", action="version", version=f"fastdif {__version__}")
    return parser


def write_json(folder: str, name: str, data) -> str:
    """Write ``data`` as JSON to ``folder/name`` atomically, never replacing a file.

    Returns the path written; a numbered suffix is added if the name is taken.
    """
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastdif-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
        stem, ext = os.path.splitext(name)
        number = 0
        while True:
            target = os.path.join(folder, name if number == 0 else f"{stem}_{number}{ext}")
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                number += 1
    finally:
        os.unlink(tmp)


def run(args: argparse.Namespace) -> int:
    """Build, search, act and write the result files; return the exit status."""
    directories = list(args.folders) + list(args.directory) or [os.getcwd()]
    output = args.output_directory or os.getcwd()
    if not os.path.isdir(output):
        raise FileNotFoundError(f'Output directory "{output}" does not exist')
    dif = build(
        directories,
        recursive=args.recursive,
        in_folder=args.in_folder,
        limit_extensions=args.limit_extensions,
        px_size=args.px_size,
        show_progress=args.show_progress,
        processes=args.processes,
    )
    se = search(
        dif,
        similarity=args.similarity,
        rotate=args.rotate,
        same_dim=args.same_dim,
        show_progress=args.show_progress,
        processes=args.processes,
        chunksize=args.chunksize,
    )
    lines = []
    if args.move_to:
        report = se.move_to(args.move_to)
        lines.append(
            f"moved {len(report['moved'])} files to {args.move_to}, {len(report['failed'])} failed"
        )
        lines += [f"  not moved: {path}: {why}" for path, why in report["failed"].items()]
    elif args.delete:
        report = se.delete(silent_del=args.silent_del)
        lines.append(f"deleted {len(report['deleted'])} files, {len(report['failed'])} kept")
        lines += [f"  not deleted: {path}: {why}" for path, why in report["failed"].items()]
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    written = [
        write_json(output, f"fastdif_{stamp}_{part}.json", data)
        for part, data in (
            ("results", se.result),
            ("lower_quality", se.lower_quality),
            ("stats", se.stats),
        )
    ]
    stats = se.stats
    found = stats["process"]["search"]["matches_found"]
    groups = sum(len(g) for g in se.result.values()) if dif.in_folder else len(se.result)
    print(
        f"fastdif: {stats['total_files']} files, {stats['invalid_files']['count']} invalid, "
        f"{groups} groups, {found['duplicates']} duplicates, {found['similar']} similar; "
        f"build {stats['process']['build']['duration']['seconds_elapsed']:.2f} s, "
        f"search {stats['process']['search']['duration']['seconds_elapsed']:.2f} s"
    )
    for line in lines:
        print(line)
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fastdif`` and the ``fastdif`` command."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
