"""The result of a search, in difPy's shapes, and what can be done with it."""

from __future__ import annotations

import contextlib
import os
import warnings

from . import params, verify
from .actions import ActionFailure, Reason, delete_files, move_files, place
from .model import Criteria, Repository
from .report import write_report
from .trash import FASTDIF_TRASH, SystemTrash


def difpy_result(paths, in_folder, groups):
    """difPy's ``result`` and ``lower_quality`` from groups of image numbers.

    Parameters
    ----------
    paths : sequence of str
        The path of each image number.
    in_folder : bool or str
        The repository's ``in_folder``: any true value keys the result by folder.
    groups : list of (folder, key, members, mses)
        Sorted by key; ``members`` are the other images of the group and
        ``mses`` their MSEs to the key.

    Returns
    -------
    result : dict
        ``{key_path: [[path, mse], ...]}``, or ``{folder: {key_path: ...}}``
        with ``in_folder`` True or "subfolders" (``folder``: the group's name).
    lower_quality : list of str
    duplicates, similar : int
        Members at MSE 0 and above 0.
    """
    result: dict = {}
    lower_quality: list[str] = []
    duplicates = similar = 0
    for folder, key, others, mses in groups:
        entries = [[paths[m], float(e)] for m, e in zip(others, mses, strict=True)]
        target = result.setdefault(folder, {}) if in_folder else result
        target[paths[key]] = entries
        lower_quality.extend(path for path, _ in entries)
        duplicates += sum(1 for e in mses if e == 0)
        similar += sum(1 for e in mses if e != 0)
    return result, lower_quality, duplicates, similar


