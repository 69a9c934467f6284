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

A check that fails gives a :class:`Refusal`; the file is then left alone.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

import numpy as np

from .engine.transforms import transform
from .io.decode import FILE_TIME_LIMIT, decode_file
from .model import Criteria

#: st_dev and st_ino are unsigned; a repository stores them in int64 bit for bit.
_UNSIGNED_64 = (1 << 64) - 1


class Check(enum.Enum):
    """The check a file failed."""

    IDENTITY = "identity"
    SAME_FILE = "same-file"
    CONTENT = "content"


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


def thumbnail(path: str, px_size: int) -> np.ndarray | str:
    """``path`` decoded as the build decodes it, or the reason it cannot be."""
    decoded = decode_file(path, px_size, FILE_TIME_LIMIT)
    if decoded.reason is not None:
        return decoded.reason
    return np.frombuffer(decoded.thumbnail, dtype=np.uint8).reshape(px_size, px_size, 3)


def check_pair(
    key: str,
    member: str,
    key_record: Identity | None,
    member_record: Identity | None,
    criteria: Criteria,
    px_size: int,
    key_thumbnails: dict | None = None,
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
    changed = member_record.differs(member_stat)
    if changed is not None:
        return Refusal(Check.IDENTITY, changed)
    changed = key_record.differs(key_stat)
    if changed is not None:
        return Refusal(Check.IDENTITY, f"its key {key!r}: {changed}")

    if key_thumbnails is None:
        key_thumbnails = {}
    if key not in key_thumbnails:
        key_thumbnails[key] = thumbnail(key, px_size)
    key_thumb = key_thumbnails[key]
    if isinstance(key_thumb, str):
        return Refusal(Check.CONTENT, f"its key {key!r} cannot be decoded: {key_thumb}")
    member_thumb = thumbnail(member, px_size)
    if isinstance(member_thumb, str):
        return Refusal(Check.CONTENT, f"cannot be decoded: {member_thumb}")
    mse = min_mse(
        key_thumb,
        member_thumb,
        criteria.rotate,
        criteria.flip,
        color=criteria.color,
        normalize=criteria.normalize,
    )
    if not mse <= criteria.max_mse:
        return Refusal(
            Check.CONTENT,
            f"its MSE to its key {key!r} is {mse:.6g}, above the search's threshold "
            f"{criteria.max_mse:g}",
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
