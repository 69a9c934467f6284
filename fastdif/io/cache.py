"""Incremental decoding: reuse thumbnails of unchanged files from an SQLite cache.

The cache is one SQLite database (standard library ``sqlite3``, WAL mode). A
row holds one file's thumbnail (px x px x 3 uint8 bytes, RGB), its displayed
(width, height), or the reason it failed to decode. A row is found by the
file's resolved path and the decoding settings (px_size and
:func:`fastdif.io.decode.thumbnail_definition`: the thumbnail version and the
decoders' versions) and used only while the file's size and
modification time (ns) are what they were when it was decoded; anything else
is decoded again by the build's backend (:mod:`fastdif.backends`) and replaces the row.

The ``features`` table holds each thumbnail's near features (one record,
:class:`fastdif.model.NearRecords`) under the same key, with their
definition (features version and layout) and a CRC-32 over the thumbnail
and the record. The build computes them, once, and hands them back
(:meth:`CachedDecoder.store_features`): features of another definition, of
another thumbnail (a row replaced by a fastdif that did not store them) or
damaged are never trusted, but made again by the build from the cached
thumbnail and stored. Older fastdif versions (same schema) ignore the table.

Only the parent process touches the database; decoding workers never do.
Writes go in short ``BEGIN IMMEDIATE`` transactions, so several builds (in
one or several processes) can share one cache file.
"""

from __future__ import annotations

import enum
import itertools
import os
import sqlite3
import stat
import sys
import time
import urllib.parse
import warnings
import zlib
from array import array
from dataclasses import dataclass

from .. import params
from .decode import Decoded, Failure, thumbnail_definition

#: Layout of the database. A cache file with another schema version is moved
#: aside and a new one started; the default file name carries it too, so two
#: fastdif versions with different schemas keep separate default caches.
SCHEMA_VERSION = 1

#: File name of the cache in the default folder, or inside a folder given as ``cache``.
CACHE_FILE = f"thumbnails-v{SCHEMA_VERSION}.sqlite3"

#: New rows are written this many at a time, so a lock is held only briefly
#: and an interrupted build keeps most of what it decoded.
WRITE_BATCH = 256

#: Cached thumbnails are read this many rows at a time, in file order, so a
#: build holds at most this many (7.5 kB each at px_size 50), however many
#: files it finds in the cache.
READ_BATCH = 2048

#: Seconds to wait for another process's write transaction before giving up.
BUSY_TIMEOUT_S = 60.0

#: Stands for the file's path in a stored failure reason, so a reason read
#: back names the path as this build spelled it.
_PATH = "\0path\0"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS thumbnails (
    path BLOB NOT NULL,
    settings TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    thumbnail BLOB,
    reason BLOB,
    checksum INTEGER NOT NULL,
    PRIMARY KEY (path, settings)
)""",
    """CREATE TABLE IF NOT EXISTS features (
    path BLOB NOT NULL,
    settings TEXT NOT NULL,
    definition TEXT NOT NULL,
    data BLOB NOT NULL,
    checksum INTEGER NOT NULL,
    PRIMARY KEY (path, settings)
)""",
)


#: The unchanged files' rows: the temporary table ``wanted`` (one row per
#: file, by index) joined with the cache, for the decoding settings (parameter).
_HITS = (
    "FROM wanted AS w JOIN thumbnails AS t ON t.path = w.path "
    "AND t.settings = ? AND t.size = w.size AND t.mtime_ns = w.mtime_ns"
)


class CacheWarning(UserWarning):
    """The cache could not be used as it was (corrupt, incompatible or locked)."""


class CacheFile(enum.Enum):
    """What is at a cache path (see :func:`cache_file_kind`)."""

    MISSING = "missing"
    EMPTY = "empty"
    FASTDIF = "a fastdif cache"
    OTHER = "not a fastdif cache"


#: The first 16 bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"

#: How SQLite stores the CREATE statement of fastdif's ``meta`` table, which
#: every schema version has; a database with it and a ``thumbnails`` table is
#: fastdif's cache.
_META_SQL = _SCHEMA[0].replace("IF NOT EXISTS ", "")


#: SQLite keeps these beside a database, by name: its write-ahead log and
#: shared-memory index (WAL mode), and the rollback journal a new database
#: has while it switches to WAL. It reads, rewrites and deletes whatever has
#: these names, so a user's files there are checked first
#: (:func:`foreign_siblings`).
SIBLINGS = ("-wal", "-shm", "-journal")

#: The first 4 bytes of a write-ahead log (big- and little-endian checksums).
_WAL_MAGIC = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")

#: The first 8 bytes of a rollback journal; SQLite writes zeros there first.
_JOURNAL_MAGIC = (bytes.fromhex("d9d505f920a163d7"), bytes(8))

#: The version in a shared-memory index's header (native byte order).
_SHM_VERSION = 3007000


def _in_wal_mode(path: str) -> bool:
    """Whether ``path`` starts as an SQLite database in WAL mode (file format versions 2)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return head[:16] == _SQLITE_HEADER and head[18:20] == b"\x02\x02"