class SearchResult:
    """Matches found by :func:`search`, in difPy's shapes.

    Attributes
    ----------
    result : dict
        ``{key_path: [[path, mse], ...]}``, or ``{folder: {key_path: [...]}}``
        with ``in_folder`` True or "subfolders"; ``mse`` is the MSE to the key
        (0..255 scale).
    lower_quality : list of str
        Every group member except the keys.
    stats : dict
        difPy's build and search statistics (JSON-serialisable).
    repository : Repository
        The repository searched, for the dimensions and file sizes that
        :meth:`report` shows.
    criteria : Criteria
        What the search matched by (threshold, rotations, dimensions).
    in_folder : bool
        Whether ``result`` is keyed by folder: True when the repository's
        ``in_folder`` is True or "subfolders" (its mode is
        ``repository.in_folder``).
    reference : Repository or None
        The library the search checked against (``search(...,
        reference=...)``); its images are keys only, and never moved or
        deleted.
    decisions : fastdif.io.decisions.Decisions or None
        The decisions the search applied (``search(..., decisions=...)``):
        the document read, and which groups shown are marked done; the
        report embeds them.
    """

    def __init__(
        self,
        result,
        lower_quality,
        stats,
        repository: Repository,
        criteria: Criteria,
        reference: Repository | None = None,
        decisions=None,
    ):
        self.result = result
        self.lower_quality = lower_quality
        self.stats = stats
        self.repository = repository
        self.criteria = criteria
        self.reference = reference
        self.decisions = decisions
        self.in_folder = bool(repository.in_folder)  # "subfolders" is true
        # Files move_to moved: {new path: (member path in result, identity after the move)}.
        self._moved: dict[str, tuple[str, verify.Identity]] = {}

    def report(
        self,
        path,
        thumbnail_size: int = 160,
        processes: int | None = None,
        show_progress: bool = False,
    ) -> str:
        """Write an HTML report of the groups to ``path``; see :func:`fastdif.report.write_report`.

        One self-contained file (thumbnails embedded, no network) to look at
        the groups and choose what to keep; it never changes a file itself.
        ``thumbnail_size`` is the longest thumbnail side in pixels,
        ``processes`` the CPU cores to use, as threads reading images (None: all).

        Returns
        -------
        str
            The path written.
        """
        return write_report(self, path, thumbnail_size, processes, show_progress)

    def move_to(self, destination) -> dict:
        """Move the ``lower_quality`` files into ``destination``.

        Just before each move, the file is checked against its group's key
        (see :mod:`fastdif.verify`): both must still be the files decoded at
        build (size, modification time, inode), two different files, and
        decoded again now they must still match within the search's
        threshold; the file must be none of the files kept (a library image,
        any group's key, by what the disk says now) and have no more frames
        or pages than its key. A file failing a check stays where it is and
        is reported in ``"failed"`` with the check named. This costs one
        decode per file moved (and one per key). The checks and the move run
        under this user's fastdif locks of the file and its key
        (:func:`fastdif.verify.acting_on`), so two runs at once never move or
        delete both copies of a picture; a file whose key is gone just after
        the move is put back (reported in ``"failed"``).

        An existing file is never overwritten: a numbered suffix is added.
        ``lower_quality`` is updated to the new paths. A manifest of the moves
        is written into ``destination``; :func:`fastdif.undo_move` reverses them.

        Returns
        -------
        dict
            ``{"moved": {source: destination}, "failed": {source: reason},
            "manifest": manifest_path or None}``. Each reason is a
            :class:`fastdif.actions.Reason`: the text, whose ``kind`` (an
            :class:`~fastdif.actions.ActionFailure`) says which check or
            step failed.
        """
        checks = _Checks(self, _key_of(self.result, self.in_folder))
        failed: dict[str, Reason] = {}

        def checked():
            # Consumed by move_files one path at a time: each check runs
            # right before that file's move, and the locks are held until
            # move_files asks for the next path, so over the move as well.
            for path in self.lower_quality:
                with checks.acting_on(path) as busy:
                    reason = busy or checks.refusal(path)
                    if reason is None:
                        yield path
                    else:
                        failed[path] = reason

        moved, move_failed, manifest = move_files(checked(), destination)
        failed.update(move_failed)
        checks.put_back_if_key_lost(moved, failed)
        for source, target in moved.items():
            # A later move_to checks the file where it is now, against the same key.
            origin = self._moved.pop(source, (source, None))[0]
            try:
                self._moved[target] = (origin, verify.Identity.of_stat(os.stat(target)))
            except OSError:
                continue
        self.lower_quality = [moved.get(path, path) for path in self.lower_quality]
        return {"moved": moved, "failed": failed, "manifest": manifest}

    def delete(self, silent_del: bool = False, dry_run: bool = False, trash: bool = False) -> dict:
        """Delete the ``lower_quality`` files (never a group's key), or move them to a trash.

        As in difPy, ``delete()`` removes the files for good. With ``trash``
        each goes to the system's trash instead (through send2trash) where
        one takes it: on Linux and the BSDs the home trash
        (``$XDG_DATA_HOME/Trash``, else ``~/.local/share/Trash``) for a file
        on the home folder's device, when its folders exist or can be
        created and are writable, and the trash at the top of the file's
        volume (``.Trash/<uid>`` or ``.Trash-<uid>``) for a file on another
        device, when the user can write there; see
        :meth:`fastdif.trash.SystemTrash.folder_for` for the whole rule. A file
        no system trash takes (or that it refuses when sent) is moved into
        the folder ``.fastdif-trash`` of its search root (the inputs' common
        folder; with ``in_folder``, its group's folder) as :meth:`move_to`
        moves files: never overwriting, with a manifest there that
        :func:`fastdif.undo_move` reverses. The command line trashes by
        default (``-d true``; ``--permanent`` deletes).

        Asks for confirmation on standard input unless ``silent_del``. Just
        before each file is deleted or trashed it is checked against its
        group's key (see :mod:`fastdif.verify`): both must still be the files
        decoded at build (size, modification time, inode), two different
        files, and decoded again now they must still match within the
        search's threshold (identical for "duplicates"); the file must be
        none of the files kept (a library image, any group's key, by what the
        disk says now, whatever path reached it) and have no more frames or
        pages than its key. A file failing a check is kept and reported in
        ``"failed"`` with the check named. This costs one decode per file
        deleted (and one per key). A library (``reference``) image is never
        deleted nor trashed. The checks and the act run under this user's
        fastdif locks of the file and its key
        (:func:`fastdif.verify.acting_on`): two runs at once (one keeping the
        newest copy, one the oldest) take turns, and never remove both. A
        key found gone just after its member was deleted or sent to a system
        trash raises a :class:`fastdif.verify.LostKeyWarning`; a member moved
        into ``.fastdif-trash`` is put back then. With ``dry_run``
        nothing is deleted or moved and nothing asked: ``"would_delete"``
        (``"would_trash"``) lists the files a real run would act on, after
        the same checks.

        Returns
        -------
        dict
            ``{"deleted": [paths], "failed": {path: reason}}``, plus
            ``"would_delete": [paths]`` with ``dry_run``. With ``trash``:
            ``{"trashed": {path: trash}, "moved": {path: new_path},
            "manifests": [paths], "failed": {path: reason}}``, where ``trash``
            is the system trash folder that took the file (on macOS and
            Windows the name "Trash" or "Recycle Bin") or the
            ``.fastdif-trash`` folder it was moved into, ``"moved"`` gives
            the new path of each file moved there and ``"manifests"`` the
            manifest of each ``.fastdif-trash`` folder used; plus
            ``"would_trash": {path: trash}`` with ``dry_run``. Answered "no" at
            the prompt, nothing is done and the dict also holds ``"cancelled": True``.
            Each reason in
            ``"failed"`` is a :class:`fastdif.actions.Reason`, as in :meth:`move_to`.
        """
        params.check_bool("silent_del", silent_del)
        params.check_bool("dry_run", dry_run)
        params.check_bool("trash", trash)
        keep = _key_of(self.result, self.in_folder)
        targets = [path for path in self.lower_quality if path in keep]
        if not dry_run and not silent_del and targets:
            verb, where = ("Move", " to the trash") if trash else ("Delete", "")
            try:
                answer = input(f"{verb} {len(targets)} lower quality files{where}? (y/n) ")
            except EOFError:
                answer = "n"
            if answer.strip().lower() not in ("y", "yes"):
                if trash:
                    return {
                        "trashed": {}, "moved": {}, "manifests": [], "failed": {}, "cancelled": True
                    }  # fmt: skip
                return {"deleted": [], "failed": {}, "cancelled": True}
        checks = _Checks(self, keep, dry_run)
        if trash:
            return self._trash(targets, checks, dry_run)
        deleted, failed = [], {}
        for path in targets:
            with checks.acting_on(path) as busy:
                reason = busy or checks.refusal(path)
                if reason is not None:
                    failed[path] = reason
                    continue
                done, not_done = delete_files([path], keep, dry_run=dry_run)
                if done and not dry_run:
                    checks.warn_if_key_lost(path, "deleted")
            deleted += done
            failed.update(not_done)
        if dry_run:
            return {"deleted": [], "failed": failed, "would_delete": deleted}
        gone = set(deleted)
        self.lower_quality = [path for path in self.lower_quality if path not in gone]
        return {"deleted": deleted, "failed": failed}

    def _trash(self, targets: list[str], checks: _Checks, dry_run: bool) -> dict:
        """``delete(trash=True)``: each file checked, then to a trash (system or fastdif's)."""
        system = SystemTrash()
        trashed: dict[str, str] = {}
        failed: dict[str, Reason] = {}
        moved: dict[str, str] = {}
        manifests: list[str] = []
        by_folder: dict[str, list[str]] = {}
        roots = self._trash_roots()
        for path in targets:
            by_folder.setdefault(_fallback_trash(roots.get(path, ""), path), []).append(path)

        def checked(paths, folder):
            # Consumed by move_files one path at a time: each check, and each
            # send to the system trash, happens right before that file's turn,
            # under the locks of the file and its key (see move_to).
            for path in paths:
                with checks.acting_on(path) as busy:
                    reason = busy or checks.refusal(path)
                    if reason is not None:
                        failed[path] = reason
                        continue
                    where = system.folder_for(path)
                    if dry_run:
                        trashed[path] = where or folder
                        continue
                    if where is not None:
                        try:
                            system.send(path)
                        except OSError as exc:
                            if not os.path.lexists(path):
                                failed[path] = Reason(
                                    ActionFailure.TRASH,
                                    f"the system trash failed: {exc.strerror or exc}",
                                )
                                continue
                            # Still in place: the system trash refused it.
                        else:
                            trashed[path] = where
                            checks.warn_if_key_lost(path, f"sent to the trash {where!r}")
                            continue
                    yield path

        for folder, paths in by_folder.items():
            pending = checked(paths, folder)
            if dry_run:
                list(pending)
                continue
            existed = os.path.isdir(folder)
            try:
                done, not_done, manifest = move_files(pending, folder)
            except OSError as exc:  # the folder cannot be made: nothing was moved
                why = Reason(
                    ActionFailure.TRASH,
                    f"no system trash takes it, and {folder!r} fails: {exc.strerror or exc}",
                )
                failed.update((path, why) for path in pending)
                continue
            failed.update(not_done)
            checks.put_back_if_key_lost(done, failed)
            moved.update(done)
            trashed.update((path, folder) for path in done)
            if manifest is not None:
                manifests.append(manifest)
            elif not existed:
                try:
                    os.rmdir(folder)  # made for nothing
                except OSError:
                    pass
        order = {path: n for n, path in enumerate(targets)}
        trashed = dict(sorted(trashed.items(), key=lambda item: order[item[0]]))
        if dry_run:
            empty = {"trashed": {}, "moved": {}, "manifests": []}
            return {**empty, "failed": failed, "would_trash": trashed}
        self.lower_quality = [path for path in self.lower_quality if path not in trashed]
        return {"trashed": trashed, "moved": moved, "manifests": manifests, "failed": failed}

    def _trash_roots(self) -> dict[str, str]:
        """``{member: search root}``: its group's folder with ``in_folder``, else the inputs'."""
        if self.in_folder:
            return {
                path: folder
                for folder, groups in self.result.items()
                for members in groups.values()
                for path, _ in members
            }
        root = self.repository.folders[0] if self.repository.folders else ""
        return dict.fromkeys(self.lower_quality, root)


