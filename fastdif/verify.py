"""Check, at the moment ``delete`` or ``move_to`` acts on a file, that it is safe to.

A search result is only as true as the files were when they were decoded:
a file may have been replaced since, a saved repository or a cache row may
lie, and two paths may reach one file. So before a member of a group is
deleted or moved, three checks run on the disk as it is now:

1. **identity**: the member and its key are still the files that were
   decoded: same size, modification time and ``(st_dev, st_ino)`` as
   recorded at build. A repository saved before inodes were recorded has
   ``(0, 0)`` there; for it only the size and modification time are checked
   (checks 2 and 3 still hold for it).
2. **same file**: the member and its key are two different files
   (same ``(st_dev, st_ino)`` now, as ``os.path.samefile`` compares, following
   links: a hard link, a bind mount or a symbolic link to the key is the key
   itself; where a file system reports no inode numbers, the resolved paths).
3. **content**: both are decoded again from disk and the member's MSE to
   the key (float64, the smallest over the four rotations when the search
   used ``rotate``, and over their mirror images with ``flip``) is within
   the search's threshold; with ``color=False`` or ``normalize`` the MSE of
   their luma or normalised thumbnails, as the search compared them.

Two more hold whatever a repository recorded: a member that is the same
file now as a library image or any group's key (:class:`KeptFiles`, by
``(st_dev, st_ino)`` read from disk, or the resolved path where a file system
has no inode numbers) is never acted on, nor one with more frames or pages
than its key (:func:`~fastdif.io.metadata.frame_count`: the rest of an
animation or a multi-page TIFF would exist nowhere else).

A check that fails gives a :class:`Refusal`; the file is then left alone.
The checks and the act run under this user's fastdif locks of the member
and its key (:func:`acting_on`), so two runs acting on the same files at
once (one keeping the newest copy, one the oldest) take turns, and the
second finds the first's act done.
"""

from __future__ import annotations

import contextlib
import enum
import os
import stat
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from filelock import FileLock, Timeout

from .engine.near import verify_near
from .engine.transforms import transform
from .io.cache import default_cache_path
from .io.decode import FILE_TIME_LIMIT, decode_file
from .io.metadata import frame_count
from .model import Criteria

#: st_dev and st_ino are unsigned; a repository stores them in int64 bit for bit.
_UNSIGNED_64 = (1 << 64) - 1


class Check(enum.Enum):
    """The check a file failed."""

    IDENTITY = "identity"
    SAME_FILE = "same-file"
    CONTENT = "content"
    FRAMES = "frames"
    LOCK = "lock"


class LostKeyWarning(UserWarning):
    """A group's key was gone, or another file, just after one of its members was acted on."""


@dataclass(frozen=True)
class Refusal:
    """Why a file is not acted on: the check it failed and a one-line detail."""

    check: Check
    detail: str

    def __str__(self) -> str:
        return f"{self.check.value} check failed: {self.detail}"


@dataclass(frozen=True)
class Identity:
    """What a file was when it was decoded. ``device == inode == 0``: inode unknown."""

    size: int
    mtime_ns: int
    device: int = 0
    inode: int = 0

    @classmethod
    def recorded(cls, size, mtime_ns, device, inode) -> Identity:
        """From a repository's arrays (int64 values, unsigned ones stored bit for bit)."""
        return cls(int(size), int(mtime_ns), int(device) & _UNSIGNED_64, int(inode) & _UNSIGNED_64)

    @classmethod
    def of_stat(cls, st: os.stat_result) -> Identity:
        """The identity of the file ``st`` describes."""
        return cls(st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)

    def differs(self, st: os.stat_result) -> str | None:
        """How the file ``st`` describes differs from this record, or None."""
        if st.st_size != self.size:
            return f"size is {st.st_size} bytes, was {self.size} when decoded"
        if st.st_mtime_ns != self.mtime_ns:
            return "modified since it was decoded"
        if (self.device, self.inode) != (0, 0) and (st.st_dev, st.st_ino) != (
            self.device,
            self.inode,
        ):
            return "a different file (inode) than the one decoded"
        return None


