"""Decode image files into px x px x 3 thumbnails, in a process pool.

Every file is decoded at full resolution and reduced by one filter,
:func:`fastdif.resample.area_thumbnail`, so a thumbnail does not depend on
which decoder read the file: JPEG goes through libjpeg-turbo (simplejpeg) and
8-bit PNG through libspng (pyspng), both straight into NumPy and bit-for-bit
what Pillow decodes; everything else, and any file those two refuse, through
Pillow.

Workers only run Pillow, the two decoders and NumPy (no Numba kernel, though
importing the package loads Numba): each returns a compact uint8 thumbnail,
and the parent writes it into one contiguous float32 array.

The parent drives its own ``spawn`` workers, one file at a time, so that it
always knows which file each worker holds: a worker that dies (killed, out of
memory, a crash in a C decoder) costs that file one retry in a fresh worker
and, if it dies again, only that file; a worker stuck on a file past the time
limit is killed and the file reported. On any exception in the parent
(Ctrl-C included) every worker is killed and reaped before it propagates.
"""

from __future__ import annotations

import enum
import io
import multiprocessing
import signal
import struct
import sys
import threading
import time
import types
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import wait

import numpy as np
import PIL
import pyspng
import simplejpeg
from PIL import Image, UnidentifiedImageError

from .resample import area_thumbnail, orient

#: Version of the thumbnail definition: decoders, colour conversion, filter,
#: orientation. Stored with cached and saved thumbnails, so that thumbnails of
#: another definition are never mixed with these. 1 was JPEG draft decoding
#: with a bicubic resize; 2 is a full decode with the exact area filter.
THUMBNAIL_VERSION = 2


def thumbnail_definition() -> str:
    """The thumbnail version and the decoders' versions, as one key string."""
    return (
        f"thumbnail={THUMBNAIL_VERSION};pillow={PIL.__version__};"
        f"simplejpeg={simplejpeg.__version__};pyspng={pyspng.__version__}"
    )


#: Below this many files the pool's start-up costs more than it saves.
MIN_FILES_FOR_POOL = 32

#: Largest image accepted, in pixels (width x height as declared in the
#: file): Pillow's DecompressionBombError threshold, 2 x its default
#: ``MAX_IMAGE_PIXELS`` (about 179 megapixels). Pillow only warns between 1x
#: and 2x; those images (100 MP medium-format photos are real) are decoded.
#: Fixed here so that a caller setting ``Image.MAX_IMAGE_PIXELS = None`` does
#: not switch the check off, and so that spawned workers apply the same limit.
MAX_PIXELS = 2 * 89_478_485

#: Seconds one file may take to decode. In a worker process (and in the
#: calling process's main thread) a timer interrupts the decoder; a worker
#: that is still busy ``KILL_GRACE`` seconds later (stuck in C code) is killed.
FILE_TIME_LIMIT = 60.0
KILL_GRACE = 5.0

#: Seconds a worker process may take to start, and how many may fail to
#: start before decoding gives up.
START_TIME_LIMIT = 60.0
MAX_START_FAILURES = 3

_BACKGROUND = (255, 255, 255)


class Failure(enum.Enum):
    """Why a file has no thumbnail, set where the failure happens."""

    #: The file's bytes: not an image, truncated, corrupt. The same bytes fail again.
    CONTENT = "content"
    #: The operating system (an errno: permission denied, I/O error) or memory.
    SYSTEM = "system"
    #: The file took longer than :data:`FILE_TIME_LIMIT`.
    TIME_LIMIT = "time limit"
    #: The image declares more than :data:`MAX_PIXELS` pixels (a setting).
    SIZE_LIMIT = "size limit"
    #: The process decoding it died (a local worker twice, or a Dask worker).
    WORKER_DIED = "worker died"

    @property
    def lasting(self) -> bool:
        """Whether the failure depends only on the file's bytes, so it may be cached."""
        return self is Failure.CONTENT


