"""Find image files: validate inputs, walk folders, filter extensions, group by folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from PIL import Image

UNSUPPORTED = "Unsupported file type"
NOT_A_FILE = "Not a regular file (named pipe, socket or device)"


def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) that Pillow can open."""
    Image.init()
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def validate_directories(directory: tuple) -> list[str]:
    """Check the paths given to ``build`` and return them as strings.

    Accepts strings and ``os.PathLike`` objects, and lists of them.

    Raises
    ------
    ValueError
        Nothing given, or the same path given twice.
    TypeError
        A path that is neither a string, an ``os.PathLike`` nor a list of them.
    FileNotFoundError
        A path that does not exist.
    """
    flat: list = []
    for item in directory:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    if not flat:
        raise ValueError("Invalid directory parameter: no directory provided.")
    paths = []
    for item in flat:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(
                "Invalid directory parameter: directories must be of type STRING, "
                f"os.PathLike or a LIST of them, got {type(item).__name__}."
            )
        paths.append(os.fspath(item))
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f'Directory "{path}" does not exist')
    resolved = [os.path.realpath(p) for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ValueError(
            "Invalid directory parameter: invalid attempt to compare a directory with itself."
        )
    return sorted(paths)


@dataclass
class Discovery:
    """Files found by :func:`discover`, in deterministic order.

    ``files`` are image candidates; ``folders[i]`` is the folder of ``files[i]``
    (its search group with ``in_folder``); ``invalid`` maps skipped paths to a
    one-line reason.
    """

    files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)


def discover(paths: list[str], recursive: bool, limit_extensions: bool) -> Discovery:
    """Walk ``paths`` and list the files to decode.

    Symbolic links are followed, but a folder already visited (same device and
    inode) is not entered again, so link loops end. A file reached twice (through
    overlapping inputs or links) is kept once, under the first path found.
    Hidden files and folders are included. Named pipes, sockets and devices
    are reported as invalid, never opened. Order is sorted by path within each
    folder, inputs in sorted order.
    """
    extensions = image_extensions() if limit_extensions else None
    found = Discovery()
    seen_files: set[str] = set()
    seen_dirs: set[tuple[int, int]] = set()

    def add_file(path: str, folder: str) -> None:
        real = os.path.realpath(path)
        if real in seen_files:
            return
        seen_files.add(real)
        if extensions is not None and os.path.splitext(path)[1].lower() not in extensions:
            found.invalid[path] = UNSUPPORTED
            return
        found.files.append(path)
        found.folders.append(folder)

    def walk(folder: str) -> None:
        try:
            st = os.stat(folder)
        except OSError as exc:
            found.invalid[folder] = f"Cannot read folder: {exc.strerror or exc}"
            return
        if (st.st_dev, st.st_ino) in seen_dirs:
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            found.invalid[folder] = f"Cannot read folder: {exc.strerror or exc}"
            return
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError as exc:
                found.invalid[entry.path] = f"Cannot read: {exc.strerror or exc}"
                continue
            if is_dir:
                subfolders.append(entry.path)
            elif is_file:
                add_file(entry.path, folder)
            elif entry.is_symlink():
                found.invalid[entry.path] = "Dangling symbolic link"
            else:
                found.invalid[entry.path] = NOT_A_FILE
        if recursive:
            for sub in subfolders:
                walk(sub)

    for path in paths:
        if os.path.isdir(path):
            walk(path)
        elif os.path.isfile(path):
            add_file(path, os.path.dirname(path) or ".")
        else:
            # Opening a named pipe would block until a writer comes.
            found.invalid[path] = NOT_A_FILE
    return found
