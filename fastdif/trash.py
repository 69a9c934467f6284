"""The system's trash: which trash folder takes a file, and sending files there.

Sending is send2trash's work. On Linux and the BSDs fastdif calls its
freedesktop.org implementation (``send2trash.plat_other``, pure Python) even
where GIO is installed, so that the rule :meth:`SystemTrash.folder_for`
applies beforehand is the rule that runs. macOS and Windows have their own
trash, which send2trash reaches through the system.

Also here: the trash folders a folder walk does not enter (:func:`is_trash_folder`).
"""

from __future__ import annotations

import errno
import os
import stat
import sys

try:
    if sys.platform in ("darwin", "win32"):
        from send2trash import send2trash as _send

        _freedesktop = None
    else:
        from send2trash import plat_other as _freedesktop

        _send = _freedesktop.send2trash
except ImportError:  # fastdif depends on Send2Trash; a broken install gets no system trash
    _send = _freedesktop = None

#: The folder, in the search root, that ``delete(trash=True)`` moves files
#: into when no system trash takes them.
FASTDIF_TRASH = ".fastdif-trash"

#: Names of trash folders: fastdif's, freedesktop's ``.Trash`` (and
#: ``.Trash-<uid>``, below) at a volume's top, macOS's ``.Trashes``, Windows'
#: ``$RECYCLE.BIN``.
TRASH_NAMES = frozenset({FASTDIF_TRASH, ".Trash", ".Trashes", "$RECYCLE.BIN"})

_WRITABLE = os.W_OK | os.X_OK


def is_trash_folder(path: str) -> bool:
    """Whether the folder ``path`` is a trash folder, by its name or as the home trash.

    A folder walk skips these: a file thrown away there and found again
    could become a group's key, and the original be thrown away in turn.
    """
    name = os.path.basename(path)
    if name in TRASH_NAMES or (name.startswith(".Trash-") and name[7:].isdigit()):
        return True
    if name != "Trash":
        return False
    home = home_trash()
    return home is not None and _same_folder(path, home)


def home_trash() -> str | None:
    """The freedesktop home trash the environment names now, or None on macOS and Windows.

    ``$XDG_DATA_HOME/Trash`` when ``XDG_DATA_HOME`` is an absolute path,
    else ``~/.local/share/Trash`` (the XDG base directory rule).
    """
    if sys.platform in ("darwin", "win32"):
        return None
    data = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(data):
        data = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "Trash")


class SystemTrash:
    """The system's trash as one action sees it: which trash takes a file, sending it there.

    Whether a trash is usable is found once per trash and action.
    """

    def __init__(self):
        # {("home", home trash) or ("volume", its top): the trash folder if usable, else None}
        self._folders: dict[tuple[str, str], str | None] = {}

    def folder_for(self, path: str) -> str | None:
        """The trash that takes ``path`` now, or None when no system trash is usable for it.

        Linux and the BSDs (the freedesktop.org rule, as send2trash applies it):

        - the trash send2trash uses must be the home trash the environment
          names now (:func:`home_trash`; it reads ``XDG_DATA_HOME`` once, at
          import, so a program that changes it later gets None), and the
          file must be writable (send2trash refuses others);
        - a file on the home folder's device goes to the home trash: usable
          when its ``files`` and ``info`` folders exist and are writable, or
          can be created (the nearest existing folder above them is writable);
        - a file on another device goes to the trash at the top of its
          volume: ``.Trash/<uid>`` when ``.Trash`` is a real folder with the
          sticky bit, else ``.Trash-<uid>``, each usable under the same
          condition. A volume the user cannot write at its top has none.

        macOS and Windows: ``"Trash"`` and ``"Recycle Bin"`` whenever
        send2trash is installed; whether the system takes a file is known
        only when it is sent.

        Returns
        -------
        str or None
            The trash folder (Linux, BSD), the trash's name (macOS, Windows),
            or None.
        """
        if _send is None:
            return None
        if _freedesktop is None:
            return "Recycle Bin" if sys.platform == "win32" else "Trash"
        home = home_trash()
        used = getattr(_freedesktop, "HOMETRASH", None)
        if not isinstance(used, str) or os.path.normpath(used) != os.path.normpath(home):
            return None
        try:
            device = os.lstat(path).st_dev
            home_device = os.stat(os.path.realpath(os.path.expanduser("~"))).st_dev
        except OSError:
            return None
        if not os.access(path, os.W_OK):
            return None
        if device == home_device:
            place = ("home", home)
        else:
            top = os.path.realpath(path)
            while not os.path.ismount(top):
                top = os.path.dirname(top)
            try:
                if os.stat(top).st_dev != device:
                    return None  # a link to a file on another volume: send2trash refuses it
            except OSError:
                return None
            place = ("volume", top)
        if place not in self._folders:
            trash = home if place[0] == "home" else _volume_trash(place[1])
            usable = all(_can_write(os.path.join(trash, part)) for part in ("files", "info"))
            self._folders[place] = trash if usable else None
        return self._folders[place]

    def send(self, path: str) -> None:
        """Send ``path`` to the system's trash (send2trash).

        Raises
        ------
        OSError
            The system trash did not take it; then the file may still be in
            place (send2trash moves it in one step, or copies it across
            devices before removing it).
        """
        if _send is None:
            raise OSError(errno.ENOTSUP, "send2trash is not installed")
        _send(path)


def _volume_trash(top: str) -> str:
    """The freedesktop trash folder at ``top``, a volume's top, as send2trash picks it."""
    shared = os.path.join(top, ".Trash")
    try:
        mode = os.lstat(shared).st_mode
    except OSError:
        mode = 0
    if stat.S_ISDIR(mode) and mode & stat.S_ISVTX:
        own = os.path.join(shared, str(os.getuid()))
        if os.path.exists(own) or _can_write(own):  # send2trash's choice, usable or not
            return own
    return os.path.join(top, f".Trash-{os.getuid()}")


def _can_write(folder: str) -> bool:
    """Whether ``folder`` is a writable folder or can be made (its nearest existing parent is)."""
    while not os.path.lexists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    return os.path.isdir(folder) and os.access(folder, _WRITABLE)


def _same_folder(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
