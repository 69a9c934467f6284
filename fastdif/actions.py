"""Move and delete lower-quality files without ever losing a user's picture."""

from __future__ import annotations

import errno
import filecmp
import json
import os
import secrets
import shutil
import stat
from datetime import datetime

#: Manifest files written by :func:`move_files` are named
#: ``fastdif_moved_<timestamp>.json``.
MANIFEST_PREFIX = "fastdif_moved_"
MANIFEST_FORMAT = "fastdif move manifest 1"
#: A manifest while its moves run (see :class:`_Journal`).
JOURNAL_FORMAT = "fastdif move journal 1"

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


def place(source: str, target: str, partial: str | None = None) -> None:
    """Move the regular file ``source`` to exactly ``target``, which must not exist.

    On one filesystem a hard link claims the name atomically before the source
    is unlinked. Across filesystems the file is copied to ``partial``, a new
    name beside ``target`` (by default a fresh hidden ``.fastdif-*.partial``),
    flushed to disk and its size checked; only the complete copy gets the
    name ``target`` (a hard link, or a rename where the filesystem has none),
    and only then is the source removed. Timestamps and permission bits are
    kept. A process killed at any moment leaves the source in place or the
    whole file at ``target`` (or both), never a partial file under
    ``target``; on any other failure the source is untouched and nothing is
    left at ``target``.

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
        _copy_across(source, target, partial)
        return
    _remove_source(source, target)


def _remove_source(source: str, target: str) -> None:
    """Unlink ``source`` now that ``target`` holds the file; on failure unlink ``target``."""
    try:
        os.unlink(source)
    except BaseException:
        # Undo the new name, as if nothing happened; but only while the source
        # is there, since an interrupt can land just after the unlink.
        if os.path.lexists(source):
            os.unlink(target)
        raise


def _copy_across(source: str, target: str, partial: str | None) -> None:
    """:func:`place` without a hard link from ``source``: copy, name, then remove the source."""
    folder = os.path.dirname(target) or "."
    if partial is None:
        partial = os.path.join(folder, f".fastdif-{secrets.token_hex(8)}.partial")
    _copy_exclusive(source, partial)
    try:
        _link_or_claim(partial, target)
        try:
            _sync_folder(folder)  # the new name is on disk before the old one goes
        except BaseException:
            os.unlink(target)
            raise
        _remove_source(source, target)
    finally:
        # Removed last: while it is a second name of target, undo_move can tell
        # that target is the copy this move made.
        if os.path.lexists(partial):
            os.unlink(partial)


def _copy_exclusive(source: str, target: str) -> None:
    """Copy the regular file ``source`` to the new file ``target``, flushed to disk.

    Timestamps and permission bits are copied and the size checked. On any
    failure ``target`` is removed.
    """
    # O_NONBLOCK: a named pipe put in the file's place fails below instead
    # of blocking the open.
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as src:
        expected = os.fstat(fd)
        if not stat.S_ISREG(expected.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file: {source!r}")
        out = open(target, "xb")
        try:
            with out:
                shutil.copyfileobj(src, out)
                out.flush()
                # On disk before the source goes: a crash now leaves two copies, not none.
                os.fsync(out.fileno())
            shutil.copystat(source, target)
            if os.path.getsize(target) != expected.st_size:
                raise OSError(errno.EIO, f"size check failed copying {source!r} to {target!r}")
        except BaseException:
            os.unlink(target)
            raise


def _sync_folder(folder: str) -> None:
    """Flush ``folder``'s entries to disk, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened here (Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every filesystem flushes a folder
    finally:
        os.close(fd)


def _link_targets(path: str) -> tuple[str, str] | None:
    """For a symbolic link: its target as written and as an absolute path; else None."""
    if not os.path.islink(path):
        return None
    text = os.readlink(path)
    # Joined to the folder the link really is in, as the system resolves it;
    # not normalised, since ".." after a linked folder is not its parent.
    return text, os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), text)


def _relink(source: str, target: str, text: str) -> None:
    """Replace the symbolic link ``source`` by a new link ``target`` to ``text``."""
    os.symlink(text, target)  # FileExistsError: target is taken
    _remove_source(source, target)