def min_mse(
    a: np.ndarray,
    b: np.ndarray,
    rotate: bool,
    flip: bool = False,
    *,
    color: bool = True,
    normalize: bool = False,
) -> float:
    """MSE of two (px, px, 3) thumbnails in float64; with ``rotate`` the least of four rotations.

    With ``flip`` the horizontal flip of ``a`` (and of each rotation) counts too.
    With ``color=False`` or ``normalize`` both are first transformed as the
    search compares them (:func:`fastdif.engine.transforms.transform`, the
    guard for flat images included).
    """
    if not color or normalize:
        a, b = transform(np.stack([np.asarray(a), np.asarray(b)]), color, normalize)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    faces = (a, a[:, ::-1]) if flip else (a,)
    turns = range(4 if rotate else 1)
    return min(float(np.mean((np.rot90(f, k) - b) ** 2)) for f in faces for k in turns)


def _same_file(a: str, a_stat: os.stat_result, b: str, b_stat: os.stat_result) -> bool:
    if a_stat.st_ino and b_stat.st_ino:
        return os.path.samestat(a_stat, b_stat)
    # A file system without inode numbers reports 0: the resolved paths must do.
    return os.path.realpath(a) == os.path.realpath(b)


class KeptFiles:
    """The files an action keeps whatever a result says: a library's images and the groups' keys.

    Each is known by what the disk says now, not by what a repository
    recorded (a library saved before inodes were recorded has none): its
    ``(st_dev, st_ino)`` after following links, read on first use (one
    ``stat`` per file), or its resolved path where the file system reports no
    inode numbers. So a member reached by another path (a link to a library
    folder inside the searched folder, a hard link, a bind mount) is
    recognised as the kept file it is.

    Parameters
    ----------
    library : iterable of str
        The library's images (``search(..., reference=...)``).
    keys : iterable of str
        Every group's key.
    """

    def __init__(self, library: Iterable[str] = (), keys: Iterable[str] = ()):
        self._sources = (("library image", library), ("key", keys))
        self._by_identity: dict[tuple[int, int], str] | None = None
        self._by_path: dict[str, str] = {}

    def _read(self) -> None:
        self._by_identity = by_identity = {}
        for label, paths in self._sources:
            for path in paths:
                try:
                    st = os.stat(path)
                except OSError:
                    continue  # gone: no member can be it
                what = f"the {label} {path!r}"
                if st.st_ino:
                    by_identity.setdefault((st.st_dev, st.st_ino), what)
                else:
                    self._by_path.setdefault(os.path.realpath(path), what)

    def holding(self, path: str, st: os.stat_result) -> str | None:
        """Which kept file ``path`` (whose ``os.stat`` is ``st``) is, described; None if none."""
        if self._by_identity is None:
            self._read()
        found = self._by_identity.get((st.st_dev, st.st_ino)) if st.st_ino else None
        if found is None and self._by_path:
            found = self._by_path.get(os.path.realpath(path))
        return found


#: Seconds a run waits for another run's lock on a file before leaving the file alone.
LOCK_TIMEOUT_S = 60.0

#: Lock files, among which files are spread by identity: a fixed number, so
#: the lock folder never grows; two files sharing one only take turns.
LOCK_FILES = 256


def lock_folder() -> str:
    """This user's fastdif lock folder: ``locks`` beside the default cache file.

    Where that folder cannot be made (no writable home), a folder of this
    user's in the temporary folder.
    """
    folder = os.path.join(os.path.dirname(default_cache_path()), "locks")
    try:
        os.makedirs(folder, exist_ok=True)
        return folder
    except OSError:
        pass
    uid = os.geteuid() if hasattr(os, "geteuid") else 0
    folder = os.path.join(tempfile.gettempdir(), f"fastdif-locks-{uid}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    # Not a folder another user made for us in a shared temporary folder.
    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "geteuid") and st.st_uid != uid):
        raise PermissionError(f"{folder!r} is not this user's folder")
    return folder


