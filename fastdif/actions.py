"""Move and delete lower-quality files without ever losing a user's picture."""

from __future__ import annotations

import errno
import os
import shutil


def free_name(folder: str, name: str) -> str:
    """A path in ``folder`` for ``name`` that does not exist yet (``stem_1.ext``, ...)."""
    stem, ext = os.path.splitext(name)
    candidate = os.path.join(folder, name)
    number = 0
    while os.path.lexists(candidate):
        number += 1
        candidate = os.path.join(folder, f"{stem}_{number}{ext}")
    return candidate


def move_file(source: str, folder: str) -> str:
    """Move ``source`` into ``folder`` without overwriting anything; return the new path.

    On one filesystem a hard link claims the name atomically before the source
    is unlinked; across filesystems the file is copied to a name created
    exclusively, its size checked, and only then the source removed.
    """
    name = os.path.basename(source)
    while True:
        target = free_name(folder, name)
        try:
            os.link(source, target)
        except FileExistsError:
            continue  # another process took the name meanwhile
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            return _copy_then_remove(source, folder, name)
        os.unlink(source)
        return target


def _copy_then_remove(source: str, folder: str, name: str) -> str:
    while True:
        target = free_name(folder, name)
        try:
            out = open(target, "xb")
        except FileExistsError:
            continue
        break
    try:
        with out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        shutil.copystat(source, target)
        if os.path.getsize(target) != os.path.getsize(source):
            raise OSError(f"size check failed copying {source!r} to {target!r}")
    except BaseException:
        os.unlink(target)
        raise
    os.unlink(source)
    return target


def move_files(paths: list[str], destination) -> tuple[dict[str, str], dict[str, str]]:
    """Move each of ``paths`` into ``destination`` (created if missing).

    Returns ``(moved, failed)``: ``{source: new_path}`` and ``{source: reason}``.
    """
    if not isinstance(destination, (str, os.PathLike)):
        raise TypeError(
            'Invalid value for "destination_path" parameter: must be of type STRING, '
            f"got {destination!r}."
        )
    folder = os.fspath(destination)
    os.makedirs(folder, exist_ok=True)
    moved, failed = {}, {}
    for path in paths:
        try:
            moved[path] = move_file(path, folder)
        except OSError as exc:
            failed[path] = exc.strerror or str(exc)
    return moved, failed


def delete_files(paths: list[str], key_of: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Delete ``paths``, each only while its group's key (``key_of[path]``) still exists.

    Returns ``(deleted, failed)``: the deleted paths and ``{path: reason}``.
    """
    deleted, failed = [], {}
    for path in paths:
        key = key_of[path]
        if os.path.realpath(key) == os.path.realpath(path):
            failed[path] = "is its group's key"
            continue
        if not os.path.isfile(key):
            failed[path] = f"kept: the group's key {key!r} no longer exists"
            continue
        try:
            os.remove(path)
        except OSError as exc:
            failed[path] = exc.strerror or str(exc)
            continue
        deleted.append(path)
    return deleted, failed
