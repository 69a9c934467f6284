"""Move and delete lower-quality files without ever losing a user's picture."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from datetime import datetime

#: Manifest files written by :func:`move_files` are named
#: ``fastdif_moved_<timestamp>.json``.
MANIFEST_PREFIX = "fastdif_moved_"
MANIFEST_FORMAT = "fastdif move manifest 1"

# A hard link is not possible: fall back to copying.
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK)


def free_name(folder: str, name: str) -> str:
    """A path in ``folder`` for ``name`` that does not exist yet (``stem_1.ext``, ...)."""
    stem, ext = os.path.splitext(name)
    candidate = os.path.join(folder, name)
    number = 0
    while os.path.lexists(candidate):
        number += 1
        candidate = os.path.join(folder, f"{stem}_{number}{ext}")
    return candidate


def place(source: str, target: str) -> None:
    """Move ``source`` to exactly ``target``, which must not exist.

    On one filesystem a hard link claims the name atomically before the source
    is unlinked; across filesystems the file is copied to a name created
    exclusively, flushed to disk, its size checked, and only then the source
    removed. Timestamps and permission bits are kept. On any failure the
    source is untouched and no partial target is left.

    Raises
    ------
    FileExistsError
        ``target`` exists (it is never replaced).
    OSError
        The move failed; ``source`` is still in place.
    """
    try:
        os.link(source, target)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno not in _NO_LINK:
            raise
        _copy_exclusive(source, target)
    try:
        os.unlink(source)
    except OSError:
        os.unlink(target)  # the source stays: undo the new name, as if nothing happened
        raise


def _copy_exclusive(source: str, target: str) -> None:
    out = open(target, "xb")
    try:
        with out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            # On disk before the source goes: a crash now leaves two copies, not none.
            os.fsync(out.fileno())
        shutil.copystat(source, target)
        if os.path.getsize(target) != os.path.getsize(source):
            raise OSError(errno.EIO, f"size check failed copying {source!r} to {target!r}")
    except BaseException:
        os.unlink(target)
        raise


def move_file(source: str, folder: str) -> str:
    """Move ``source`` into ``folder`` without overwriting anything; return the new path.

    The name is kept, with a numbered suffix (``name_1.ext``) if it is taken.
    See :func:`place` for how the move is done safely.
    """
    name = os.path.basename(source)
    while True:
        target = free_name(folder, name)
        try:
            place(source, target)
        except FileExistsError:
            continue  # another process took the name meanwhile
        return target


def _copy_then_remove(source: str, folder: str, name: str) -> str:
    """Copy ``source`` to a free name for ``name`` in ``folder``, then remove it."""
    while True:
        target = free_name(folder, name)
        try:
            _copy_exclusive(source, target)
        except FileExistsError:
            continue
        os.unlink(source)
        return target


def write_json(folder: str, name: str, data) -> str:
    """Write ``data`` as JSON to ``folder/name`` atomically; see :func:`write_text`."""
    # json.dumps leaves lone surrogates of non-UTF-8 names as they are;
    # write_text turns each into the six characters of its JSON escape.
    return write_text(folder, name, json.dumps(data, indent=2, ensure_ascii=False))


def write_text(folder: str, name: str, text: str) -> str:
    """Write ``text`` to ``folder/name`` atomically, never replacing a file.

    The text goes to a temporary file in ``folder`` that is then linked to its
    name, so a reader never sees a partial file; a numbered suffix is added if
    the name is taken. Undecodable bytes of non-UTF-8 file names
    (``surrogateescape``, as ``os.listdir`` returns them) are written as
    ``\\udcXX``: in JSON that is the string's own escape, so ``json.load``
    then ``os.fsencode`` give the exact bytes.

    Returns
    -------
    str
        The path written.
    """
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastdif-", suffix=".tmp")
    try:
        # newline="" keeps the CSV module's line ends as they are.
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        stem, ext = os.path.splitext(name)
        number = 0
        while True:
            target = os.path.join(folder, name if number == 0 else f"{stem}_{number}{ext}")
            try:
                _link_or_claim(tmp, target)
                return target
            except FileExistsError:
                number += 1
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _link_or_claim(tmp: str, target: str) -> None:
    """Give the complete file ``tmp`` the name ``target``, which must not exist."""
    try:
        os.link(tmp, target)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno not in _NO_LINK:
            raise
        # No hard links here: claim the name with an empty file, then replace
        # it in one step; a reader sees an empty file or the whole one.
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        os.replace(tmp, target)


def move_files(paths: list[str], destination) -> tuple[dict[str, str], dict[str, str], str | None]:
    """Move each of ``paths`` into ``destination`` (created if missing).

    A manifest of the moves, ``fastdif_moved_<timestamp>.json``, is written
    atomically into ``destination`` (also when the moves are interrupted);
    :func:`undo_move` reverses them.

    Returns
    -------
    moved : dict
        ``{source: new_path}``.
    failed : dict
        ``{source: reason}``; these files stay where they were.
    manifest : str or None
        Path of the manifest, or None when nothing was moved.
    """
    if not isinstance(destination, (str, os.PathLike)):
        raise TypeError(
            'Invalid value for "destination_path" parameter: must be of type STRING, '
            f"got {destination!r}."
        )
    folder = os.fspath(destination)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(
            f'Invalid value for "destination_path" parameter: "{folder}" is not a folder.'
        )
    os.makedirs(folder, exist_ok=True)
    moved, failed, entries = {}, {}, []
    manifest = None
    try:
        for path in paths:
            try:
                size = os.path.getsize(path)
                moved[path] = move_file(path, folder)
            except OSError as exc:
                failed[path] = exc.strerror or str(exc)
                continue
            entries.append(
                {
                    "source": os.path.abspath(path),
                    "destination": os.path.abspath(moved[path]),
                    "size": size,
                }
            )
    finally:
        if entries:
            stamp = datetime.now().strftime("%Y%m%d%H%M%S")
            manifest = write_json(
                folder,
                f"{MANIFEST_PREFIX}{stamp}.json",
                {
                    "format": MANIFEST_FORMAT,
                    "created": datetime.now().isoformat(),
                    "moved": entries,
                },
            )
    return moved, failed, manifest


def undo_move(manifest: str | os.PathLike) -> dict:
    """Move the files listed in a move manifest back to where they came from.

    Each file goes back to its original path (its folder is re-created if
    needed) with the same care as a move: nothing is ever overwritten. A file
    is left where it is, and reported, when its original path is taken again,
    when it is no longer at its destination, or when its size changed since
    the move. Running it twice is harmless.

    Parameters
    ----------
    manifest : str or os.PathLike
        A ``fastdif_moved_<timestamp>.json`` file written by ``move_to``.

    Returns
    -------
    dict
        ``{"restored": {moved_path: original_path}, "failed": {moved_path: reason}}``.

    Raises
    ------
    TypeError
        ``manifest`` is not a path.
    FileNotFoundError
        The manifest does not exist.
    ValueError
        The file is not a fastdif move manifest.
    """
    if not isinstance(manifest, (str, os.PathLike)):
        raise TypeError(
            'Invalid value for "manifest" parameter: must be of type STRING or os.PathLike, '
            f"got {manifest!r}."
        )
    path = os.fspath(manifest)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Manifest "{path}" does not exist')
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        entries = data["moved"] if data.get("format") == MANIFEST_FORMAT else None
        pairs = [(e["destination"], e["source"], int(e["size"])) for e in entries]
    except (ValueError, TypeError, KeyError, AttributeError):
        pairs = None
    if pairs is None:
        raise ValueError(f'Invalid value for "manifest" parameter: "{path}" is not a move manifest')
    restored, failed = {}, {}
    for moved_path, original, size in reversed(pairs):
        try:
            if os.path.getsize(moved_path) != size:
                failed[moved_path] = "changed since it was moved (size differs)"
                continue
            os.makedirs(os.path.dirname(original), exist_ok=True)
            place(moved_path, original)
        except FileExistsError:
            failed[moved_path] = f"not restored: {original!r} exists"
            continue
        except OSError as exc:
            failed[moved_path] = exc.strerror or str(exc)
            continue
        restored[moved_path] = original
    return {"restored": restored, "failed": failed}


def delete_files(
    paths: list[str], key_of: dict[str, str], dry_run: bool = False
) -> tuple[list[str], dict[str, str]]:
    """Delete ``paths``, each only while its group's key (``key_of[path]``) still exists.

    With ``dry_run`` nothing is removed: the first list holds the files that
    would be deleted, after the same checks.

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
        if dry_run:
            if not os.path.lexists(path):
                failed[path] = "No such file or directory"
                continue
        else:
            try:
                os.remove(path)
            except OSError as exc:
                failed[path] = exc.strerror or str(exc)
                continue
        deleted.append(path)
    return deleted, failed