def _lock_name(path: str) -> str | None:
    """The lock file of the file at ``path`` (by identity, links followed); None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # nothing to act on: its check refuses it
    which = f"{st.st_dev}:{st.st_ino}" if st.st_ino else os.path.realpath(path)
    number = zlib.crc32(os.fsencode(which)) % LOCK_FILES
    return f"{number:03d}.lock"


@contextlib.contextmanager
def acting_on(*paths: str | None):
    """Hold this user's fastdif locks of the files at ``paths`` for the block.

    A member is checked and acted on inside this block, with its key among
    ``paths``: a second run acting on either file waits for the block to
    end, then checks what the first left (its key gone: refused). Locks are
    taken in one order (sorted), so no two runs ever wait for each other
    (no deadlock); each is an OS lock on a file in :func:`lock_folder`,
    released if the process dies. ``None`` paths are skipped.

    Yields
    ------
    Refusal or None
        None with the locks held; a :class:`Refusal` (and no lock held) when
        another run held one for :data:`LOCK_TIMEOUT_S` seconds or the lock
        folder cannot be used: the file must then be left alone.
    """
    names = sorted({_lock_name(p) for p in paths if p is not None} - {None})
    held: list[FileLock] = []
    refusal = None
    try:
        folder = lock_folder()
        for name in names:
            lock = FileLock(os.path.join(folder, name), timeout=LOCK_TIMEOUT_S)
            lock.acquire()
            held.append(lock)
    except Timeout:
        refusal = Refusal(
            Check.LOCK,
            f"another fastdif run acted on it or its key for {LOCK_TIMEOUT_S:g} s; try again later",
        )
    except OSError as exc:
        refusal = Refusal(Check.LOCK, f"cannot take fastdif's lock: {exc.strerror or exc}")
    except BaseException:  # an interrupt while waiting: hold nothing
        _release(held)
        raise
    try:
        if refusal is not None:
            _release(held)
        yield refusal
    finally:
        _release(held)


def _release(held: list[FileLock]) -> None:
    while held:
        held.pop().release()


def key_lost(key: str, key_record: Identity) -> str | None:
    """Why ``key`` is no longer the file ``key_record`` describes (gone or replaced); else None.

    Asked just after a member was acted on: its check found the key, so a
    key lost now was removed or replaced by something else at that moment.
    """
    try:
        st = os.stat(key)
    except OSError as exc:
        return f"its key {key!r} is gone ({exc.strerror or exc})"
    changed = key_record.differs(st)
    return None if changed is None else f"its key {key!r} changed: {changed}"


def thumbnail(path: str, px_size: int) -> np.ndarray | str:
    """``path`` decoded as the build decodes it, or the reason it cannot be."""
    found = decoded(path, px_size)
    return found if isinstance(found, str) else found[0]


def decoded(path: str, px_size: int) -> tuple[np.ndarray, tuple[int, int]] | str:
    """``path``'s thumbnail and displayed (width, height), decoded now, or why it cannot be."""
    result = decode_file(path, px_size, FILE_TIME_LIMIT)
    if result.reason is not None:
        return result.reason
    pixels = np.frombuffer(result.thumbnail, dtype=np.uint8).reshape(px_size, px_size, 3)
    return pixels, (result.width, result.height)


def _near_refusal(key, key_thumb, key_shape, member_thumb, member_shape, criteria):
    """Why ``member`` is not a near copy of ``key`` now (:func:`~fastdif.engine.near.verify_near`
    on the fresh thumbnails), or None: it is, has no more pixels than its key,
    and its key bears no overlay it has not."""
    if member_shape[0] * member_shape[1] > key_shape[0] * key_shape[1]:
        return Refusal(
            Check.CONTENT,
            f"it has more pixels ({member_shape[0]} x {member_shape[1]}) than its key {key!r} "
            f"({key_shape[0]} x {key_shape[1]}): the key may be a crop of it",
        )
    match = verify_near(
        key_thumb, member_thumb, key_shape, member_shape, criteria.rotate, criteria.flip
    )
    if match is None:
        return Refusal(
            Check.CONTENT,
            f"it is not a near copy of its key {key!r}, nor within the search's threshold "
            f"{criteria.max_mse:g}",
        )
    why = match.refusal(1)
    return None if why is None else Refusal(Check.CONTENT, f"{why} ({key!r})")


