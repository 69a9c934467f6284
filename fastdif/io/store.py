"""The saved-repository format: its one owner. Memory-mapped, without pickle.

On-disk format (format version 1): a folder holding

``repository.json``
    UTF-8 JSON: ``format`` ("fastdif-repository"), ``format_version``,
    ``fastdif_version``, ``saved`` (ISO time), ``count`` (N), ``px_size``,
    ``thumbnail_version`` (see :attr:`Repository.thumbnail_version`; absent
    in repositories saved before it was recorded, whose thumbnails are
    version 1), ``in_folder`` (true, false or "subfolders"; a fastdif that
    knows only true and false reads "subfolders" as true and searches the
    saved groups all the same), ``paths`` (N strings), ``folders`` and
    ``groups`` (search groups as lists of indices into ``paths``), ``stats``
    (the build stats, with the build parameters) and ``arrays``: for each
    array below its file name, dtype, shape and the CRC-32 of its data.
``tensors.npy``
    float32 or uint8 (N, px, px, 3): the thumbnails on the 0..255 scale, in
    the repository's own dtype (``build`` makes float32; ``from_arrays`` may
    hold uint8).
``shapes.npy``
    int64 (N, 2): displayed (width, height) of each image.
``file_sizes.npy``, ``mtimes_ns.npy``
    int64 (N,): file size in bytes and modification time in ns.
``grids.npy``, ``means.npy``
    float32 (N, g, g, 3) and (N, 1, 1, 3): the thumbnails' block means
    (see ``Repository.block_means``), when the repository held them; absent
    otherwise, and in repositories saved before they were recorded.
``inodes.npy``
    int64 (N, 2): each file's ``(st_dev, st_ino)`` (unsigned values stored
    bit for bit). Absent in repositories saved before it was recorded:
    those load with ``(0, 0)``, "unknown" (see :mod:`fastdif.verify`).
``near_features.npy``
    A structured array (N,): one record per image, a field per array of
    :class:`fastdif.engine.near.NearFeatures` (684 bytes at features version
    2), described in ``repository.json`` under ``near_features`` (file,
    ``definition``: the features version and the record layout, dtype,
    shape, CRC-32). Only a hint for finding near candidates: absent (saved
    before they were), of another definition, or malformed in any way
    (wrong length, dtype, checksum, not a regular file), it is ignored and
    the features are made again from the thumbnails, with no error.

The arrays are plain NumPy ``.npy`` files, read with ``allow_pickle=False``
and memory-mapped, so loading an untrusted folder cannot run code and
loading takes milliseconds plus one CRC pass over the data.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import io
import json
import os
import shutil
import stat
import sys
import tempfile
import warnings
import zlib
from datetime import datetime

import numpy as np

from .._version import __version__
from .files import sync_folder

FORMAT = "fastdif-repository"

#: Bump when the layout changes in a way older readers cannot read.
FORMAT_VERSION = 1

META_FILE = "repository.json"

#: Array name -> (dtype, dimensions after N); N = number of images.
_ARRAYS = {
    "tensors": (None, None),  # dtype of _TENSOR_DTYPES; (px, px, 3) checked against px_size
    "shapes": ("<i8", (2,)),
    "file_sizes": ("<i8", ()),
    "mtimes_ns": ("<i8", ()),
    "inodes": ("<i8", (2,)),
    "grids": ("<f4", "grid"),  # (g, g, 3), g dividing px
    "means": ("<f4", (1, 1, 3)),
}

#: Arrays a repository saved by an older fastdif may lack; they load as zeros.
_OPTIONAL = ("inodes",)

#: The block means: saved when the repository holds them, else absent (None).
_BLOCK_MEANS = ("grids", "means")

_TENSOR_DTYPES = ("<f4", "|u1")

#: The near features' file (one record per image; see the module's docstring).
NEAR_FILE = "near_features.npy"

#: The files a saved repository is made of: the only ones replacing it removes.
REPOSITORY_FILES = (META_FILE, *(f"{name}.npy" for name in _ARRAYS), NEAR_FILE)

#: Open flag that refuses a symbolic link as the last part of a path (0 where there is none).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

#: ``renameat2``'s and ``renamex_np``'s flags that refuse an existing target.
_RENAME_NOREPLACE = 1
_RENAME_EXCL = 4
_AT_FDCWD = -100


class RepositoryFormatError(ValueError):
    """A saved repository that cannot be loaded: corrupt, or an incompatible format."""


def save(dif, path: str | os.PathLike, overwrite: bool = False, near=None) -> str:
    """Write the repository ``dif`` into the new folder ``path``, atomically.

    ``path`` may replace a repository saved there with ``overwrite``;
    anything else at ``path``, there when called or put there while the
    repository is written, is never replaced (FileExistsError). ``near``:
    see :func:`write`. See :meth:`fastdif.Repository.save` and :func:`publish`.
    """
    target = os.path.abspath(os.fspath(path))
    if os.path.lexists(target):
        if not overwrite:
            raise FileExistsError(f'"{target}" exists; pass overwrite=True to replace it')
        if not is_repository(target):
            raise FileExistsError(f'"{target}" exists and is not a saved fastdif repository')
    tmp = staging_folder(target)
    try:
        write(dif, tmp, near=near)
        publish(tmp, target, replace=overwrite)
    except BaseException:
        discard(tmp)
        raise
    return target


def is_repository(path: str) -> bool:
    """Whether ``path`` is a folder (not a link) holding a fastdif ``repository.json``.

    The file must be a regular file (not a link) whose JSON names the
    repository format: a user's folder is never taken for a repository.
    """
    meta = os.path.join(path, META_FILE)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode) or not stat.S_ISREG(os.lstat(meta).st_mode):
            return False
        with open(os.open(meta, os.O_RDONLY | NOFOLLOW), encoding="utf-8") as src:
            found = json.load(src)
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and found.get("format") == FORMAT


def array_file(folder: str, name: str) -> str:
    """The ``.npy`` file of array ``name`` (``"tensors"``, ``"shapes"``, ...) in ``folder``."""
    return os.path.join(folder, f"{name}.npy")


def staging_folder(target: str) -> str:
    """A new, empty folder beside ``target`` to write a repository into."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.tmp-")
    # mkdtemp makes the folder private; give it the mode a new folder gets.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


