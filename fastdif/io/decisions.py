"""The decision file: groups a person marked "not a duplicate" or "done". Its one owner.

Format (version 1), UTF-8 JSON::

    {
      "format": "fastdif-decisions",
      "version": 1,
      "distinct": [{"files": [{"sha256": "<64 hex digits>", "path": "..."}, ...]}, ...],
      "done": [{"files": [...]}, ...]
    }

Each file is named by the SHA-256 of its bytes (lowercase hex) and the path
it had when it was marked. Only the hash identifies it, so an entry follows a
file through renames and moves; the path is there for people to read. A
``distinct`` entry (two files or more) says that every two of its files are
not duplicates of each other; a ``done`` entry holds the images of one group
a person has finished with. Other keys, at the top or in an entry, are kept
as they are and ignored. A file of a higher ``version`` is refused, never
read in part.

Two byte-identical files have one hash and cannot be told apart: a
``distinct`` entry that holds two files of one hash marks that content
distinct from itself, so no two files with those bytes are ever put in one
group (each may still be grouped with other files).

Hashes are computed only for the images of groups (see :class:`Decisions`
and :func:`fastdif.report.report_data`), never for every file searched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings

from .. import params
from .files import open_regular, write_atomic

FORMAT = "fastdif-decisions"
VERSION = 1
#: The kinds of entry, each a list in the document.
KINDS = ("distinct", "done")
_HASH = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


def empty() -> dict:
    """A decision document with no entry."""
    return {"format": FORMAT, "version": VERSION, "distinct": [], "done": []}


def content_hash(path: str) -> str | None:
    """The SHA-256 of the bytes of the file at ``path`` (a link: of its target), or None
    when it cannot be read or is not a regular file."""
    digest = hashlib.sha256()
    try:
        with open_regular(path) as f:  # a named pipe in its place: None, at once
            while chunk := f.read(_CHUNK):  # in chunks: any size in bounded memory
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def validate(document, where: str = "decisions") -> dict:
    """Return ``document`` if it is a valid decision document, else raise ``ValueError``.

    ``where`` names it in the message (a file's path). The message says what is wrong
    and where: ``distinct[2].files[0].sha256 must be 64 lowercase hex digits``.
    """

    def bad(problem):
        return ValueError(f'Invalid decisions file "{where}": {problem}')

    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise bad(f'not a fastdif decisions file ("format" must be "{FORMAT}", got {found!r})')
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise bad(f'"version" must be a whole number from 1, got {version!r}')
    if version > VERSION:
        raise bad(
            f"written by a newer fastdif (version {version}); this one reads version "
            f"{VERSION}: upgrade fastdif"
        )
    for kind in KINDS:
        entries = document.get(kind)
        if not isinstance(entries, list):
            raise bad(f'"{kind}" must be a list, got {entries!r}')
        least = 2 if kind == "distinct" else 1
        for n, entry in enumerate(entries):
            files = entry.get("files") if isinstance(entry, dict) else None
            if not isinstance(files, list) or len(files) < least:
                raise bad(f"{kind}[{n}] must be an object whose files list has {least} or more")
            for m, file in enumerate(files):
                name = f"{kind}[{n}].files[{m}]"
                if not isinstance(file, dict):
                    raise bad(f"{name} must be an object, got {file!r}")
                if not isinstance(file.get("sha256"), str) or not _HASH.fullmatch(file["sha256"]):
                    raise bad(f"{name}.sha256 must be 64 lowercase hex digits")
                if not isinstance(file.get("path"), str):
                    raise bad(f"{name}.path must be a string")
    return document


def read(path) -> dict:
    """Read and check the decision file at ``path``; no file there yet: no decisions.

    A first run has no decisions: the HTML report downloads the file to keep
    at ``path`` for the next run. So a missing file reads as :func:`empty`,
    with a UserWarning that names it (a misspelt path drops every decision).

    Raises
    ------
    TypeError
        ``path`` is not a path.
    FileNotFoundError
        ``path`` is a folder, or in a folder that does not exist.
    ValueError
        Not a decision file of a version this fastdif reads; the message says why.
    """
    params.check_type("decisions", path, (str, os.PathLike), "a path or a decision document")
    path = os.fspath(path)
    if not os.path.lexists(path) and os.path.isdir(os.path.dirname(path) or "."):
        warnings.warn(params.missing_decisions(path), UserWarning, stacklevel=2)
        return empty()
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Decisions file "{path}" is not a file, or its folder is missing')
    try:
        with open_regular(path) as f:
            document = json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f'Invalid decisions file "{path}": not UTF-8 text') from None
    except ValueError as exc:
        raise ValueError(f'Invalid decisions file "{path}": not JSON ({exc})') from None
    return validate(document, path)


def write(path, document) -> str:
    """Write ``document`` to ``path`` atomically; return the path.

    The text goes to a new hidden file beside ``path``, flushed to disk, then
    replaces ``path`` in one step: a reader sees the old file or the new one.
    Only a decision file of this version or an older one is ever replaced.

    Raises
    ------
    ValueError
        ``document`` is not a valid decision document.
    FileExistsError
        Something that is not such a decision file is at ``path`` (checked
        before writing and again just before the replace); it is left untouched.
    """
    path = os.fspath(path)
    validate(document, "document to write")
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    # Lone surrogates (bytes of non-UTF-8 names) become their JSON escape.
    data = text.encode("utf-8", "backslashreplace")
    _check_replaceable(path)
    return write_atomic(
        path, lambda out: out.write(data), replace=True, ready=lambda _: _check_replaceable(path)
    )


def _check_replaceable(path: str) -> None:
    if not os.path.lexists(path):
        return
    try:
        read(path)
    except (OSError, ValueError):
        raise FileExistsError(
            f'"{path}" exists and is not a fastdif decisions file of version {VERSION} or '
            "older; not replacing it"
        ) from None


def files(paths) -> list[dict]:
    """``[{"sha256", "path"}, ...]`` of ``paths``, for an entry.

    Raises
    ------
    OSError
        A file cannot be read.
    """
    out = []
    for path in paths:
        path = os.fspath(path)
        digest = content_hash(path)
        if digest is None:
            raise OSError(f'cannot read "{path}" to identify it')
        out.append({"sha256": digest, "path": os.path.abspath(path)})
    return out


def mark(document, kind: str, paths) -> dict:
    """A copy of ``document`` with one more ``kind`` entry ("distinct" or "done") of ``paths``."""
    params.check_choice("kind", kind, KINDS)
    out = dict(validate(document))
    out[kind] = [*out[kind], {"files": files(paths)}]
    return validate(out)


class Decisions:
    """A decision document applied to files, each file hashed at most once.

    ``distinct`` and :meth:`label` give the engine plain numbers
    (:func:`fastdif.engine.grouping.drop_distinct`); :meth:`is_done` says
    whether a group is hidden. Counters for the search's stats are kept here.

    Parameters
    ----------
    document : dict
        A valid decision document.
    source : str or None
        The file it was read from.
    """

    def __init__(self, document: dict, source: str | None = None):
        self.document = document
        self.source = source
        self._hashes: dict[str, str | None] = {}
        numbers: dict[str, int] = {}
        #: Identity number -> {number of a distinct entry holding it: how many of that
        #: entry's files have it}. By entry, not by pair: an entry of k files would be
        #: k * (k - 1) / 2 pairs, 32 million for 8,000 files.
        self.distinct: dict[int, dict[int, int]] = {}
        for n, entry in enumerate(document["distinct"]):
            for file in entry["files"]:
                x = numbers.setdefault(file["sha256"], len(numbers))
                held = self.distinct.setdefault(x, {})
                held[n] = held.get(n, 0) + 1
        self._numbers = numbers
        self._done = [frozenset(f["sha256"] for f in entry["files"]) for entry in document["done"]]
        self.pairs_dropped = 0
        self.groups_hidden = 0
        #: Paths of the keys of done groups kept in the result (``show_done``).
        self.done_keys: list[str] = []

    @classmethod
    def of(cls, decisions) -> Decisions:
        """From a path (:func:`read`) or a document (:func:`validate`)."""
        if isinstance(decisions, dict):
            return cls(validate(decisions))
        return cls(read(decisions), os.path.abspath(os.fspath(decisions)))

    def hash_of(self, path: str) -> str | None:
        """:func:`content_hash` of ``path``, read once."""
        if path not in self._hashes:
            self._hashes[path] = content_hash(path)
        return self._hashes[path]

    def label(self, path: str) -> int:
        """The identity number of the file at ``path`` in ``distinct``, or -1 (none)."""
        return self._numbers.get(self.hash_of(path), -1)

    def is_done(self, paths) -> bool:
        """Whether one ``done`` entry holds the hash of every file of ``paths`` (a group)."""
        if not self._done:
            return False
        hashes = {self.hash_of(path) for path in paths}
        return None not in hashes and any(hashes <= done for done in self._done)

    def stats(self, show_done: bool) -> dict:
        """What the decisions did, for ``stats["process"]["search"]["decisions"]``."""
        return {
            "file": self.source,
            "distinct_entries": len(self.document["distinct"]),
            "done_entries": len(self.document["done"]),
            "files_hashed": len(self._hashes),
            "files_unreadable": sum(h is None for h in self._hashes.values()),
            "pairs_dropped": self.pairs_dropped,
            "groups_hidden": self.groups_hidden,
            "show_done": show_done,
            "done_groups_shown": len(self.done_keys),
        }