def move_file(source: str, folder: str, journal: _Journal | None = None) -> str:
    """Move ``source`` into ``folder`` without overwriting anything; return the new path.

    The name is kept, with a numbered suffix (``name_1.ext``) if it is taken.
    See :func:`place` for how the move is done safely. With a ``journal``,
    each attempt is on disk in it before it starts, and marked done after.

    A symbolic link is moved as a link: the new link in ``folder`` points to
    the same file by an absolute path (a relative target would not resolve
    from another folder), then the old link is removed. The file it points
    to stays where it is. :func:`undo_move` puts back the original link,
    relative target included.
    """
    name = os.path.basename(source)
    link = _link_targets(source)
    size = None if link else os.path.getsize(source)
    while True:
        target = free_name(folder, name)
        partial = None if journal is None else journal.record(source, target, size, link)
        try:
            if link:
                _relink(source, target, link[1])
            else:
                place(source, target, partial)
        except FileExistsError:
            continue  # another process took the name meanwhile
        if journal is not None:
            journal.done()
        return target


def _copy_then_remove(source: str, folder: str, name: str) -> str:
    """Copy ``source`` to a free name for ``name`` in ``folder``, then remove it.

    The cross-filesystem half of :func:`place`, on any filesystem.
    """
    while True:
        target = free_name(folder, name)
        try:
            _copy_across(source, target, None)
        except FileExistsError:
            continue
        return target


def write_json(folder: str, name: str, data) -> str:
    """Write ``data`` as JSON to ``folder/name`` atomically; see :func:`write_text`."""
    # json.dumps leaves lone surrogates of non-UTF-8 names as they are;
    # write_text turns each into the six characters of its JSON escape.
    return write_text(folder, name, json.dumps(data, indent=2, ensure_ascii=False))


def write_text(folder: str, name: str, text: str) -> str:
    """Write ``text`` to ``folder/name`` atomically, never replacing a file.

    The text goes to a temporary file in ``folder`` (:func:`create_temp`)
    that is then linked to its name, so a reader never sees a partial file; a
    numbered suffix is added if the name is taken. The file is created like
    any other, honouring the umask (0644 under umask 022). Undecodable bytes
    of non-UTF-8 file names (``surrogateescape``, as ``os.listdir`` returns
    them) are written as ``\\udcXX``: in JSON that is the string's own escape,
    so ``json.load`` then ``os.fsencode`` give the exact bytes.

    Returns
    -------
    str
        The path written.
    """
    fd, tmp = create_temp(folder)
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


def create_temp(folder: str) -> tuple[int, str]:
    """Create a new empty file ``folder/.fastdif-<random>.tmp``; return ``(fd, path)``.

    Opened for writing with ``O_EXCL`` and mode 0666, so the umask sets its
    permissions as for any other new file (``tempfile.mkstemp`` makes 0600,
    which the name it is given later would keep).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        path = os.path.join(folder, f".fastdif-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue


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
        try:
            os.replace(tmp, target)
        except BaseException:
            if os.path.lexists(tmp):  # not replaced: give the claimed name back
                os.unlink(target)
            raise


class _Journal:
    """The manifest of :func:`move_files`, written while the moves happen.

    One JSON object a line: a header, then each move, flushed to disk before
    the move starts, and a line marking it done after it. A process killed
    at any moment leaves a journal that :func:`undo_move` reads. When the
    moves end (or are interrupted), :meth:`finish` replaces it by the final
    manifest, one JSON document.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.path: str | None = None
        self.entries: list[dict] = []
        self.created = ""
        self._fd: int | None = None

    def record(self, source: str, target: str, size, link) -> str:
        """Put the move of ``source`` to ``target`` on disk; return its partial copy's name.

        ``size`` is the file's size, ``link`` what :func:`_link_targets` says.
        """
        if self._fd is None:
            self._create()
        entry = {"source": os.path.abspath(source), "destination": os.path.abspath(target)}
        if link:
            entry["link"], entry["link_moved"] = link
        else:
            entry["size"] = size
        self._write(entry)
        self.entries.append(entry)
        os.fsync(self._fd)
        return partial_name(self.path, len(self.entries) - 1)

    def done(self) -> None:
        """Mark the last move recorded as done."""
        self.entries[-1]["done"] = True
        # Neither flushed nor needed: without it undo_move goes by the files.
        try:
            self._write({"done": len(self.entries) - 1})
        except OSError:
            pass

    def finish(self) -> str | None:
        """Replace the journal by the manifest of the moves made; return its path.

        None, and no file left, when nothing was moved.
        """
        if self._fd is None:
            return None
        os.close(self._fd)
        self._fd = None
        moved = [
            {k: v for k, v in e.items() if k != "done"}
            for e in self.entries
            # An interrupt can land between a move and its "done" line.
            if e.get("done")
            or (not os.path.lexists(e["source"]) and os.path.lexists(e["destination"]))
        ]
        if not moved:
            os.unlink(self.path)
            return None
        document = {"format": MANIFEST_FORMAT, "created": self.created, "moved": moved}
        text = json.dumps(document, indent=2, ensure_ascii=False)
        data = text.encode("utf-8", "backslashreplace")
        folder = os.path.dirname(self.path)
        tmp = None
        try:
            fd, tmp = create_temp(folder)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError:
            pass  # the journal stays: undo_move reads it as well
        finally:
            if tmp is not None and os.path.lexists(tmp):
                os.unlink(tmp)
        _sync_folder(folder)
        return self.path

    def _create(self) -> None:
        stamp = datetime.now().strftime("%Y%m%d%H%M%S")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        number = 0
        while True:
            suffix = "" if number == 0 else f"_{number}"
            path = os.path.join(self.folder, f"{MANIFEST_PREFIX}{stamp}{suffix}.json")
            try:
                self._fd = os.open(path, flags, 0o666)  # the umask applies, as to any new file
                break
            except FileExistsError:
                number += 1
        self.path = path
        self.created = datetime.now().isoformat()
        try:
            self._write({"format": JOURNAL_FORMAT, "created": self.created})
            os.fsync(self._fd)
        except BaseException:
            # No journal without its header: the next move tries again.
            os.close(self._fd)
            self._fd = None
            os.unlink(path)
            raise
        _sync_folder(self.folder)

    def _write(self, line: dict) -> None:
        # Lone surrogates (bytes of non-UTF-8 names) become their JSON escape.
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        end = os.fstat(self._fd).st_size
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except BaseException:
            os.ftruncate(self._fd, end)  # no torn line before the next one
            raise


