"""Decode files in a pool of ``spawn`` worker processes: the local backend's decoder.

The parent drives its own workers, one file at a time, so that it always
knows which file each worker holds: a worker that dies (killed, out of
memory, a crash in a C decoder) costs that file one retry in a fresh worker
and, if it dies again, only that file (:class:`fastdif.io.decode.Retries`);
a worker stuck on a file past the time limit is killed and the file
reported. On any exception in the parent (Ctrl-C included, and SIGTERM,
which the command line turns into one) every worker is killed and reaped
before it propagates. A worker whose parent died without doing so (SIGKILL)
exits quietly when it next reads or sends.

Workers only run Pillow, the two decoders and NumPy (they import neither Numba
nor the search code: ``fastdif/__init__.py`` imports its public names on first
use): each returns a compact uint8 thumbnail, and the parent writes it into one
contiguous float32 array.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
import threading
import time
import types
from collections import deque
from contextlib import contextmanager
from multiprocessing import resource_tracker
from multiprocessing.connection import wait

from ..io import decode
from ..io.decode import Decoded, Failure, Retries

#: Below this many files the pool's start-up costs more than it saves.
MIN_FILES_FOR_POOL = 32

#: Seconds a worker still busy past the time limit has before it is killed.
KILL_GRACE = 5.0

#: Seconds a worker process may take to start, and how many may fail to
#: start before decoding gives up.
START_TIME_LIMIT = 60.0
MAX_START_FAILURES = 3

#: Files are assigned at most this many places after the next result to
#: yield: while a worker is stuck on one file (up to the time limit), the
#: others' results wait in memory for it, and this bounds how many.
MAX_AHEAD = 4096

#: Freed memory, in bytes, a decoding worker keeps for its next file (glibc).
#: By default a buffer over 32 MiB (the pixels of a 12-megapixel photo: 36 MB)
#: is mapped from the system and unmapped when freed, and each file then
#: faults in and zeroes every page afresh: a 12 MP JPEG decodes 10% slower,
#: a PNG or WebP 17 to 33%. Workers only live for one build.
KEEP_FREED_MEMORY = 256 << 20

# glibc's mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The largest M_MMAP_THRESHOLD glibc accepted before 2.36 (on 64-bit systems).
_OLD_MMAP_THRESHOLD_MAX = 32 << 20


def decode_all(paths: list[str], px_size: int, processes: int, progress=None):
    """Decode ``paths`` in order, yielding one :class:`Decoded` per file.

    Uses ``processes`` ``spawn`` worker processes when ``processes > 1`` and
    there are at least :data:`MIN_FILES_FOR_POOL` files; ``progress`` (a
    callable taking no arguments) is called per file. Each file gets
    :data:`fastdif.io.decode.FILE_TIME_LIMIT` seconds.

    Raises
    ------
    RuntimeError
        When worker processes repeatedly fail to start.
    """
    limit = decode.FILE_TIME_LIMIT
    if processes == 1 or len(paths) < MIN_FILES_FOR_POOL:
        decoded_items = (decode.decode_file(path, px_size, limit) for path in paths)
    else:
        decoded_items = _decode_in_workers(paths, px_size, processes, limit)
    for decoded in decoded_items:
        yield decoded
        if progress:
            progress()


class _Worker:
    """One spawned decoding process and the file (index) it holds, if any."""

    def __init__(self, context, px_size: int, time_limit: float, decoder):
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, px_size, time_limit, decoder), daemon=True
        )
        with starting_workers():
            self.process.start()
        child.close()  # so that the worker's death reads as EOF here
        self.ready = False
        self.index: int | None = None
        self.started = 0.0

    def assign(self, index: int, path: str) -> bool:
        """Send one file; False if the worker is gone."""
        try:
            self.conn.send((index, path))
        except OSError:
            return False
        self.index = index
        self.started = time.monotonic()
        return True

    def stop(self, kill: bool) -> None:
        """End the process and reap it (no zombie, no orphan)."""
        if not kill and self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


@contextmanager
def starting_workers():
    """Start ``spawn`` workers in this block: the caller's script is not run again in
    them, and Ctrl-C is blocked in them until they ignore it (:func:`ignoring_interrupts`)."""
    # Starting multiprocessing's resource tracker unblocks SIGINT in this
    # process when it is done, so it must run before the block, not inside.
    resource_tracker.ensure_running()
    with _caller_script_hidden(), _sigint_blocked():
        yield


def ignoring_interrupts() -> None:
    """In a worker started by :func:`starting_workers`: Ctrl-C is the parent's.

    Ctrl-C reaches the whole process group; the parent alone decides, and
    stops its workers, so they do not print tracebacks of their own. The
    worker started with SIGINT blocked: ignore it, then drop the block.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _worker_main(conn, px_size: int, time_limit: float, decoder) -> None:
    ignoring_interrupts()
    _keep_freed_memory()
    if not _send(conn, None):  # started: from now on a death is blamed on the file held
        return
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if task is None:
            return
        index, path = task
        if not _send(conn, (index, decoder(path, px_size, time_limit))):
            return


