"""Move and delete lower-quality files without ever losing a user's picture."""

from __future__ import annotations

import enum
import errno
import filecmp
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from datetime import datetime

from . import params
from .io.files import NO_LINK, open_regular, sync_folder, write_atomic

#: Manifest files written by :func:`move_files` are named
#: ``fastdif_moved_<timestamp>.json``.
MANIFEST_PREFIX = "fastdif_moved_"
MANIFEST_FORMAT = "fastdif move manifest 1"
#: A manifest while its moves run (see :class:`_Journal`).
JOURNAL_FORMAT = "fastdif move journal 1"


class NotAFolderError(NotADirectoryError, ValueError):
    """A move's destination exists and is not a folder (difPy raises ValueError)."""


class ActionFailure(enum.Enum):
    """Why a file was not moved, deleted or trashed: the kind of a :class:`Reason`.

    The first five are the checks of :mod:`fastdif.verify` (the values of
    ``verify.Check``).
    """

    IDENTITY = "identity"
    SAME_FILE = "same-file"
    CONTENT = "content"
    FRAMES = "frames"
    LOCK = "lock"
    #: Not a member of a group of the result.
    NOT_MEMBER = "not-member"
    #: A library (``reference``) image: never moved or deleted.
    LIBRARY = "library"
    #: The file is its group's key now (a link to it, a hard link).
    IS_KEY = "is-key"
    #: Its group's key no longer exists: the last copy is kept.
    KEY_GONE = "key-gone"
    #: Its key vanished just after the file was moved: it was put back.
    KEY_LOST = "key-lost"
    #: Neither the system's trash nor ``.fastdif-trash`` took it.
    TRASH = "trash"
    #: The system refused the move or the delete (the text is its message).
    OS_ERROR = "os-error"


class Reason(str):
    """Why a file was not acted on, as a result's ``"failed"`` holds it: text and a kind.

    A ``str`` (the one-line reason difPy-style results show, printed,
    compared and written to JSON as before) whose ``kind``, an
    :class:`ActionFailure`, tells code what failed without parsing the text.
    """

    kind: ActionFailure

    def __new__(cls, kind: ActionFailure, text: str) -> Reason:
        reason = super().__new__(cls, text)
        reason.kind = kind
        return reason

    def __getnewargs__(self) -> tuple[ActionFailure, str]:
        return self.kind, str(self)  # pickle and copy make it again with its kind


def free_name(folder: str, name: str) -> str:
    """A path in ``folder`` for ``name`` that does not exist yet (``stem_1.ext``, ...)."""
    stem, ext = os.path.splitext(name)
    candidate = os.path.join(folder, name)
    number = 0
    while os.path.lexists(candidate):
        number += 1
        candidate = os.path.join(folder, f"{stem}_{number}{ext}")
    return candidate