def foreign_siblings(path: str) -> list[str]:
    """The files beside the database ``path`` that SQLite would take as its own, but are not.

    SQLite opens ``path-wal``, ``path-shm`` and ``path-journal`` as its own
    (:data:`SIBLINGS`), rewrites and deletes them. One is SQLite's when it
    is empty (SQLite makes them so for a moment), or a regular file that
    begins as SQLite begins it: a write-ahead log or shared-memory index
    beside a database in WAL mode, a rollback journal. Anything else (a
    user's files that happen to have these names, a symbolic link, a
    folder) is listed, and must not be touched.

    Raises
    ------
    OSError
        A sibling cannot be examined (permission denied, I/O error).
    """
    wal_mode = None
    foreign = []
    for suffix in SIBLINGS:
        name = path + suffix
        try:
            st = os.lstat(name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISREG(st.st_mode):
            foreign.append(name)  # never opened: a named pipe would block
            continue
        if st.st_size == 0:
            continue
        with open(name, "rb") as f:
            head = f.read(8)
        if suffix == "-journal":
            ours = head in _JOURNAL_MAGIC
        else:
            if wal_mode is None:
                wal_mode = _in_wal_mode(path)
            if suffix == "-wal":
                ours = head[:4] in _WAL_MAGIC
            else:
                ours = int.from_bytes(head[:4], sys.byteorder) in (0, _SHM_VERSION)
            ours = ours and wal_mode
        if not ours:
            foreign.append(name)
    return foreign


def _not_siblings(path: str, foreign: list[str]) -> str:
    names = ", ".join(f'"{name}"' for name in foreign)
    return (
        f'files beside "{path}" that SQLite did not make for it: {names}; SQLite would '
        "overwrite or delete them"
    )


def cache_file_kind(path: str) -> CacheFile:
    """Tell by its content whether ``path`` is a fastdif cache file.

    Only :attr:`CacheFile.FASTDIF` files (an SQLite header, then fastdif's
    ``meta`` and ``thumbnails`` tables; the file may be corrupt further on)
    are ever removed or moved aside. A missing or empty file (an SQLite
    database without tables included) may be made into a cache; anything
    else (a photo, another program's database, a folder, a device) is left
    alone. Nothing is written; a database is read without locks unless that
    fails or a write-ahead log (``-wal`` file) is beside it.

    Raises
    ------
    OSError
        ``path`` cannot be examined (permission denied, I/O error).
    """
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return CacheFile.MISSING
    if not stat.S_ISREG(st.st_mode):
        return CacheFile.OTHER  # never opened: a named pipe would block
    if st.st_size == 0:
        return CacheFile.EMPTY
    with open(path, "rb") as f:
        if f.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
            return CacheFile.OTHER
    # The database file alone first (immutable: no locks, no -shm file made).
    tables = _tables(path, immutable=True)
    if tables is not None and _is_cache(tables):
        return CacheFile.FASTDIF
    if (tables is None or os.path.exists(path + "-wal")) and not foreign_siblings(path):
        # Being written, or its process was killed: the tables may still be
        # only in the write-ahead log, or the first page half written. Read
        # it properly, with locks (waiting for the writer); never with a
        # user's files beside it, which SQLite would take for its own.
        tables = _tables(path, immutable=False)
        if tables is not None and _is_cache(tables):
            return CacheFile.FASTDIF
    # A database without tables holds nothing, like an empty file (a cache
    # that another build is creating this moment looks like this).
    return CacheFile.EMPTY if tables == {} else CacheFile.OTHER


def _tables(path: str, immutable: bool) -> dict[str, str] | None:
    """``{name: CREATE statement}`` of the tables in the database ``path``; None on error."""
    uri = "file:" + urllib.parse.quote(os.fsencode(os.path.abspath(path))) + "?mode=ro"
    if immutable:
        uri += "&immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            return dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        finally:
            db.close()
    except sqlite3.Error:
        return None


def _is_cache(tables: dict[str, str]) -> bool:
    return tables.get("meta") == _META_SQL and "thumbnails" in tables


def _not_a_cache(path: str, kind: CacheFile) -> str:
    return f'"{path}" is {kind.value}, and fastdif removes or replaces only its own cache files'


def default_cache_path() -> str:
    """The default cache file: ``$XDG_CACHE_HOME/fastdif/thumbnails-v1.sqlite3``.

    Without ``XDG_CACHE_HOME`` the folder is ``~/.cache/fastdif``.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastdif", CACHE_FILE)


def resolve_cache(cache: object) -> str | None:
    """Turn the ``cache`` parameter of ``build`` into a cache file path or None.

    ``None`` or ``False``: no cache. ``True``: :func:`default_cache_path`. A
    string or ``os.PathLike``: that file, or ``CACHE_FILE`` inside it when it
    is an existing folder.

    Raises
    ------
    TypeError
        For any other type.
    ValueError
        An empty path, a file that is not a fastdif cache (a photo, another
        program's database: see :func:`cache_file_kind`), or one beside files
        SQLite did not make for it (:func:`foreign_siblings`); all are left
        untouched.
    """
    path = _cache_path(cache)
    if path is None:
        return None
    try:
        kind = cache_file_kind(path)
        foreign = foreign_siblings(path)
    except OSError:
        return path  # the build warns when it cannot open it
    if kind is CacheFile.OTHER:
        raise params.invalid(
            "cache", f"{_not_a_cache(path, kind)}; name another file, or use no cache."
        )
    if foreign:
        raise params.invalid(
            "cache",
            f"{_not_siblings(path, foreign)}; name another file, move them away, or use no cache.",
        )
    return path


def _cache_path(cache: object) -> str | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return default_cache_path()
    params.check_type(
        "cache", cache, (str, os.PathLike), "None, a BOOL, a STRING or os.PathLike", show_type=True
    )
    if not os.fspath(cache):
        raise params.invalid("cache", 'must name a file, got "".')
    path = os.path.abspath(os.fsdecode(cache))
    return os.path.join(path, CACHE_FILE) if os.path.isdir(path) else path


def clear_cache(path: str | os.PathLike) -> list[str]:
    """Delete the cache file ``path`` with its WAL and shared-memory files.

    Only a fastdif cache, recognised by its content (:func:`cache_file_kind`),
    is deleted, and only with SQLite's own files beside it
    (:func:`foreign_siblings`).

    Returns
    -------
    list of str
        The files removed (none when there was no cache).

    Raises
    ------
    ValueError
        ``path`` is empty, or is a file that is not a fastdif cache (an empty
        file included), or has files beside it that SQLite did not make;
        nothing is removed.
    OSError
        ``path`` cannot be examined or removed.
    """
    path = _cache_path(path)
    kind = CacheFile.MISSING if path is None else cache_file_kind(path)
    if kind is CacheFile.MISSING:
        return []
    if kind is not CacheFile.FASTDIF:
        raise ValueError(f"not clearing the cache: {_not_a_cache(path, kind)}")
    foreign = foreign_siblings(path)
    if foreign:
        raise ValueError(f"not clearing the cache: {_not_siblings(path, foreign)}")
    removed = []
    for name in (path, path + "-wal", path + "-shm"):
        try:
            os.remove(name)
        except FileNotFoundError:
            continue
        removed.append(name)
    return removed


def decoding_settings(px_size: int) -> str:
    """Everything besides the file that decides a thumbnail, as one key string."""
    return f"px={px_size};{thumbnail_definition()}"


@dataclass(frozen=True)
class FileThumbnail:
    """One file's decoding result with the size, mtime and inode it was decoded at.

    ``identity`` is the file's ``(st_dev, st_ino)``; ``(0, 0)`` when it
    could not be read.
    """

    decoded: Decoded
    size: int
    mtime_ns: int
    identity: tuple[int, int] = (0, 0)
    #: The thumbnail's near features (one record's bytes) when the cache held sound ones.
    features: bytes | None = None
    #: Else, when the cache stores them: what :meth:`CachedDecoder.store_features` takes
    #: with the features computed for this thumbnail.
    features_key: tuple[bytes, int] | None = None


class CachedDecoder:
    """Decode files, taking unchanged ones from the cache at ``cache_path``.

    With ``cache_path=None`` every file is decoded and nothing is stored.
    Files are decoded by ``decode(paths, progress)``, a backend's
    :meth:`~fastdif.backends.base.Decoder.decode` (an iterator of
    :class:`~fastdif.io.decode.Decoded` in ``paths`` order); ``progress``
    (no arguments) is called per file, cache hits included.
    After :meth:`decode` is exhausted, :attr:`stats` describes what the cache
    did (None without a cache):

    ``{"path", "hits", "decoded", "stored", "pruned", "warnings"}``, where
    ``hits`` counts files taken from the cache (failures included),
    ``decoded`` files decoded, ``stored`` rows written, ``pruned`` rows of
    deleted files removed and ``warnings`` lists every problem met (a corrupt
    cache moved aside, rows that failed their checksum, a locked database).

    ``features`` (a :class:`fastdif.model.NearRecords`, optional): keep each
    thumbnail's near features too. A hit with sound ones carries them
    (:attr:`FileThumbnail.features`); for the other thumbnails the cache
    computes none, but gives a :attr:`FileThumbnail.features_key`, and the
    caller hands back the features it computed (:meth:`store_features`).
    """

    def __init__(self, cache_path: str | None, px_size: int, decode, progress=None, features=None):
        self.cache_path = cache_path
        self.px_size = px_size
        self.progress = progress
        self._decode_files = decode
        self.settings = decoding_settings(px_size)
        self.features = features
        self.stats = None
        self._db = None
        self._pending: list[tuple] = []
        #: Whether the cache was still in use when :meth:`decode` ended (features may be stored).
        self._usable = False

    def decode(self, paths: list[str], roots: list[str] = ()):
        """Yield a :class:`FileThumbnail` for each of ``paths``, in order.

        ``roots`` are the folders searched: cache rows of files under them
        that no longer exist are pruned at the end.
        """
        real_folders: dict[str, str] = {}
        infos = [_file_info(path, real_folders) for path in paths]
        if self.cache_path is None:
            decoded = self._decode(paths)
            for (_, size, mtime_ns, identity), result in zip(infos, decoded, strict=True):
                yield FileThumbnail(result, size, mtime_ns, identity)
            return
        self.stats = {
            "path": self.cache_path,
            "hits": 0,
            "decoded": 0,
            "stored": 0,
            "pruned": 0,
            "warnings": [],
        }
        self._open()
        self._damaged = 0  # rows that fail their checksum, counted by _fetch
        try:
            hits = self._lookup(infos)
            is_hit = bytearray(len(paths))
            for i in hits:
                is_hit[i] = 1
            misses = [path for path, hit in zip(paths, is_hit, strict=True) if not hit]
            self.stats["hits"] = len(hits)
            self.stats["decoded"] = len(misses)
            decoded = self._decode(misses)
            cached = self._read(hits, paths, self._db)
            for i, (key, size, mtime_ns, identity) in enumerate(infos):
                features = features_key = None
                if is_hit[i]:
                    result, from_cache, features = next(cached)
                else:
                    result, from_cache = next(decoded), False
                if from_cache:
                    if self.progress:
                        self.progress()
                    if result.reason is not None:
                        reason = result.reason.replace(_PATH, paths[i])
                        result = Decoded(None, 0, 0, reason, result.failure)
                    elif features is None:
                        features_key = self._features_key(key, result.thumbnail)
                elif key is not None and _cacheable(result):
                    self._store(key, size, mtime_ns, result, paths[i])
                    features_key = self._features_key(key, result.thumbnail)
                yield FileThumbnail(result, size, mtime_ns, identity, features, features_key)
            # Run the decoder to its end, so a process pool shuts down cleanly.
            for _ in decoded:
                raise RuntimeError("the decoder returned more results than files")
            if self._damaged:
                self._warn(
                    f"cache {self.cache_path}: {self._damaged} damaged entries, "
                    "decoding those files again"
                )
            self._flush()
            self._prune(roots, {info[0] for info in infos})
        finally:
            self._flush()  # keep what was decoded when the build is interrupted
            self._usable = self._db is not None and self.features is not None
            self._close()

    def store_features(self, computed) -> None:
        """Store the near features the caller computed for thumbnails :meth:`decode` gave.

        ``computed`` yields ``(features_key, record)``: a thumbnail's
        :attr:`FileThumbnail.features_key` and its features (a
        :class:`fastdif.model.NearRecords` record). They are
        written :data:`WRITE_BATCH` at a time, after :meth:`decode` is
        exhausted, with nothing written (nothing opened) when there are none,
        or when the cache was not in use at the end of :meth:`decode`. A
        problem is a warning, as in :meth:`decode`, never an error.
        """
        if not self._usable:
            return
        computed = iter(computed)
        batch = self._features_rows(computed)
        if not batch:
            return
        self._open(create=False)
        try:
            while batch and self._db is not None and self._write(features=batch):
                batch = self._features_rows(computed)
        finally:
            self._close()

    def _decode(self, paths: list[str]):
        return self._decode_files(paths, self.progress)

    # ----------------------------------------------------------------- database

    def _open(self, create: bool = True) -> None:
        """Connect to the cache; with ``create=False``, only to a fastdif cache that is there."""
        try:
            # Checked again here: another program's database would be changed
            # by _connect (WAL mode, fastdif's tables), a photo moved aside.
            kind = cache_file_kind(self.cache_path)
            if kind is CacheFile.OTHER:
                self._warn(f"cache not used for this build: {_not_a_cache(self.cache_path, kind)}")
                return
            if kind is not CacheFile.FASTDIF and not create:
                return  # cleared since: its thumbnails are gone, so are their features
            foreign = foreign_siblings(self.cache_path)
            if foreign:
                self._warn(
                    f"cache not used for this build: {_not_siblings(self.cache_path, foreign)}"
                )
                return
            self._db = _connect(self.cache_path)
            version = self._db.execute(
                "SELECT value FROM meta WHERE name = 'schema_version'"
            ).fetchone()
            if version is not None and version[0] != str(SCHEMA_VERSION):
                self._db.close()
                self._db = None
                if not create:
                    return  # replaced since by another fastdif: it holds none of these
                self._replace(
                    f"cache {self.cache_path} has schema version {version[0]}, "
                    f"this fastdif uses {SCHEMA_VERSION}"
                )
        except (OSError, sqlite3.Error) as exc:  # OSError: its folder cannot be made
            self._failed(exc)

    def _replace(self, problem: str) -> None:
        """Move the cache file aside and start an empty one in its place.

        Raises ``sqlite3.DatabaseError`` (and moves nothing) when the file is
        not recognisably fastdif's cache.
        """
        kind = cache_file_kind(self.cache_path)
        if kind is not CacheFile.FASTDIF:
            raise sqlite3.DatabaseError(f"{problem}, and {_not_a_cache(self.cache_path, kind)}")
        foreign = foreign_siblings(self.cache_path)
        if foreign:
            raise sqlite3.DatabaseError(f"{problem}, and {_not_siblings(self.cache_path, foreign)}")
        aside = f"{self.cache_path}.bad-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}"
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(self.cache_path + suffix, aside + suffix)
            except FileNotFoundError:
                pass
        self._warn(f"{problem}; moved it to {aside} and started a new cache")
        self._db = _connect(self.cache_path)

    def _failed(self, exc: Exception) -> None:
        """Handle a database error: rebuild a corrupt cache, else stop using it."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None
        self._pending.clear()
        if _is_corrupt(exc):
            try:
                self._replace(f"cache {self.cache_path} is corrupt ({exc})")
                return
            except (OSError, sqlite3.Error) as again:
                exc = again
        self._warn(f"cache {self.cache_path} not used for the rest of this build: {exc}")

    def _warn(self, message: str) -> None:
        self.stats["warnings"].append(message)
        warnings.warn(message, CacheWarning, stacklevel=2)

    def _lookup(self, infos: list[tuple]) -> array:
        """Indices into ``infos`` of unchanged files with a cache row, ascending.

        No thumbnail is read here: :meth:`_read` reads them, batch by batch.
        """
        for _ in range(2):  # a second try on the new file after moving a corrupt one aside
            if self._db is None:
                break
            try:
                return self._select(infos)
            except sqlite3.Error as exc:
                self._failed(exc)
        return array("q")

    def _select(self, infos: list[tuple]) -> array:
        db = self._db
        db.execute("BEGIN")
        try:
            # Kept for the connection's life: _read joins it again, batch by batch.
            db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS wanted "
                "(i INTEGER PRIMARY KEY, path BLOB, size INTEGER, mtime_ns INTEGER)"
            )
            db.execute("DELETE FROM wanted")
            db.executemany(
                "INSERT INTO wanted VALUES (?, ?, ?, ?)",
                (
                    (i, os.fsencode(key), size, mtime)
                    for i, (key, size, mtime, _) in enumerate(infos)
                    if key
                ),
            )
            rows = db.execute(f"SELECT w.i {_HITS} ORDER BY w.i", (self.settings,))
            return array("q", (i for (i,) in rows))
        finally:
            db.execute("COMMIT")

    def _read(self, hits: array, paths: list[str], db: sqlite3.Connection):
        """Yield ``(result, from_cache, features)`` for each of ``hits``, in order.

        Rows are read :data:`READ_BATCH` at a time from ``db``, the connection
        :meth:`_lookup` used. A row that fails its checksum, or is gone (another
        build replaced it, or the cache failed since), is decoded again.
        """
        expected = self.px_size * self.px_size * 3
        for start in range(0, len(hits), READ_BATCH):
            batch = hits[start : start + READ_BATCH]
            found = self._fetch(db, batch, expected)
            again = [i for i in batch if i not in found]
            if again:
                self.stats["hits"] -= len(again)
                self.stats["decoded"] += len(again)
                redone = self._decode([paths[i] for i in again])
                found.update(
                    (i, (result, False, None)) for i, result in zip(again, redone, strict=True)
                )
            for i in batch:
                yield found.pop(i)

    def _fetch(self, db: sqlite3.Connection, batch: array, expected: int) -> dict:
        """``{index: (result, True, features)}`` of the sound rows of ``batch`` (ascending indices).

        ``features``: the row's sound near features (bytes), else None.
        """
        found = {}
        if self._db is not db:
            return found
        wanted = set(batch)
        definition = None if self.features is None else self.features.definition
        try:
            rows = db.execute(
                f"SELECT w.i, f.data, f.checksum, t.width, t.height, t.thumbnail, t.reason, "
                f"t.checksum {_HITS} LEFT JOIN features AS f ON f.path = t.path "
                "AND f.settings = t.settings AND f.definition = ? WHERE w.i BETWEEN ? AND ?",
                (self.settings, definition, batch[0], batch[-1]),
            )
            for i, data, data_checksum, *row in rows:
                if i not in wanted:
                    continue  # stored by another build since the lookup
                result = _checked(*row, expected)
                if result is None:
                    self._damaged += 1  # decoded again and overwritten
                else:
                    found[i] = (result, True, self._sound(result, definition, data, data_checksum))
        except sqlite3.Error as exc:
            self._failed(exc)
            found.clear()
        return found

    def _sound(self, result: Decoded, definition, data, checksum) -> bytes | None:
        """The stored features ``data`` if they are of ``definition`` and of this thumbnail."""
        if (
            definition is None
            or result.thumbnail is None
            or not isinstance(data, bytes)
            or len(data) != self.features.dtype.itemsize
            or _features_checksum(definition, result.thumbnail, data) != checksum
        ):
            return None
        return data

    def _features_key(self, key: str, thumbnail: bytes | None) -> tuple[bytes, int] | None:
        """:attr:`FileThumbnail.features_key` of ``thumbnail`` (file ``key``), if it is wanted.

        The row's key and the CRC-32 of the thumbnail under the definition
        (:func:`_features_checksum` continues it over the record), so the
        thumbnail is not kept until its features come.
        """
        if self._db is None or self.features is None or thumbnail is None:
            return None
        return os.fsencode(key), _thumbnail_crc(self.features.definition, thumbnail)

    def _features_rows(self, computed) -> list[tuple]:
        """The next :data:`WRITE_BATCH` rows of ``computed`` for the ``features`` table."""
        definition = self.features.definition
        rows = []
        for (key, crc), record in itertools.islice(computed, WRITE_BATCH):
            data = record.tobytes()
            rows.append((key, self.settings, definition, data, zlib.crc32(data, crc)))
        return rows

    def _store(self, key: str, size: int, mtime_ns: int, result: Decoded, path: str) -> None:
        if self._db is None:
            return
        reason = None if result.reason is None else result.reason.replace(path, _PATH)
        checksum = _checksum(result.width, result.height, result.thumbnail, reason)
        self._pending.append(
            (
                os.fsencode(key),
                self.settings,
                size,
                mtime_ns,
                result.width,
                result.height,
                result.thumbnail,
                # Bytes: a reason may quote a path that is not valid UTF-8.
                None if reason is None else reason.encode("utf-8", "surrogatepass"),
                checksum,
            )
        )
        if len(self._pending) >= WRITE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._db is None or not self._pending:
            return
        if self._write(thumbnails=self._pending):
            self.stats["stored"] += len(self._pending)
            self._pending.clear()

    def _write(self, thumbnails: list[tuple] = (), features: list[tuple] = ()) -> bool:
        """Write ``thumbnails`` and ``features`` rows in one transaction; False when it failed."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO thumbnails VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    thumbnails,
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?)", features
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return True
        except sqlite3.Error as exc:
            self._failed(exc)
            return False

    def _prune(self, roots: list[str], found: set) -> None:
        """Delete the rows of files under ``roots`` that no longer exist."""
        if self._db is None:
            return
        try:
            gone = set()
            for root in roots:
                if not os.path.isdir(root):
                    continue
                prefix = os.fsencode(os.path.join(os.path.realpath(root), ""))
                # Paths under ``prefix`` sort between it and the same bytes with
                # the separator's successor, so the primary key index serves the scan.
                upper = prefix[:-1] + bytes([prefix[-1] + 1])
                for (path,) in self._db.execute(
                    "SELECT DISTINCT path FROM thumbnails WHERE path >= ? AND path < ?",
                    (prefix, upper),
                ):
                    name = os.fsdecode(path)
                    if name not in found and not os.path.lexists(name):
                        gone.add(path)
            if gone:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.executemany(
                    "DELETE FROM thumbnails WHERE path = ?", [(p,) for p in sorted(gone)]
                )
                pruned = cursor.rowcount
                self._db.executemany(
                    "DELETE FROM features WHERE path = ?", [(p,) for p in sorted(gone)]
                )
                self._db.execute("COMMIT")
                self.stats["pruned"] += pruned
        except sqlite3.Error as exc:
            self._failed(exc)

    def _close(self) -> None:
        if self._db is not None:
            try:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None


def _connect(path: str) -> sqlite3.Connection:
    """Open (creating if needed) the cache database in WAL mode with its tables."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # Autocommit mode: every transaction below is opened explicitly, so a
    # writer takes its lock up front (BEGIN IMMEDIATE) and waits for others.
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        _set_wal_mode(db)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


def _set_wal_mode(db: sqlite3.Connection) -> None:
    """Switch to WAL mode, waiting while another process creates the same file.

    SQLite does not call its busy handler while two connections race to
    change the journal mode of a new database, so wait here instead.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _is_corrupt(exc: Exception) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _checked(width, height, thumbnail, reason, checksum, expected: int) -> Decoded | None:
    """The result stored in a row, or None when the row is damaged."""
    if thumbnail is None:
        if not isinstance(reason, bytes):
            return None
        try:
            reason = reason.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return None
    elif not (isinstance(thumbnail, bytes) and len(thumbnail) == expected and reason is None):
        return None
    if _checksum(width, height, thumbnail, reason) != checksum:
        return None
    # Only failures of the file's own bytes are stored.
    return Decoded(thumbnail, width, height, reason, None if reason is None else Failure.CONTENT)


def _checksum(width: int, height: int, thumbnail: bytes | None, reason: str | None) -> int:
    data = thumbnail if thumbnail is not None else (reason or "").encode("utf-8", "replace")
    return zlib.crc32(data, zlib.crc32(f"{width}x{height}".encode()))


def _features_checksum(definition: str, thumbnail: bytes, data: bytes) -> int:
    """CRC-32 of a features row: ties the record to its definition and its thumbnail."""
    return zlib.crc32(data, _thumbnail_crc(definition, thumbnail))


def _thumbnail_crc(definition: str, thumbnail: bytes) -> int:
    """The CRC-32 of a features row so far: over the definition and the thumbnail."""
    return zlib.crc32(thumbnail, zlib.crc32(definition.encode()))


def _cacheable(result: Decoded) -> bool:
    """Whether a result depends only on the file's bytes, so it can be reused.

    Thumbnails and content failures (not an image, truncated, corrupt) are
    cached; failures of other kinds (:class:`fastdif.io.decode.Failure`) may not
    happen again and are tried again next time.
    """
    return result.failure is None or result.failure.lasting


def _file_info(path: str, real_folders: dict[str, str]) -> tuple:
    """(resolved path, size, mtime_ns, (st_dev, st_ino)) of ``path``.

    ``(None, 0, 0, (0, 0))`` if it cannot be read.

    One ``lstat`` per file: folders are resolved once each (``real_folders``
    remembers them for one build), and only symbolic links need a full
    ``realpath`` and a second ``stat``.
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            st = os.stat(path)
            key = os.path.realpath(path)
        else:
            folder, name = os.path.split(os.path.abspath(path))
            real = real_folders.get(folder)
            if real is None:
                real = real_folders[folder] = os.path.realpath(folder)
            key = os.path.join(real, name)
    except OSError:
        return None, 0, 0, (0, 0)
    key = os.path.normcase(key)
    if key == path:
        key = path  # one string, not two, for each of a million resolved paths
    return key, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino)