def discard(folder: str) -> None:
    """Remove the folder ``folder`` of :func:`staging_folder`: this run's own, never published."""
    shutil.rmtree(folder, ignore_errors=True)


def create_tensors(folder: str, count: int, px_size: int) -> str:
    """Create ``folder/tensors.npy``: ``count`` uint8 thumbnails of ``px_size``, zeros.

    For builds that write thumbnails into it from several processes
    (``np.load(path, mmap_mode="r+")``) before :func:`write` with
    ``written=("tensors",)``. Returns the file's path.
    """
    target = array_file(folder, "tensors")
    shape = (count, px_size, px_size, 3)
    np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=shape).flush()
    return target


#: Thumbnail shards a distributed build writes into a store folder are named ``shard-*.npy``.
SHARD_PREFIX = "shard-"


def shard_file(folder: str, name: str) -> str:
    """The shard file ``name`` (e.g. ``"0000012"``) in the store folder being built."""
    return os.path.join(folder, f"{SHARD_PREFIX}{name}.npy")


def write_shard(path: str, thumbnails: np.ndarray) -> None:
    """Write ``thumbnails`` (uint8, (n, px, px, 3)) to the shard file ``path``."""
    np.save(path, thumbnails, allow_pickle=False)


def rows(path: str) -> int:
    """How many thumbnails the ``.npy`` file ``path`` (a shard or a tensors file) holds."""
    return np.load(path, mmap_mode="r", allow_pickle=False).shape[0]