def place(
    source: str,
    target: str,
    partial: str | None = None,
    copied: Callable[[os.stat_result], None] | None = None,
) -> None:
    """Move the regular file ``source`` to exactly ``target``, which must not exist.

    On one filesystem a hard link claims the name atomically before the source
    is unlinked. Across filesystems the file is copied to ``partial``, a new
    name beside ``target`` (by default a fresh hidden ``.fastdif-*.partial``),
    flushed to disk and its size checked; only the complete copy gets the
    name ``target`` (a hard link, or a rename where the filesystem has none),
    and only then is the source removed. The copy keeps the owner and group
    (where the system lets this user give them: root always), permission
    bits and timestamps. ``copied``, if given, is called with the complete
    copy's ``os.stat_result`` before the copy gets its name (a journal puts
    the new file's identity on disk there). A process killed at any moment
    leaves the source in place or the whole file at ``target`` (or both),
    never a partial file under ``target``; on any other failure the source
    is untouched and nothing is left at ``target``.

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
        if isinstance(exc, FileExistsError) or exc.errno not in NO_LINK:
            raise
        _copy_across(source, target, partial, copied)
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


def _copy_across(
    source: str,
    target: str,
    partial: str | None,
    copied: Callable[[os.stat_result], None] | None = None,
) -> None:
    """:func:`place` without a hard link from ``source``: copy, name, then remove the source.

    The copy is written as :func:`~fastdif.io.files.write_atomic` writes
    (to ``partial``, on disk before it gets its name, never replacing).
    The owner and group (see :func:`_give_owner`), permission bits and
    timestamps are copied and the size checked before it gets its name.
    """
    if partial is None:
        partial = os.path.join(
            os.path.dirname(target) or ".", f".fastdif-{secrets.token_hex(8)}.partial"
        )
    # O_NONBLOCK: a named pipe put in the file's place fails below instead
    # of blocking the open. O_NOFOLLOW: a link put there is not a file to copy.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    src = os.fdopen(os.open(source, flags), "rb")
    try:
        expected = os.fstat(src.fileno())
        if not stat.S_ISREG(expected.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file: {source!r}")
        owned = False

        def copy(out) -> None:
            nonlocal owned
            shutil.copyfileobj(src, out)
            out.flush()
            owned = _give_owner(out.fileno(), expected)

        def finish(copy_path: str) -> None:
            src.close()  # read to the end; and Windows removes no open file
            shutil.copystat(source, copy_path)
            if not owned:
                # As cp -p does: set-user and set-group-ID never pass to another owner.
                mode = stat.S_IMODE(expected.st_mode) & ~(stat.S_ISUID | stat.S_ISGID)
                os.chmod(copy_path, mode)
            if os.path.getsize(copy_path) != expected.st_size:
                raise OSError(errno.EIO, f"size check failed copying {source!r} to {target!r}")
            if copied is not None:
                copied(os.lstat(copy_path))

        # The partial copy is removed last: while it is a second name of
        # target, undo_move can tell that target is the copy this move made.
        write_atomic(
            target, copy, temp=partial, ready=finish, then=lambda _: _remove_source(source, target)
        )
    finally:
        src.close()


def _give_owner(fd: int, info: os.stat_result) -> bool:
    """Give the new file open as ``fd`` the owner and group in ``info``; whether it has both.

    Only root may give a file away: another user's copy keeps this user as
    its owner (and the group, if this user is in it), as ``cp -p`` does.
    Without it a copy made by root (``-mv`` of another user's photo to
    another filesystem, or its undo) would be root's, and its owner could
    lose the right to read it.
    """
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) == (info.st_uid, info.st_gid):
        return True  # also where files have no POSIX owner (Windows)
    try:
        os.fchown(fd, info.st_uid, info.st_gid)
        return True
    except OSError:
        pass
    try:
        os.fchown(fd, -1, info.st_gid)
    except OSError:
        pass
    return False


def _link_targets(path: str) -> tuple[str, str] | None:
    """For a symbolic link: its target as written and as an absolute path; else None."""
    if not os.path.islink(path):
        return None
    text = os.readlink(path)
    # Joined to the folder the link really is in, as the system resolves it;
    # not normalised, since ".." after a linked folder is not its parent.
    return text, os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), text)


def _relink(
    source: str, target: str, text: str, made: Callable[[os.stat_result], None] | None = None
) -> None:
    """Replace the symbolic link ``source`` by a new link ``target`` to ``text``.

    ``made``, if given, is called with the new link's ``os.lstat`` before the
    old link is removed.
    """
    os.symlink(text, target)  # FileExistsError: target is taken
    if made is not None:
        try:
            made(os.lstat(target))
        except BaseException:
            os.unlink(target)
            raise
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
    info = None if link else os.lstat(source)
    identify = None if journal is None else journal.identify
    while True:
        target = free_name(folder, name)
        partial = None if journal is None else journal.record(source, target, info, link)
        try:
            if link:
                _relink(source, target, link[1], identify)
            else:
                place(source, target, partial, identify)
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

    Written by :func:`~fastdif.io.files.write_atomic`: a temporary file in
    ``folder``, on disk before it is linked to its name, so a reader never
    sees a partial file; a numbered suffix is added if the name is taken.
    The file is created like any other, honouring the umask (0644 under
    umask 022). Undecodable bytes of non-UTF-8 file names
    (``surrogateescape``, as ``os.listdir`` returns them) are written as
    ``\\udcXX``: in JSON that is the string's own escape, so ``json.load``
    then ``os.fsencode`` give the exact bytes.

    Returns
    -------
    str
        The path written.
    """
    data = text.encode("utf-8", "backslashreplace")
    return write_atomic(os.path.join(folder, name), lambda out: out.write(data), numbered=True)


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

    def record(self, source: str, target: str, info: os.stat_result | None, link) -> str:
        """Put the move of ``source`` to ``target`` on disk; return its partial copy's name.

        ``info`` is the file's ``os.lstat`` (None for a link), ``link`` what
        :func:`_link_targets` says. A file's ``inode`` is recorded with it:
        a hard link keeps it; a copy's own is recorded by :meth:`identify`.
        """
        if self._fd is None:
            self._create()
        entry = {"source": os.path.abspath(source), "destination": os.path.abspath(target)}
        if link:
            entry["link"], entry["link_moved"] = link
        else:
            entry.update(size=info.st_size, inode=info.st_ino)
        self._write(entry)
        self.entries.append(entry)
        os.fsync(self._fd)
        return partial_name(self.path, len(self.entries) - 1)

    def identify(self, info: os.stat_result) -> None:
        """Put on disk the inode of the last move's new file (a copy, a new link).

        Called before the old name is removed: :func:`undo_move` restores
        only a file whose inode the manifest records.
        """
        index = len(self.entries) - 1
        self.entries[index]["inode"] = info.st_ino
        self._write({"identity": index, "inode": info.st_ino})
        os.fsync(self._fd)

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
        try:
            write_atomic(self.path, lambda out: out.write(data), replace=True)
        except OSError:
            pass  # the journal stays: undo_move reads it as well
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
        sync_folder(self.folder)

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
        ``{source: reason}`` (each a :class:`Reason`); these files stay where they were.
    manifest : str or None
        Path of the manifest, or None when nothing was moved (then no
        manifest is left).

    Raises
    ------
    TypeError
        ``destination`` is not a path.
    ValueError
        ``destination`` is empty.
    NotAFolderError
        ``destination`` exists and is not a folder: a ValueError, as difPy
        raises, and a NotADirectoryError.
    """
    params.check_type("destination_path", destination, (str, os.PathLike), "of type STRING")
    folder = os.fspath(destination)
    if not folder:
        raise params.invalid("destination_path", "must not be empty.")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise params.invalid("destination_path", f'"{folder}" is not a folder.', NotAFolderError)
    os.makedirs(folder, exist_ok=True)
    moved, failed = {}, {}
    journal = _Journal(folder)
    try:
        for path in paths:
            try:
                moved[path] = move_file(path, folder, journal)
            except OSError as exc:
                failed[path] = Reason(ActionFailure.OS_ERROR, exc.strerror or str(exc))
    finally:
        manifest = journal.finish()
    return moved, failed, manifest


def _read_manifest(path: str) -> tuple[list[dict], bool] | None:
    """The entries of a manifest or journal, each with ``done``, and whether it is a journal."""
    try:
        with open_regular(path) as f:  # a pipe put in its place never hangs the undo
            text = f.read().decode("utf-8")
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
        elif "identity" in item:  # a copy's or a new link's (_Journal.identify)
            entries[item["identity"]]["inode"] = item["inode"]
        else:
            entries.append(dict(item, done=False))
    return entries, True


def undo_move(manifest: str | os.PathLike) -> dict:
    """Move the files listed in a move manifest back to where they came from.

    A manifest is a request, never an authority: it may have been edited,
    forged, or shipped inside a downloaded folder. So undo acts only on
    direct children of the manifest's own folder and on the original paths
    the manifest records; it restores a file only when it is the file
    fastdif moved (a regular file, or the link fastdif made, whose inode the
    manifest records: a forged entry cannot know it), re-creating its folder
    if needed, and never over anything (a link included); it removes a file
    only when it is provably a second name of the file at the original path,
    or a byte-identical copy of it. Everything else is left as it is and
    reported in ``"failed"`` with the reason: an original path taken again,
    a file no longer at its destination, a file changed since the move (size,
    inode; a moved link: no longer the link fastdif made), an entry that
    records no inode (a manifest from before they were recorded), or one
    that names paths outside those bounds. A moved symbolic link is put back
    as the original link. Running it twice is harmless.

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
    PermissionError
        The manifest belongs to another user: it is not the record of this
        user's moves (root, too, acts only on its own).
    ValueError
        The file is not a fastdif move manifest.
    """
    params.check_type("manifest", manifest, (str, os.PathLike), "of type STRING or os.PathLike")
    path = os.fspath(manifest)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Manifest "{path}" does not exist')
    real = os.path.realpath(path)  # its folder is the one the moves went to
    owner = os.stat(real).st_uid
    if hasattr(os, "geteuid") and owner != os.geteuid():
        raise PermissionError(
            f'Manifest "{path}" belongs to another user (uid {owner}): only the user who '
            "moved the files can undo the moves"
        )
    try:
        read = _read_manifest(real)
        if read is not None:
            entries, journal = read
            for e in entries:
                names = ("source", "destination", *(("link", "link_moved") if "link" in e else ()))
                if not all(isinstance(e[k], str) for k in names):
                    raise TypeError("paths must be strings")
                if "link" not in e:
                    e["size"] = int(e["size"])
                if "inode" in e:
                    e["inode"] = int(e["inode"])
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        read = None
    if read is None:
        raise params.invalid("manifest", f'"{path}" is not a move manifest')
    outcome = {"restored": {}, "failed": {}, "not_moved": {}}
    for index in reversed(range(len(entries))):
        entry = entries[index]
        original = entry["source"]
        back = os.path.join(
            os.path.dirname(original), f".{os.path.basename(real)}.{index}.undo.partial"
        )
        partial = partial_name(real, index) if journal else None
        try:
            kind, reason = _undo_entry(entry, real, partial, back)
        except FileExistsError:
            kind, reason = "failed", f"not restored: {original!r} exists"
        except OSError as exc:
            kind, reason = "failed", exc.strerror or str(exc)
        outcome[kind][entry["destination"]] = original if kind == "restored" else reason
    return outcome


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _is_file(path: str) -> bool:
    """Whether ``path`` is a regular file itself, not a link to one."""
    info = _lstat(path)
    return info is not None and stat.S_ISREG(info.st_mode)


def _entry_of(path: str) -> tuple[int, int, str] | None:
    """Which folder entry ``path`` names: its folder's device and inode, and its name.

    Two paths with the same entry are one name of one file, however they
    are spelled (a folder on the way may be a link or a bind mount). None
    when the folder does not exist.
    """
    try:
        folder = os.stat(os.path.dirname(path))
    except OSError:
        return None
    return folder.st_dev, folder.st_ino, os.path.basename(path)


def _second_name(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are two names (two folder entries) of one regular file.

    Neither may be a link: removing one of them then loses nothing.
    """
    x, y = _lstat(a), _lstat(b)
    if x is None or y is None or not (stat.S_ISREG(x.st_mode) and stat.S_ISREG(y.st_mode)):
        return False
    if (x.st_dev, x.st_ino) != (y.st_dev, y.st_ino) or x.st_nlink < 2:
        return False
    where = _entry_of(a)
    return where is not None and where != _entry_of(b)