@dataclass(frozen=True)
class Decoded:
    """What a worker returns for one file: a thumbnail, or the reason it failed and its kind."""

    thumbnail: bytes | None
    width: int
    height: int
    reason: str | None = None
    failure: Failure | None = None

    def __post_init__(self):
        if (self.reason is None) != (self.failure is None):
            raise ValueError("a failed Decoded needs both a reason and a failure kind")


class DecodeTimeout(Exception):
    """A file took longer than the time limit to decode."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, the same way for every file.

    Transparent pixels are composed over white; 16- and 32-bit integer images
    are scaled from 0..65535 to 0..255 (not clipped); float images are clipped
    to 0..255.
    """
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if mode == "RGB" and not has_alpha:
        return image
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode != "F":
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_thumbnail(path: str, px_size: int) -> tuple[np.ndarray, int, int]:
    """Decode one file into a (px_size, px_size, 3) uint8 thumbnail.

    The file is decoded at full resolution and reduced with
    :func:`~fastdif.resample.area_thumbnail`; then its EXIF orientation is
    applied, so the thumbnail is what a person sees, and the returned
    (width, height) are the displayed full-size dimensions. For animated or
    multi-page files the first frame is used.

    Raises
    ------
    Image.DecompressionBombError
        When the declared size exceeds :data:`MAX_PIXELS` (checked before any
        pixel is decoded).
    OSError, ValueError
        When the file cannot be read or decoded.
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        opened = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        # Pillow's message would name the BytesIO, not the file.
        raise UnidentifiedImageError(f"cannot identify image file {path!r}") from None
    with opened as image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise Image.DecompressionBombError(
                f"Image size ({width * height} pixels) exceeds limit of {MAX_PIXELS} pixels"
            )
        orientation = _orientation(image, data)
        pixels = _fast_decode(image, data)
        if pixels is None:
            pixels = np.asarray(to_rgb(image))
    thumb = area_thumbnail(pixels, px_size)
    if thumb.ndim == 2:
        thumb = np.repeat(thumb[:, :, None], 3, axis=2)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return orient(thumb, orientation), width, height


def _orientation(image: Image.Image, data: bytes) -> int:
    """The EXIF orientation (1 to 8) of an opened image, without decoding its pixels.

    Pillow finds a PNG's ``eXIf`` chunk after the image data only by decoding
    the whole image; here the chunk is looked up in ``data`` instead.
    """
    if image.format == "PNG" and "exif" not in image.info:
        exif = _png_chunk(data, b"eXIf")
        if exif is not None:
            image.info["exif"] = b"Exif\x00\x00" + exif.removeprefix(b"Exif\x00\x00")
        # The base class's method reads info and XMP, and never decodes.
        return Image.Image.getexif(image).get(0x0112, 1)
    return image.getexif().get(0x0112, 1)


def _png_chunk(data: bytes, kind: bytes) -> bytes | None:
    """The data of the first chunk of type ``kind`` in the PNG file ``data``, if any."""
    pos = 8  # after the signature
    while pos + 8 <= len(data):
        length, found = struct.unpack_from(">I4s", data, pos)
        if found == kind:
            return data[pos + 8 : pos + 8 + length]
        if found == b"IEND":
            break
        pos += length + 12  # length, type, data, CRC
    return None


def _fast_decode(image: Image.Image, data: bytes) -> np.ndarray | None:
    """Pixels of an opened 8-bit RGB or grey JPEG or PNG, from a faster decoder.

    The result equals Pillow's decode (the tests compare them): grey is
    returned as (height, width) and becomes grey RGB after filtering, as
    Pillow's conversion would make it. ``None`` means Pillow decodes the file:
    another format or mode, a transparent PNG, or a file the decoder refused
    (so that Pillow, not a faster decoder, decides whether a file is invalid).
    """
    size = (image.height, image.width)
    try:
        if image.format == "JPEG" and image.mode in ("RGB", "L"):
            colorspace = "RGB" if image.mode == "RGB" else "GRAY"
            pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace)
        elif image.format == "PNG" and image.mode in ("RGB", "L"):
            if "transparency" in image.info:
                return None
            pixels = pyspng.load(data)
        else:
            return None
    except (ValueError, RuntimeError):
        return None
    if pixels.dtype != np.uint8 or pixels.shape[:2] != size:
        return None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    expected = 3 if image.mode == "RGB" else 2
    return pixels if pixels.ndim == expected else None


def decode_file(path: str, px_size: int, time_limit: float | None = None) -> Decoded:
    """Worker entry: decode ``path``; any failure becomes a one-line reason.

    Parameters
    ----------
    path : str
    px_size : int
    time_limit : float, optional
        Seconds allowed; enforced by a timer signal when called in a main
        thread whose ``SIGALRM`` handler is unused (always so in a worker).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with _time_limit(time_limit):
                thumb, width, height = load_thumbnail(path, px_size)
        except DecodeTimeout:
            return _timed_out(time_limit)
        except Image.DecompressionBombError as exc:
            return Decoded(None, 0, 0, f"Decompression bomb refused: {exc}", Failure.SIZE_LIMIT)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported, the build goes on
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            system = isinstance(exc, MemoryError) or (
                isinstance(exc, OSError) and exc.errno is not None
            )
            kind = Failure.SYSTEM if system else Failure.CONTENT
            return Decoded(None, 0, 0, f"{type(exc).__name__}: {message}", kind)
    return Decoded(thumb.tobytes(), width, height)