def copy_shard(shard: str, tensors: str, offset: int) -> None:
    """Copy a shard's thumbnails into rows ``offset...`` of the tensors file; remove the shard.

    ``tensors`` is the file of :func:`create_tensors`; several processes
    copy disjoint rows into it at once.
    """
    thumbnails = np.load(shard, mmap_mode="r", allow_pickle=False)
    target = np.load(tensors, mmap_mode="r+", allow_pickle=False)
    target[offset : offset + len(thumbnails)] = thumbnails
    target.flush()
    del target
    os.remove(shard)


def remove_shards(folder: str) -> None:
    """Remove every shard file left in ``folder`` (written by a task whose worker then died)."""
    for name in os.listdir(folder):
        if name.startswith(SHARD_PREFIX):
            os.remove(os.path.join(folder, name))


def write(dif, folder: str, written: tuple[str, ...] = (), near=None) -> None:
    """Write the repository ``dif``'s arrays and metadata into ``folder``, the metadata last.

    The arrays named in ``written`` (``"tensors"``, ``"grids"``, ``"means"``)
    are already in their files there (a build with a store writes them);
    only their CRC is computed, reading them in slices. ``near``:
    ``(definition, records)``, the near features (:data:`NEAR_FILE`), or None.
    """
    arrays = {}
    for name, (dtype, _) in _ARRAYS.items():
        file = array_file(folder, name)
        if name in written:
            data = np.load(file, mmap_mode="r", allow_pickle=False)
            crc, step = 0, max(1, (64 << 20) // max(1, data[:1].nbytes))
            for a in range(0, len(data), step):
                crc = zlib.crc32(data[a : a + step], crc)
            arrays[name] = {
                "file": f"{name}.npy",
                "dtype": data.dtype.str,
                "shape": list(data.shape),
                "crc32": crc,
            }
            continue
        if name in _BLOCK_MEANS:
            if dif.block_means is None:
                continue
            data = getattr(dif.block_means, name)
        else:
            data = getattr(dif, name)
        if dtype is None:
            dtype = data.dtype.str if data.dtype.str in _TENSOR_DTYPES else "<f4"
        data = np.ascontiguousarray(data, dtype=dtype)
        with _new_file(file, "wb") as out:
            np.save(out, data, allow_pickle=False)
        arrays[name] = {
            "file": f"{name}.npy",
            "dtype": dtype,
            "shape": list(data.shape),
            "crc32": zlib.crc32(data),
        }
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastdif_version": __version__,
        "saved": datetime.now().isoformat(),
        "count": len(dif),
        "px_size": dif.px_size,
        "thumbnail_version": dif.thumbnail_version,
        "in_folder": dif.in_folder if dif.in_folder == "subfolders" else bool(dif.in_folder),
        "paths": list(dif.paths),
        "folders": list(dif.folders),
        "groups": [[int(i) for i in group] for group in dif.groups],
        "stats": dif.stats,
        "arrays": arrays,
    }
    if near is not None:
        definition, records = near
        with _new_file(os.path.join(folder, NEAR_FILE), "wb") as out:
            np.save(out, records, allow_pickle=False)
        meta["near_features"] = {
            "file": NEAR_FILE,
            "definition": definition,
            "dtype": str(records.dtype.descr),
            "shape": list(records.shape),
            "crc32": zlib.crc32(records),
        }
    # Written last: a folder without it is never taken for a repository.
    with _new_file(os.path.join(folder, META_FILE), "w") as out:
        json.dump(meta, out)