class _Checks:
    """The checks of one action on a result's members (:mod:`fastdif.verify`).

    One per action: keys are decoded once for it, and the files it must keep
    (the library's and every key) are read from disk once.

    Parameters
    ----------
    se : SearchResult
    keys : dict
        :func:`_key_of` the result.
    dry_run : bool, default False
        Nothing will be acted on: no lock is taken.
    """

    def __init__(self, se: SearchResult, keys: dict[str, str], dry_run: bool = False):
        self._se = se
        self._keys = keys
        self._dry_run = dry_run
        self._records: dict[str, verify.Identity] = {}
        wanted = set(keys) | set(keys.values())
        library = () if se.reference is None else (se.reference,)
        for repository in (*library, se.repository):
            # Only a built repository recorded the files it decoded (from_arrays did not).
            if repository.thumbnail_version is None:
                continue
            for i, path in enumerate(repository.paths):
                if path in wanted:
                    self._records[path] = verify.Identity.recorded(
                        repository.file_sizes[i], repository.mtimes_ns[i], *repository.inodes[i]
                    )
        self._protected = set(se.reference.paths) if se.reference is not None else set()
        self._kept = verify.KeptFiles(self._protected, set(keys.values()))
        self._key_thumbnails: dict = {}

    def _origin(self, path: str) -> tuple[str, verify.Identity | None]:
        """The path in the result of the member at ``path`` (moved since or not), and its record."""
        return self._se._moved.get(path, (path, self._records.get(path)))

    def key(self, path: str) -> str | None:
        """The key of the member at ``path``; None if it is no member."""
        return self._keys.get(self._origin(path)[0])

    def acting_on(self, path: str):
        """:func:`fastdif.verify.acting_on` the member ``path`` and its key, as a reason or None."""
        if self._dry_run:
            return contextlib.nullcontext()
        return _reason_of(verify.acting_on(path, self.key(path)))

    def refusal(self, path: str) -> Reason | None:
        """None if the member at ``path`` may be acted on now, else why not."""
        origin, record = self._origin(path)
        key = self._keys.get(origin)
        if key is None:
            return Reason(ActionFailure.NOT_MEMBER, "not a member of a group in this result")
        if origin in self._protected:
            return Reason(
                ActionFailure.LIBRARY, "a reference (library) image is never moved or deleted"
            )
        found = verify.check_pair(
            key,
            path,
            self._records.get(key),
            record,
            self._se.criteria,
            self._se.repository.px_size,
            self._key_thumbnails,
            self._kept,
        )
        return _reason(found)

    def lost(self, path: str) -> str | None:
        """Why the key of ``path``, just acted on, is no longer the file its check found."""
        key = self.key(path)
        return verify.key_lost(key, self._records[key])

    def warn_if_key_lost(self, path: str, done: str) -> None:
        """Warn, loudly, when the key of ``path`` (just ``done``: deleted...) vanished meanwhile."""
        lost = self.lost(path)
        if lost is not None:
            warnings.warn(
                f"{path!r} was {done}, and {lost}: no other copy of it may remain",
                verify.LostKeyWarning,
                stacklevel=3,
            )

    def put_back_if_key_lost(self, moved: dict[str, str], failed: dict[str, Reason]) -> None:
        """Move back each file of ``moved`` (``{source: new path}``) whose key vanished.

        Such a file leaves ``moved`` for ``failed``, with the reason; one that
        cannot be put back stays moved, with a warning.
        """
        for source, target in list(moved.items()):
            with _reason_of(verify.acting_on(target, self.key(source))) as busy:
                lost = None if busy is not None else self.lost(source)
                if lost is None:
                    continue
                try:
                    place(target, source)
                except OSError as exc:
                    warnings.warn(
                        f"{source!r} was moved to {target!r}, and {lost}; it could not be put "
                        f"back ({exc.strerror or exc}): keep it",
                        verify.LostKeyWarning,
                        stacklevel=3,
                    )
                    continue
            del moved[source]
            failed[source] = Reason(ActionFailure.KEY_LOST, f"put back: {lost} while it was moved")


@contextlib.contextmanager
def _reason_of(locks):
    """``verify.acting_on`` yielding its refusal as a :class:`Reason` (None: the locks are held)."""
    with locks as refusal:
        yield _reason(refusal)


def _reason(refusal: verify.Refusal | None) -> Reason | None:
    """A refusal of :mod:`fastdif.verify` as a reason of a result's ``"failed"``; None for None."""
    return None if refusal is None else Reason(ActionFailure(refusal.check.value), str(refusal))


def _key_of(result, in_folder: bool) -> dict[str, str]:
    """``{member: key}`` for every member of every group of ``result``."""
    groups = (
        (g for folder in result.values() for g in folder.items()) if in_folder else result.items()
    )
    return {path: key for key, members in groups for path, _ in members}


def _fallback_trash(root: str, member: str) -> str:
    """The ``.fastdif-trash`` folder of ``member``: in ``root``, or beside a file given as root."""
    if not os.path.isdir(root):
        # A file given alone, or inputs with no common folder (two drives).
        root = os.path.dirname(os.path.abspath(root or member))
    return os.path.join(root, FASTDIF_TRASH)