def _timed_out(time_limit: float) -> Decoded:
    return Decoded(
        None, 0, 0, f"Timed out: decoding took more than {time_limit:g} s", Failure.TIME_LIMIT
    )


@contextmanager
def _time_limit(seconds: float | None):
    """Raise :class:`DecodeTimeout` in this thread after ``seconds``, where possible.

    Only the main thread receives signals, and a handler already installed
    for ``SIGALRM`` belongs to someone else: in both cases there is no limit
    here (a worker's parent still enforces one).
    """
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    )
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise DecodeTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def decode_all(paths: list[str], px_size: int, processes: int, progress=None):
    """Decode ``paths`` in order, yielding one :class:`Decoded` per file.

    Uses ``processes`` ``spawn`` worker processes when ``processes > 1`` and
    there are at least :data:`MIN_FILES_FOR_POOL` files; ``progress`` (a
    callable taking no arguments) is called per file. Each file gets
    :data:`FILE_TIME_LIMIT` seconds.

    Raises
    ------
    RuntimeError
        When worker processes repeatedly fail to start.
    """
    if processes == 1 or len(paths) < MIN_FILES_FOR_POOL:
        decoded_items = (decode_file(path, px_size, FILE_TIME_LIMIT) for path in paths)
    else:
        decoded_items = _decode_in_workers(paths, px_size, processes, FILE_TIME_LIMIT)
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
        # Starting multiprocessing's resource tracker unblocks SIGINT in this
        # process when it is done, so it must run before the block, not inside.
        resource_tracker.ensure_running()
        with _caller_script_hidden(), _sigint_blocked():
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


def _worker_main(conn, px_size: int, time_limit: float, decoder) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides, and
    # kills its workers, so they do not print tracebacks of their own. The
    # worker started with SIGINT blocked: ignore it, then drop the block.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    conn.send(None)  # started: from now on a death is blamed on the file held
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if task is None:
            return
        index, path = task
        conn.send((index, decoder(path, px_size, time_limit)))


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
    decoder = decode_file
    hard_limit = time_limit + KILL_GRACE
    queue = deque(range(len(paths)))
    attempts = [0] * len(paths)
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
                if worker.index is None and queue:
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
                    else:
                        attempts[index] += 1
                        if attempts[index] < 2:
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
                    done[worker.index] = _timed_out(time_limit)
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
