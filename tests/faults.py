"""Misbehaving decoders for fault tests, importable by spawned decode workers.

A test substitutes :func:`decode` for ``fastdif.io.decode.decode_file``; the pool
sends the substitute to its workers by name, so it must live in a module they
can import (this one: the tests folder is on ``sys.path``). What it does
depends on the file name's prefix; other files decode normally.
"""

import ctypes
import json
import os
import signal
import sys
import time

import numpy as np

from fastdif.io import decode as _decode


def decode(path, px_size, time_limit=None):
    """Decode ``path``, or misbehave as its name says.

    - ``exit*``: the process exits (a crash in a C decoder, an abort).
    - ``kill*``: the process is killed by SIGKILL (the out-of-memory killer).
    - ``once*``: dies the first time (a marker file ``<path>.died`` remembers),
      decodes on the retry.
    - ``hang*``: blocks the timer signal and sleeps, like a decoder stuck in C code.
    - ``slow*``: the real decoder, with a Pillow that takes 10 s (in Python,
      so the worker's own timer can interrupt it).
    - ``nap*``: leaves a marker ``<path>.started``, sleeps 0.3 s, then
      decodes (keeps a build busy for a while).
    """
    name = os.path.basename(path)
    if name.startswith("exit"):
        os._exit(3)
    if name.startswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if name.startswith("once") and not os.path.exists(path + ".died"):
        open(path + ".died", "w").close()
        os._exit(3)
    if name.startswith("hang"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(600)
    if name.startswith("nap"):
        open(path + ".started", "w").close()
        time.sleep(0.3)
    if name.startswith("slow"):
        real = _decode.load_thumbnail
        _decode.load_thumbnail = _slow_load
        try:
            return _decode.decode_file(path, px_size, time_limit)
        finally:
            _decode.load_thumbnail = real
    return _decode.decode_file(path, px_size, time_limit)


def _slow_load(path, px_size):
    time.sleep(10)
    raise AssertionError("the time limit should have stopped this")


def imported_modules(path, px_size, time_limit=None):
    """A decoder that decodes nothing: the modules imported in its process, sorted."""
    return sorted(sys.modules)


#: A buffer the size of a 13-megapixel photo's pixels (RGB).
LARGE_BUFFER = 40 << 20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def mallinfo2():
    """glibc's ``mallinfo2`` function (2.33 and later), or None."""
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = _Mallinfo2
    return function


def mapped_memory(path, px_size, time_limit=None):
    """A decoder that decodes nothing: bytes glibc holds in mapped blocks while
    this process holds :data:`LARGE_BUFFER` bytes of pixels (allocated twice,
    as two files in a row would be)."""
    for _ in range(2):
        pixels = np.empty(LARGE_BUFFER, np.uint8)
        pixels.fill(1)
        mapped = mallinfo2()().hblkhd
        del pixels
    return mapped


def cannot_start(conn, px_size, time_limit, decoder):
    """A worker main that fails before it reports ready (a broken install)."""
    os._exit(1)


def counting_decoder(monkeypatch) -> list:
    """The paths decoded in this process from now on (``processes=1``), in order."""
    seen = []
    real = _decode.decode_file

    def counted(path, px_size, time_limit=None):
        seen.append(path)
        return real(path, px_size, time_limit)

    monkeypatch.setattr(_decode, "decode_file", counted)
    return seen


def interrupted_decoding(monkeypatch, after: int):
    """Ctrl-C at the ``after``-th file decoded in this process (``processes=1``).

    Returns the function that undoes it: decoding as before.
    """
    real, seen = _decode.decode_file, []

    def stopping(path, px_size, time_limit=None):
        seen.append(path)
        if len(seen) == after:
            raise KeyboardInterrupt
        return real(path, px_size, time_limit)

    monkeypatch.setattr(_decode, "decode_file", stopping)
    return lambda: monkeypatch.setattr(_decode, "decode_file", real)


def other_filesystem(tmp_path):
    """A writable folder on another file system than ``tmp_path``, or None."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        if os.stat(shm).st_dev != os.stat(tmp_path).st_dev:
            return shm
    return None


def without_inodes(folder) -> None:
    """Make the saved repository ``folder`` one saved before inodes were recorded."""
    meta_file = os.path.join(folder, "repository.json")
    with open(meta_file, encoding="utf-8") as f:
        meta = json.load(f)
    del meta["arrays"]["inodes"]
    os.remove(os.path.join(folder, "inodes.npy"))
    with open(meta_file, "w", encoding="utf-8") as out:
        json.dump(meta, out)