def partial_name(manifest: str, index: int) -> str:
    """The name the copy of move ``index`` of ``manifest`` has until it is complete."""
    folder, name = os.path.split(manifest)
    return os.path.join(folder, f".{name}.{index}.partial")


def move_files(paths, destination) -> tuple[dict[str, str], dict[str, str], str | None]:
    """Move each of ``paths`` (an iterable, read one path at a time) into ``destination``.

    ``destination`` is created if missing. Each move is recorded in the
    manifest ``fastdif_moved_<timestamp>.json`` in ``destination``, and on
    disk there, before it starts; :func:`undo_move` reverses the moves, also
    those of a process killed midway. When the moves end, or are
    interrupted, the manifest is rewritten as one JSON document listing the
    moves made. Symbolic links are moved as links (see :func:`move_file`).

    Returns
    -------
    moved : dict
        ``{source: new_path}``.
    failed : dict
        ``{source: reason}``; these files stay where they were.
    manifest : str or None
        Path of the manifest, or None when nothing was moved (then no
        manifest is left).

    Raises
    ------
    TypeError
        ``destination`` is not a path.
    ValueError
        ``destination`` is empty.
    NotADirectoryError
        ``destination`` exists and is not a folder.
    """
    if not isinstance(destination, (str, os.PathLike)):
        raise TypeError(
            'Invalid value for "destination_path" parameter: must be of type STRING, '
            f"got {destination!r}."
        )
    folder = os.fspath(destination)
    if not folder:
        raise ValueError('Invalid value for "destination_path" parameter: must not be empty.')
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(
            f'Invalid value for "destination_path" parameter: "{folder}" is not a folder.'
        )
    os.makedirs(folder, exist_ok=True)
    moved, failed = {}, {}
    journal = _Journal(folder)
    try:
        for path in paths:
            try:
                moved[path] = move_file(path, folder, journal)
            except OSError as exc:
                failed[path] = exc.strerror or str(exc)
    finally:
        manifest = journal.finish()
    return moved, failed, manifest