def check_pair(
    key: str,
    member: str,
    key_record: Identity | None,
    member_record: Identity | None,
    criteria: Criteria,
    px_size: int,
    key_thumbnails: dict | None = None,
    kept: KeptFiles | None = None,
) -> Refusal | None:
    """None when ``member`` may be deleted or moved as a copy of ``key`` now, else why not.

    Parameters
    ----------
    key, member : str
        The group's key and the member to act on.
    key_record, member_record : Identity or None
        What each file was when decoded; None (nothing recorded, as for
        :func:`fastdif.from_arrays`) refuses.
    criteria : Criteria
        The search's threshold and rotation setting.
    px_size : int
        The thumbnail side the files were decoded at.
    key_thumbnails : dict, optional
        ``{key: thumbnail or reason}`` shared by the calls of one action, so
        a key is decoded once; its identity is still checked on every call.
    kept : KeptFiles, optional
        Files never acted on (the library's, every key): ``member`` must be
        none of them.

    Returns
    -------
    Refusal or None
    """
    if key_record is None or member_record is None:
        which = "this file" if member_record is None else "its key"
        return Refusal(Check.IDENTITY, f"nothing recorded about {which} at build to check")
    try:
        member_stat = os.stat(member)
    except OSError as exc:
        return Refusal(Check.IDENTITY, f"cannot read it: {exc.strerror or exc}")
    try:
        key_stat = os.stat(key)
    except OSError as exc:
        return Refusal(Check.IDENTITY, f"cannot read its key {key!r}: {exc.strerror or exc}")
    if _same_file(key, key_stat, member, member_stat):
        return Refusal(Check.SAME_FILE, f"it is the same file as its key {key!r}")
    other = None if kept is None else kept.holding(member, member_stat)
    if other is not None:
        return Refusal(Check.SAME_FILE, f"it is the same file as {other}, which is kept")
    changed = member_record.differs(member_stat)
    if changed is not None:
        return Refusal(Check.IDENTITY, changed)
    changed = key_record.differs(key_stat)
    if changed is not None:
        return Refusal(Check.IDENTITY, f"its key {key!r}: {changed}")

    if key_thumbnails is None:
        key_thumbnails = {}
    if key not in key_thumbnails:
        key_thumbnails[key] = decoded(key, px_size)
    key_found = key_thumbnails[key]
    if isinstance(key_found, str):
        return Refusal(Check.CONTENT, f"its key {key!r} cannot be decoded: {key_found}")
    member_found = decoded(member, px_size)
    if isinstance(member_found, str):
        return Refusal(Check.CONTENT, f"cannot be decoded: {member_found}")
    (key_thumb, key_shape), (member_thumb, member_shape) = key_found, member_found
    mse = min_mse(
        key_thumb,
        member_thumb,
        criteria.rotate,
        criteria.flip,
        color=criteria.color,
        normalize=criteria.normalize,
    )
    if not mse <= criteria.max_mse and criteria.near:
        refusal = _near_refusal(key, key_thumb, key_shape, member_thumb, member_shape, criteria)
        if refusal is not None:
            return refusal
    elif not mse <= criteria.max_mse:
        return Refusal(
            Check.CONTENT,
            f"its MSE to its key {key!r} is {mse:.6g}, above the search's threshold "
            f"{criteria.max_mse:g}",
        )
    frames = frame_count(member)
    if frames > 1:
        key_frames = frame_count(key)
        if frames > key_frames:
            return Refusal(
                Check.FRAMES,
                f"it has {frames} frames or pages, its key {key!r} {key_frames}: the others "
                "would exist nowhere else",
            )
    # What was decoded is what is on disk: nothing replaced either file meanwhile.
    for path, record, before in ((member, member_record, member_stat), (key, key_record, key_stat)):
        try:
            after = os.stat(path)
        except OSError as exc:
            return Refusal(Check.IDENTITY, f"cannot read {path!r}: {exc.strerror or exc}")
        if record.differs(after) is not None or not _same_file(path, after, path, before):
            return Refusal(Check.IDENTITY, f"{path!r} changed while it was checked")
    return None