@contextlib.contextmanager
def _new_file(path: str, mode: str):
    """``path`` opened for writing in ``mode``, created or emptied, on disk when the block ends.

    A symbolic link at ``path`` is refused (OSError), never followed: the
    file written is the folder's own. The data is flushed and ``fsync``-ed
    before the folder can be published, so a power cut never leaves a
    published repository with missing data.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW | getattr(os, "O_BINARY", 0)
    kwargs = {} if "b" in mode else {"encoding": "utf-8"}
    with open(os.open(path, flags, 0o666), mode, **kwargs) as out:
        yield out
        out.flush()
        os.fsync(out.fileno())


def new_array(path: str, dtype, shape: tuple) -> np.memmap:
    """Create the ``.npy`` file ``path`` for ``dtype`` and ``shape`` and map it for writing.

    Its space is reserved first (``posix_fallocate`` where the system and
    file system offer it), so a full disk is an OSError here rather than a
    SIGBUS when a mapped page is written. A link at ``path`` is refused.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(int(s) for s in shape),
        },
    )
    start = len(header.getvalue())
    length = np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64))
    with _new_file(path, "wb") as out:
        out.write(header.getvalue())
        out.truncate(start + length)
        if length and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(out.fileno(), start, length)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise
                # EINVAL, EOPNOTSUPP: a file system that cannot reserve; writes still work.
    return np.lib.format.open_memmap(path, mode="r+")


def write_all(fd: int, data, offset: int | None = None) -> None:
    """Write all of ``data`` to the file ``fd``, at ``offset`` (else at its position).

    Every count the system returns is checked: a short write is followed
    by another for the rest, and a write that takes nothing raises
    OSError(ENOSPC), so a full disk is an error, never a silently short
    file.
    """
    view = memoryview(data).cast("B")
    while view:
        if offset is None:
            count = os.write(fd, view)
        elif hasattr(os, "pwrite"):
            count = os.pwrite(fd, view, offset)
        else:  # Windows
            os.lseek(fd, offset, os.SEEK_SET)
            count = os.write(fd, view)
        if count <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[count:]
        if offset is not None:
            offset += count


def publish(tmp: str, target: str, replace: bool = False) -> None:
    """Rename the finished folder ``tmp`` to ``target``, a name that must be free.

    The rename itself refuses an existing ``target`` (:func:`rename_noreplace`),
    so a folder that appeared there at any time before is left as it was
    (FileExistsError). With ``replace``, a saved repository there
    (:func:`is_repository`) is replaced: moved aside under a new name,
    checked again, the new folder renamed into the freed name, and only
    then the old one's files (:data:`REPOSITORY_FILES`) removed; anything
    else found there is put back and FileExistsError raised.
    """
    try:
        rename_noreplace(tmp, target)
    except FileExistsError:
        if not replace:
            raise FileExistsError(f'"{target}" exists; it was left as it was') from None
        _replace(tmp, target)
    sync_folder(os.path.dirname(target))


def _replace(tmp: str, target: str) -> None:
    """Put the folder ``tmp`` in the place of the saved repository ``target``."""
    aside = tempfile.mkdtemp(
        dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.old-"
    )
    old = os.path.join(aside, "repository")
    try:
        rename_noreplace(target, old)
    except FileNotFoundError:  # gone meanwhile: the name is free
        os.rmdir(aside)
        rename_noreplace(tmp, target)
        return
    if not is_repository(old):  # not what was checked: another folder took the name
        _put_back(old, target, f'"{target}" is not a saved fastdif repository')
    try:
        rename_noreplace(tmp, target)
    except OSError as exc:
        _put_back(old, target, f'"{target}" could not be replaced ({exc.strerror})')
    for name in REPOSITORY_FILES:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(old, name))
    try:
        os.rmdir(old)
        os.rmdir(aside)
    except OSError:
        warnings.warn(
            f'The repository replaced at "{target}" also held other files; '
            f'they were kept in "{old}".',
            stacklevel=4,
        )


def _put_back(old: str, target: str, why: str):
    """Rename ``old`` back to ``target`` and raise FileExistsError(``why``), saying where it is."""
    try:
        rename_noreplace(old, target)
        os.rmdir(os.path.dirname(old))
    except OSError:
        raise FileExistsError(f'{why}; it was moved to "{old}", which holds it unchanged') from None
    raise FileExistsError(f"{why}; it was left as it was")


