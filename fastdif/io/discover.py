"""Find image files: validate inputs, walk folders, filter extensions, group by folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial

from PIL import Image

from ..trash import is_trash_folder
from . import decode  # noqa: F401 - registers the HEIC/HEIF opener: image_extensions lists them

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
    (its search group with ``in_folder="subfolders"``) and ``roots[i]`` the
    input it was found under, one of the paths given (its search group with
    ``in_folder=True``); ``invalid`` maps skipped paths to a one-line reason.
    """

    files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)


def discover(paths: list[str], recursive: bool, limit_extensions: bool) -> Discovery:
    """Walk ``paths`` and list the files to decode.

    Symbolic links are followed, but a folder already visited (same device and
    inode) is not entered again, so link loops end. A file reached twice
    (through overlapping inputs, links, hard links or a bind mount: any two
    paths with one device and inode) is kept once, under the first path found,
    so a picture is never its own duplicate. Hidden files and folders are
    included, but not trash folders below an input
    (:func:`fastdif.trash.is_trash_folder`: ``.fastdif-trash``, ``.Trash``,
    ``.Trash-<uid>``, ``.Trashes``, ``$RECYCLE.BIN`` and the home trash): a
    file thrown away, found again, could become a group's key and its
    original be thrown away in turn. Named pipes, sockets and devices are
    reported as invalid, never opened. Order is sorted by path within each
    folder, inputs in sorted order; a folder's files come before its
    sub-folders, each walked depth first. The walk keeps its own stack, so a
    tree of any depth is walked.
    """
    extensions = image_extensions() if limit_extensions else None
    found = Discovery()
    seen_files: set[tuple] = set()
    seen_dirs: set[tuple[int, int]] = set()

    def add_file(path: str, folder: str, root: str, stat) -> None:
        """Add ``path`` (found under the input ``root``) unless its file was found
        before; ``stat`` gives its status."""
        candidate = extensions is None or os.path.splitext(path)[1].lower() in extensions
        try:
            st = stat()
        except OSError as exc:
            found.invalid[path] = f"Cannot read: {exc.strerror or exc}"
            return
        # Device and inode name the file whatever the path; a file system
        # without inode numbers reports 0, and then the resolved path must do.
        same = (st.st_dev, st.st_ino) if st.st_ino else os.path.realpath(path)
        # Kept apart by kind: a hard link with an image name after an
        # unsupported one is still the image's first path.
        if (same, candidate) in seen_files:
            return
        seen_files.add((same, candidate))
        if not candidate:
            found.invalid[path] = UNSUPPORTED
            return
        found.files.append(path)
        found.folders.append(folder)
        found.roots.append(root)

    def list_folder(folder: str, root: str) -> list[str]:
        """Record ``folder``'s files; return its sub-folders in sorted order."""
        try:
            st = os.stat(folder)
        except OSError as exc:
            found.invalid[folder] = f"Cannot read folder: {exc.strerror or exc}"
            return []
        if (st.st_dev, st.st_ino) in seen_dirs:
            return []
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            found.invalid[folder] = f"Cannot read folder: {exc.strerror or exc}"
            return []
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError as exc:
                found.invalid[entry.path] = f"Cannot read: {exc.strerror or exc}"
                continue
            if is_dir:
                if not is_trash_folder(entry.path):
                    subfolders.append(entry.path)
            elif is_file:
                add_file(entry.path, folder, root, entry.stat)
            elif entry.is_symlink() and not os.path.exists(entry.path):
                # A link to a device or a pipe resolves: it is not a regular file.
                found.invalid[entry.path] = "Dangling symbolic link"
            else:
                found.invalid[entry.path] = NOT_A_FILE
        return subfolders

    def walk(top: str) -> None:
        # Depth first with an explicit stack (a recursive walk ends at Python's
        # recursion limit, about 1,000 folders deep). Sub-folders are pushed in
        # reverse so they come off in sorted order, as a recursive walk visits
        # them; a folder is checked against seen_dirs when it is reached.
        pending = [top]
        while pending:
            subfolders = list_folder(pending.pop(), top)
            if recursive:
                pending.extend(reversed(subfolders))

    for path in paths:
        if os.path.isdir(path):
            walk(path)
        elif os.path.isfile(path):
            add_file(path, os.path.dirname(path) or ".", path, partial(os.stat, path))
        else:
            # Opening a named pipe would block until a writer comes.
            found.invalid[path] = NOT_A_FILE
    return found


def owning_inputs(paths, recursive: bool) -> dict[str, str]:
    """``{input: the input whose search group it joins}`` for ``in_folder=True``.

    An input joins the outermost folder input it lies in: anywhere below it
    when ``recursive``, else only a file directly in it. "Lies in" by the
    path as given (made absolute) or by the resolved one.
    """
    spelled = {p: (os.path.abspath(p), os.path.realpath(p)) for p in paths}
    is_file = {p: os.path.isfile(p) for p in paths}
    folders = [p for p in paths if os.path.isdir(p)]

    def inside(path, folder) -> bool:
        return path != folder and any(
            (recursive and _is_below(mine, theirs))
            or (is_file[path] and os.path.dirname(mine) == theirs)
            for mine, theirs in zip(spelled[path], spelled[folder], strict=True)
        )

    owner = {}
    for path in paths:
        holders = [d for d in folders if inside(path, d)]
        outer = [d for d in holders if not any(inside(d, e) for e in holders)]
        owner[path] = min(outer or holders, default=path)
    for path in paths:  # links can make "lies in" intransitive: follow it to the end
        seen = {path}
        while owner[owner[path]] not in seen:
            seen.add(owner[path])
            owner[path] = owner[owner[path]]
    return owner


def _is_below(path: str, folder: str) -> bool:
    try:
        return path != folder and os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


def folder_name(path: str) -> str:
    """``path`` without trailing separators (a root such as ``/`` stays as it is)."""
    drive, rest = os.path.splitdrive(path)
    return drive + (rest.rstrip(os.sep + (os.altsep or "")) or rest[:1])