def _keep_freed_memory() -> None:
    """Let this process reuse freed memory up to :data:`KEEP_FREED_MEMORY` (glibc only).

    Elsewhere (macOS, Windows, musl) nothing changes. Only workers do this:
    the caller's process keeps its allocator's defaults.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return
    if not mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_MEMORY):
        mallopt(_M_MMAP_THRESHOLD, _OLD_MMAP_THRESHOLD_MAX)
    mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_MEMORY)


def _send(conn, message) -> bool:
    """Send ``message`` to the parent; False, quietly, if the parent is gone.

    A parent killed (SIGKILL) or ended by a signal it does not handle leaves
    its workers a broken pipe: there is no one left to report to, and a
    traceback would only land on the user's terminal.
    """
    try:
        conn.send(message)
    except OSError:  # BrokenPipeError, ConnectionResetError
        return False
    return True


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _decode_in_workers(paths: list[str], px_size: int, processes: int, time_limit: float):
    context = multiprocessing.get_context("spawn")
    # Looked up at call time, so a substitute decoder reaches the workers.
    decoder = decode.decode_file
    hard_limit = time_limit + KILL_GRACE
    queue = deque(range(len(paths)))
    retries = Retries()
    done: dict[int, Decoded] = {}
    workers: list[_Worker] = []
    start_failures = 0
    next_out = 0

    def replace(worker: _Worker) -> None:
        worker.stop(kill=True)
        workers[workers.index(worker)] = _Worker(context, px_size, time_limit, decoder)

    try:
        for _ in range(min(processes, len(paths))):
            workers.append(_Worker(context, px_size, time_limit, decoder))
        while next_out < len(paths):
            for worker in list(workers):
                # A retry goes back to the left of the queue, and was within
                # the bound when first assigned: the file at next_out is always
                # in flight or assignable, so the bound cannot stall the pool.
                if worker.index is None and queue and queue[0] < next_out + MAX_AHEAD:
                    index = queue.popleft()
                    if not worker.assign(index, paths[index]):
                        queue.appendleft(index)
                        replace(worker)
            busy = [w for w in workers if w.index is not None]
            if not busy:
                continue
            deadlines = [w.started + (hard_limit if w.ready else START_TIME_LIMIT) for w in busy]
            timeout = max(0.0, min(deadlines) - time.monotonic())
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout)
            for worker in busy:
                died = False
                try:
                    while worker.index is not None and worker.conn.poll():
                        message = worker.conn.recv()
                        if message is None:
                            worker.ready = True
                            worker.started = time.monotonic()
                        else:
                            done[message[0]] = message[1]
                            worker.index = None
                except (EOFError, OSError):
                    died = True
                if worker.index is None:
                    continue
                died = died or not worker.process.is_alive()
                late = time.monotonic() - worker.started > (
                    hard_limit if worker.ready else START_TIME_LIMIT
                )
                if died or (late and not worker.ready):
                    if not died:
                        worker.process.kill()
                    worker.process.join()
                    index, how = worker.index, _exit_reason(worker.process.exitcode)
                    if not worker.ready:
                        # Died before starting: not the file's fault.
                        start_failures += 1
                        if start_failures > MAX_START_FAILURES:
                            raise RuntimeError(f"Decoding processes fail to start ({how}).")
                        queue.appendleft(index)
                    elif retries.again(index):
                        queue.appendleft(index)  # once more, in a fresh process
                    else:
                        done[index] = Decoded(
                            None,
                            0,
                            0,
                            f"Decoder process died on this file twice ({how})",
                            Failure.WORKER_DIED,
                        )
                    replace(worker)
                elif late:
                    done[worker.index] = decode.timed_out(time_limit)
                    replace(worker)
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
    finally:
        # After an exception (Ctrl-C, the caller closing this generator) there
        # is nothing to wait for: kill. Otherwise let idle workers exit.
        finished = next_out == len(paths)
        for worker in workers:
            worker.stop(kill=not finished)


@contextmanager
def _caller_script_hidden():
    """Start spawned workers without re-running the caller's script.

    A ``spawn`` worker normally re-imports the script that started Python, so
    a script without an ``if __name__ == "__main__":`` guard (as difPy users
    write them) would run again in every worker. The workers only need this
    module, so while a worker starts ``__main__`` is a bare module.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


@contextmanager
def _sigint_blocked():
    """Start a worker with Ctrl-C blocked from its first instruction.

    A terminal sends Ctrl-C to the whole process group: a worker still
    importing would die with a traceback of its own. A blocked signal stays
    blocked across fork and exec, until the worker ignores it for good
    (:func:`_worker_main`). In this process it is only held back, not lost:
    it is delivered when the block ends.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    # Another thread of this process may still take the signal; Python would
    # then raise KeyboardInterrupt here mid-start, leaving the worker half fed.
    # So the handler only records it, and it is raised once the worker started.
    received = []
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
    if received:
        raise KeyboardInterrupt