def rename_noreplace(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst``, which must not exist (else FileExistsError, ``dst`` untouched).

    Atomic where the system offers it: ``renameat2(RENAME_NOREPLACE)`` on
    Linux, ``renamex_np(RENAME_EXCL)`` on macOS, and ``os.rename`` on
    Windows, which never replaces. Elsewhere, or on a file system without
    it, the name is checked just before an ordinary rename: a folder
    ``src`` can then replace only an empty folder made in the instant
    between the two (a rename refuses a folder with anything in it, a file
    and a link), so nothing is lost.
    """
    exclusive = _exclusive_rename()
    if exclusive is not None:
        if exclusive(os.fsencode(src), os.fsencode(dst)) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), src, None, dst)
    elif os.name == "nt":
        os.rename(src, dst)
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), src, None, dst)
    try:
        os.rename(src, dst)
    except OSError as exc:
        if os.path.lexists(dst):  # taken since the check: ENOTEMPTY, EEXIST or ENOTDIR
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), src, None, dst) from exc
        raise


@functools.cache
def _exclusive_rename():
    """The system's rename that refuses an existing target, ``f(src, dst) -> 0 or -1``; or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith("linux"):
            call = libc.renameat2
            call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            call.argtypes += [ctypes.c_uint]
            return lambda src, dst: call(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE)
        if sys.platform == "darwin":
            call = libc.renamex_np
            call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            return lambda src, dst: call(src, dst, _RENAME_EXCL)
    except (OSError, AttributeError, TypeError):  # no such C library function (an old glibc, musl)
        pass
    return None


def read(path: str | os.PathLike, verify: bool = True) -> dict:
    """Read a repository saved by :func:`save`: the keyword arguments of ``Repository``.

    The arrays are memory-mapped read-only. Parameters and exceptions
    (FileNotFoundError, :class:`RepositoryFormatError`) as :func:`fastdif.load`.
    """
    folder = os.path.abspath(os.fspath(path))
    meta_path = os.path.join(folder, META_FILE)
    if not os.path.exists(meta_path):
        raise FileNotFoundError(f'"{folder}" is not a saved fastdif repository (no {META_FILE})')
    _check_regular(meta_path)
    try:
        with open(meta_path, encoding="utf-8") as src:
            meta = json.load(src)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RepositoryFormatError(f"{meta_path} is corrupt: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RepositoryFormatError(f"{meta_path} is not a fastdif repository file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise RepositoryFormatError(
            f'"{folder}" was saved in repository format {meta.get("format_version")!r} by '
            f"fastdif {meta.get('fastdif_version')}; this fastdif ({__version__}) reads "
            f"format {FORMAT_VERSION}. Build the repository again and save it."
        )
    try:
        return _from_meta(folder, meta, verify)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, RepositoryFormatError):
            raise
        raise RepositoryFormatError(f'"{folder}" is corrupt: {type(exc).__name__}: {exc}') from None


def _from_meta(folder: str, meta: dict, verify: bool) -> dict:
    n, px = meta["count"], meta["px_size"]
    paths, folders, groups = meta["paths"], meta["folders"], meta["groups"]
    if not (isinstance(paths, list) and len(paths) == n and all(isinstance(p, str) for p in paths)):
        raise RepositoryFormatError(f'"{folder}" is corrupt: "paths" does not list {n} paths')
    if len(folders) != len(groups) or any(
        not isinstance(i, int) or not 0 <= i < n for group in groups for i in group
    ):
        raise RepositoryFormatError(f'"{folder}" is corrupt: "groups" do not match the paths')
    thumbnail_version = meta.get("thumbnail_version", 1)
    if thumbnail_version is not None and type(thumbnail_version) is not int:
        raise RepositoryFormatError(f'"{folder}" is corrupt: "thumbnail_version" is not a number')
    arrays = {}
    for name, (dtype, tail) in _ARRAYS.items():
        if name in _OPTIONAL and name not in meta["arrays"]:
            arrays[name] = np.zeros((n, *tail), dtype=dtype)
            continue
        if name in _BLOCK_MEANS and name not in meta["arrays"]:
            arrays[name] = None
            continue
        info = meta["arrays"][name]
        if dtype is None:
            if info["dtype"] not in _TENSOR_DTYPES:
                raise RepositoryFormatError(f'"{folder}" is corrupt: tensors of {info["dtype"]}')
            dtype = info["dtype"]
        if tail is None:
            expected = (n, px, px, 3)
        elif tail == "grid":
            g = info["shape"][1] if len(info["shape"]) == 4 else 0
            expected = (n, g, g, 3) if g > 0 and px % g == 0 else tuple(info["shape"]) + (-1,)
        else:
            expected = (n, *tail)
        file = array_file(folder, name)
        _check_regular(file)
        try:
            # allow_pickle=False: an object array in the file raises instead of unpickling.
            data = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RepositoryFormatError(f"{file} is corrupt: {exc}") from None
        if (
            data.dtype != np.dtype(dtype)
            or data.shape != expected
            or list(expected) != list(info["shape"])
        ):
            raise RepositoryFormatError(
                f"{file} is corrupt: {data.dtype} {data.shape}, expected {dtype} {expected}"
            )
        # A plain ndarray view of the map: search sees the same type as after build.
        data = np.asarray(data)
        if verify and zlib.crc32(data) != info["crc32"]:
            raise RepositoryFormatError(f"{file} is corrupt: checksum mismatch")
        arrays[name] = data
    return {
        "tensors": arrays["tensors"],
        "paths": paths,
        "shapes": arrays["shapes"],
        "file_sizes": arrays["file_sizes"],
        "groups": groups,
        "folders": folders,
        "in_folder": _in_folder(folder, meta["in_folder"]),
        "stats": meta["stats"],
        "mtimes_ns": arrays["mtimes_ns"],
        "tensors_file": array_file(folder, "tensors"),
        "thumbnail_version": thumbnail_version,
        "inodes": arrays["inodes"],
        "block_means": None
        if arrays["grids"] is None or arrays["means"] is None
        else {"grids": arrays["grids"], "means": arrays["means"]},
        "near_features": _near(folder, meta, verify),
    }


def _near(folder: str, meta: dict, verify: bool) -> tuple[str, np.ndarray] | None:
    """``(definition, records)`` of :data:`NEAR_FILE`, read into memory; None unless sound.

    Absent, or malformed in any way, the features are a hint the loader
    makes again from the thumbnails: never an error.
    """
    info = meta.get("near_features")
    file = os.path.join(folder, NEAR_FILE)
    try:
        if not (isinstance(info, dict) and isinstance(info.get("definition"), str)):
            return None
        if not stat.S_ISREG(os.stat(file).st_mode):
            return None  # never opened: a named pipe would block
        # Mapped first: a forged header's length is checked before anything is read.
        mapped = np.load(file, mmap_mode="r", allow_pickle=False)
        if mapped.dtype.names is None or mapped.shape != (meta["count"],):
            return None
        records = np.array(mapped)
    except (OSError, ValueError, EOFError):
        return None
    if verify and zlib.crc32(records) != info.get("crc32"):
        return None
    return info["definition"], records


def _in_folder(folder: str, value) -> bool | str:
    """The saved ``in_folder``: true, false or "subfolders" (saved before it existed: a bool)."""
    if isinstance(value, bool) or value == "subfolders":
        return value
    raise RepositoryFormatError(f'"{folder}" is corrupt: "in_folder" is {value!r}')


def _check_regular(path: str) -> None:
    """Raise RepositoryFormatError unless ``path`` (links followed) is a regular file.

    Opening a named pipe blocks until a writer comes, and a device such as
    /dev/zero never ends: load opens nothing else.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise RepositoryFormatError(f"{path} is corrupt: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise RepositoryFormatError(
            f"{path} is corrupt: not a regular file (a named pipe, device or folder)"
        )


def has_meta(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a ``repository.json``, whatever its content.

    The command line takes such a folder given as a library for a saved
    repository and loads it, so one whose meta file is corrupt is reported
    as corrupt by :func:`read`, not searched as a folder of images.
    """
    return os.path.isfile(os.path.join(folder, META_FILE))