def _same_bytes(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are two regular files (not links, two entries) with the same bytes.

    Removing ``a`` then loses nothing: ``b`` holds every byte of it.
    """
    if not (_is_file(a) and _is_file(b)) or _entry_of(a) in (None, _entry_of(b)):
        return False
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _outside(original: str, moved: str, manifest: str) -> str | None:
    """Why undo may not act on the paths of an entry, or None when it may.

    ``moved`` must be a direct child of the manifest's folder (not the
    manifest itself), ``original`` a path of another folder entry, neither
    named as the partial copies of this manifest's moves and undos are.
    """
    own = os.path.basename(manifest)
    for path in (original, moved):
        name = os.path.basename(path)
        if not os.path.isabs(path) or os.path.normpath(path) != path or name in ("", ".", ".."):
            return f"not restored: {path!r} is not an absolute, normal path"
        if name.startswith(f".{own}.") or (path is moved and name == own):
            return f"not restored: {path!r} is the manifest or one of its partial copies"
    where = _entry_of(moved)
    if where is None or where[:2] != _entry_of(manifest)[:2]:
        return "not restored: its destination is not in the manifest's folder"
    if _entry_of(original) == where:
        return (
            "not restored: its original path leads to the moved file itself "
            "(a folder on the way is now a link to, or a mount of, the destination)"
        )
    return None


def _changed(entry: dict, moved: str, info: os.stat_result) -> str | None:
    """Why ``moved`` (its ``os.lstat`` is ``info``) is no longer what the entry moved, or None."""
    if entry.get("link") is not None:
        if not stat.S_ISLNK(info.st_mode) or os.readlink(moved) != entry["link_moved"]:
            return "changed since it was moved (not the link fastdif made)"
    elif not stat.S_ISREG(info.st_mode):
        return "changed since it was moved (not a regular file)"
    elif info.st_size != entry["size"]:
        return "changed since it was moved (size differs)"
    return None


def _unidentified(entry: dict, info: os.stat_result) -> str | None:
    """Why the file whose ``os.lstat`` is ``info`` is not proven the one fastdif moved, or None.

    The proof is the inode the manifest records, which a forged entry
    cannot know; the inode alone, since a volume mounted again (btrfs, NFS,
    a USB disk) can get another device number.
    """
    if entry.get("inode") is None:
        return (
            "not restored: the manifest records no identity (inode) for it, as an older "
            "or a forged manifest; move it back by hand if it is yours"
        )
    if info.st_ino != entry["inode"]:
        return (
            f"not the file fastdif moved: its inode is {info.st_ino}, "
            f"the manifest records {entry['inode']}"
        )
    return None


def _undo_entry(
    entry: dict, manifest: str, partial: str | None, back: str
) -> tuple[str, str | None]:
    """Undo one move; return ``("restored", None)``, or ``"failed"`` or ``"not_moved"`` and why.

    ``manifest`` is the manifest's real path, ``partial`` the name of the
    move's partial copy (a journal's entries only), ``back`` that of the
    copy on the way back. Only a second name or a byte-identical copy of
    the file at ``original`` is ever removed; a partial copy only under its
    own name; a file is put back only when proven the one fastdif moved.
    """
    original, moved, link = entry["source"], entry["destination"], entry.get("link")
    refusal = _outside(original, moved, manifest)
    if refusal is not None:
        return "failed", refusal
    info = _lstat(moved)
    changed = None if info is None else _changed(entry, moved, info)
    unproven = None if info is None else changed or _unidentified(entry, info)
    if os.path.lexists(back):
        if _second_name(back, original) and _same_bytes(moved, original):
            # An earlier undo copied the file back, then stopped before
            # removing the moved one.
            os.unlink(moved)
            os.unlink(back)
            return "restored", None
        proven = info is not None and unproven is None
        if _second_name(back, original) or (proven and _is_file(back)):
            os.unlink(back)  # an earlier undo's copy: a name of the restored file, or unfinished
    if partial is not None and os.path.lexists(partial):
        if _second_name(partial, moved):
            whole_source = _same_bytes(moved, original)
            if whole_source:
                os.unlink(moved)  # stopped after the copy got its name: the source is there
            os.unlink(partial)
            if whole_source:
                return "restored", None
        elif not entry["done"] and _is_file(partial) and _is_file(original):
            os.unlink(partial)  # a copy never finished: the source is there
            if _is_file(moved) and info.st_size == 0:
                os.unlink(moved)  # the name claimed (no hard links there) but not given yet
                info = None
    if info is None:
        if os.path.lexists(original) and not entry["done"]:
            return "not_moved", "the move was cut short or never started: the file never left"
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), moved)
    if link is not None:
        if changed is not None:
            return "failed", changed
        if os.path.islink(original) and os.readlink(original) == link:
            os.unlink(moved)  # stopped before the original link was removed
            return "restored", None
    elif _second_name(original, moved):
        os.unlink(moved)  # stopped between the hard link and the unlink
        return "restored", None
    if unproven is not None:
        return "failed", unproven
    # The file fastdif moved, proven: its folder, if gone, was the user's.
    os.makedirs(os.path.dirname(original), exist_ok=True)
    if link is not None:
        _relink(moved, original, link)
    else:
        place(moved, original, back)
    return "restored", None


def delete_files(
    paths: list[str], key_of: dict[str, str], dry_run: bool = False
) -> tuple[list[str], dict[str, str]]:
    """Delete ``paths``, each only while its group's key (``key_of[path]``) still exists.

    A path that is its key now, by resolved path or by ``(st_dev, st_ino)``
    read from disk (a link to it, a hard link, a bind mount), is kept. With
    ``dry_run`` nothing is removed: the first list holds the files that would
    be deleted, after the same checks.

    Returns ``(deleted, failed)``: the deleted paths and ``{path: reason}``
    (each a :class:`Reason`).
    """
    deleted, failed = [], {}
    for path in paths:
        key = key_of[path]
        try:
            key_stat = os.stat(key)
        except OSError:
            key_stat = None
        if key_stat is None or not stat.S_ISREG(key_stat.st_mode):
            failed[path] = Reason(
                ActionFailure.KEY_GONE, f"kept: the group's key {key!r} no longer exists"
            )
            continue
        try:
            same = os.path.samestat(key_stat, os.stat(path)) and key_stat.st_ino != 0
        except OSError:
            same = False  # gone, or a dangling link: nothing of the key's
        if same or os.path.realpath(key) == os.path.realpath(path):
            failed[path] = Reason(ActionFailure.IS_KEY, "is its group's key")
            continue
        if dry_run:
            if not os.path.lexists(path):
                failed[path] = Reason(ActionFailure.OS_ERROR, "No such file or directory")
                continue
        else:
            try:
                os.remove(path)
            except OSError as exc:
                failed[path] = Reason(ActionFailure.OS_ERROR, exc.strerror or str(exc))
                continue
        deleted.append(path)
    return deleted, failed