def _read_manifest(path: str) -> tuple[list[dict], bool] | None:
    """The entries of a manifest or journal, each with ``done``, and whether it is a journal."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT:
        return [dict(e, done=True) for e in data["moved"]], False
    lines = text.split("\n")  # not splitlines: names may hold U+2028 and the like
    if json.loads(lines[0]).get("format") != JOURNAL_FORMAT:
        return None
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            item = json.loads(line) if line else None
        except ValueError:
            if number == len(lines):
                break  # cut short by a crash while written: that move never started
            raise
        if item is None:
            continue
        if "done" in item:
            entries[item["done"]]["done"] = True
        else:
            entries.append(dict(item, done=False))
    return entries, True


def undo_move(manifest: str | os.PathLike) -> dict:
    """Move the files listed in a move manifest back to where they came from.

    Each file goes back to its original path (its folder is re-created if
    needed) with the same care as a move: nothing is ever overwritten. A file
    is left where it is, and reported, when its original path is taken again,
    when it is no longer at its destination, or when its size changed since
    the move (a moved link: when it is no longer the link fastdif made). A
    moved symbolic link is put back as the original link. Running it twice is
    harmless.

    The manifest of a process killed while moving is its journal: every move
    that started is in it. A move cut short is finished backwards: a second
    name or a partial copy it left is removed, and the file is where it was.
    A move that never started is listed in ``"not_moved"``.

    Parameters
    ----------
    manifest : str or os.PathLike
        A ``fastdif_moved_<timestamp>.json`` file written by ``move_to``.

    Returns
    -------
    dict
        ``{"restored": {moved_path: original_path}, "failed": {moved_path: reason},
        "not_moved": {moved_path: reason}}``.

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
        read = _read_manifest(path)
        if read is not None:
            entries, journal = read
            for e in entries:
                names = ("source", "destination", *(("link", "link_moved") if "link" in e else ()))
                if not all(isinstance(e[k], str) for k in names):
                    raise TypeError("paths must be strings")
                if "link" not in e:
                    e["size"] = int(e["size"])
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        read = None
    if read is None:
        raise ValueError(f'Invalid value for "manifest" parameter: "{path}" is not a move manifest')
    outcome = {"restored": {}, "failed": {}, "not_moved": {}}
    for index in reversed(range(len(entries))):
        entry = entries[index]
        original = entry["source"]
        back = os.path.join(
            os.path.dirname(original), f".{os.path.basename(path)}.{index}.undo.partial"
        )
        try:
            kind, reason = _undo_entry(entry, partial_name(path, index) if journal else None, back)
        except FileExistsError:
            kind, reason = "failed", f"not restored: {original!r} exists"
        except OSError as exc:
            kind, reason = "failed", exc.strerror or str(exc)
        outcome[kind][entry["destination"]] = original if kind == "restored" else reason
    return outcome


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _same_bytes(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are regular files (not links) with the same content."""
    if not all(os.path.isfile(p) and not os.path.islink(p) for p in (a, b)):
        return False
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _undo_entry(entry: dict, partial: str | None, back: str) -> tuple[str, str | None]:
    """Undo one move; return ``("restored", None)``, or ``"failed"`` or ``"not_moved"`` and why.

    ``partial`` is the name of the move's partial copy (a journal's entries
    only), ``back`` that of the copy on the way back.
    """
    original, moved, link = entry["source"], entry["destination"], entry.get("link")
    if os.path.lexists(back):
        if _same(back, original) and _same_bytes(moved, original):
            # An earlier undo copied the file back, then stopped before
            # removing the moved one.
            os.unlink(moved)
            os.unlink(back)
            return "restored", None
        os.unlink(back)  # an earlier undo's partial copy
    if partial is not None and os.path.lexists(partial):
        if _same(partial, moved):
            whole_source = _same_bytes(moved, original)
            if whole_source:
                os.unlink(moved)  # stopped after the copy got its name: the source is there
            os.unlink(partial)
            if whole_source:
                return "restored", None
        else:
            os.unlink(partial)  # a copy never finished
            if (
                not entry["done"]
                and os.path.lexists(original)
                and os.path.isfile(moved)
                and not os.path.islink(moved)
                and os.path.getsize(moved) == 0
            ):
                os.unlink(moved)  # the name claimed (no hard links there) but not given yet
    if not os.path.lexists(moved):
        if os.path.lexists(original) and not entry["done"]:
            return "not_moved", "the move was cut short or never started: the file never left"
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), moved)
    if link is not None:
        if not os.path.islink(moved) or os.readlink(moved) != entry["link_moved"]:
            return "failed", "changed since it was moved (not the link fastdif made)"
        if os.path.islink(original) and os.readlink(original) == link:
            os.unlink(moved)  # stopped before the original link was removed
            return "restored", None
        os.makedirs(os.path.dirname(original), exist_ok=True)
        _relink(moved, original, link)
        return "restored", None
    if os.path.lexists(original) and _same(original, moved):
        os.unlink(moved)  # stopped between the hard link and the unlink
        return "restored", None
    if os.path.islink(moved) or not os.path.isfile(moved):
        return "failed", "changed since it was moved (not a regular file)"
    if os.path.getsize(moved) != entry["size"]:
        return "failed", "changed since it was moved (size differs)"
    os.makedirs(os.path.dirname(original), exist_ok=True)
    place(moved, original, back)
    return "restored", None


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
