"""Build from many real small files: time, throughput and memory, in memory and streamed.

    python -m benchmarks.streamed generate 200000 [--seed 0]
    python -m benchmarks.streamed measure 200000 [--mode memory|store|both] [--repeat K]

``generate`` writes ``n`` small image files (:func:`small_files`) into the
benchmark cache folder (``$FASTDIF_BENCH_CACHE``, default
``~/.cache/fastdif-bench``) as ``small-n{n}-seed{seed}/``: sub-folders of at
most 1,000 files, 64 to 256 pixels a side (half of them one of a dozen
common sizes, the others any width and height), about 70 % JPEG
(quality 75 to 95) and 30 % PNG, photo-like scenes, noise, gradients,
stripes, checkers, bricks, star fields, text, shapes, a few flat and dark
pictures, and about 10 % near-duplicates of an earlier file (a JPEG
re-encode, a downscale or a rotation). ``measure`` generates the set when it
is missing.

``measure`` runs, in a fresh interpreter per run, ``fastdif.build`` of the
folder (mode ``memory``: the float32 thumbnails in RAM; mode ``store``: the
thumbnails streamed into a store folder on disk, the repository
memory-mapped from it), then a search at ``similarity="similar"``; the
kernels are loaded between the two so the search time is the search's own.
Each run prints one JSON line: files, build seconds and files/s, search
seconds and groups found, and per phase (``build``, ``search``) the peak
resident memory of the building process (``VmHWM``, reset between phases
through ``/proc/self/clear_refs``) and the peak of its anonymous memory
(``RssAnon``, sampled every 50 ms from this process): memory-mapped store
pages are page cache and count in the first only. ``workers_anon_peak`` is
the largest sum of the decoding workers' ``RssAnon``. In store mode the
store's size on disk is reported and the store is deleted after the run.
With ``--mode both`` the modes alternate (memory, store, memory, ...) and
each pair adds a line with the ratio of build times, store over memory,
since the machine is noisy. Files are read from the page cache after the
first run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw

from . import textures
from .make_dataset import photo
from .thumbnails import cache_folder

#: Files per sub-folder, and per generating task.
FOLDER_FILES = 1000

#: Share of files that are near-duplicates of an earlier one, and how far back
#: (in files) their original may lie.
NEAR_SHARE = 0.1
NEAR_WINDOW = 3000

#: Half the originals have one of these (width, height), 30 % of them turned
#: to portrait, as thumbnails, icons and avatars do; the others have any
#: width and height from 64 to 256.
COMMON_SIZES = (
    (64, 64),
    (96, 96),
    (128, 128),
    (150, 150),
    (200, 200),
    (256, 256),
    (160, 120),
    (256, 192),
    (240, 160),
    (192, 128),
    (256, 144),
    (160, 90),
)

NEAR_KINDS = ("reencode", "downscale", "rotate")

_TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


# --- content: each (rng, width, height) -> uint8 array (height, width, 3) ---------


def _colours(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, (count, 3)).astype(np.float32)


def _ramp(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """0..1 along a random direction, float32 (height, width, 1)."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))
    t -= t.min()
    return (t / max(float(t.max()), 1.0))[..., None]


def gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A linear blend of two colours in a random direction."""
    a, b = _colours(rng, 2)
    return np.clip(a + (b - a) * _ramp(rng, width, height), 0, 255).astype(np.uint8)


def stripes(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Hard or soft stripes of two colours, period 3 to 30 pixels, at a random angle."""
    a, b = _colours(rng, 2)
    phase = _ramp(rng, width, height) * np.float32(max(width, height) / rng.uniform(3, 30))
    wave = np.sin(phase * np.float32(2 * np.pi))
    mix = (wave > 0).astype(np.float32) if rng.random() < 0.5 else (wave + 1) / 2
    return np.clip(a + (b - a) * mix, 0, 255).astype(np.uint8)


def checker(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A checkerboard of two colours, cells of 3 to 32 pixels."""
    a, b = _colours(rng, 2).astype(np.uint8)
    cell = int(rng.integers(3, 33))
    y, x = np.mgrid[0:height, 0:width]
    return np.where((((x // cell) + (y // cell)) % 2 == 0)[..., None], a, b)


def noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A colour plus Gaussian noise (sigma 8 to 60), per pixel or in 2 x 2 cells, grey or colour."""
    base = rng.uniform(40, 215, 3).astype(np.float32)
    cell = int(rng.integers(1, 3))
    shape = (-(-height // cell), -(-width // cell), 3 if rng.random() < 0.5 else 1)
    grain = rng.standard_normal(shape, dtype=np.float32) * np.float32(rng.uniform(8, 60))
    grain = grain.repeat(cell, 0).repeat(cell, 1)[:height, :width]
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def shapes(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A flat background with 3 to 12 filled rectangles and ellipses (an icon, a chart)."""
    image = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 13))):
        x0, x1 = np.sort(rng.integers(0, width, 2))
        y0, y1 = np.sort(rng.integers(0, height, 2))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((int(x0), int(y0), int(x1), int(y1)), fill=fill)
    return np.asarray(image)


def plain(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One colour with a gentle vertical gradient and no noise (a flat graphic)."""
    colour = rng.uniform(20, 235, 3).astype(np.float32)
    ramp = np.linspace(-1, 1, height, dtype=np.float32)[:, None, None] * rng.uniform(0, 12)
    return np.clip(np.broadcast_to(colour + ramp, (height, width, 3)), 0, 255).astype(np.uint8)


def scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo-like picture (:func:`benchmarks.make_dataset.photo`)."""
    return np.asarray(photo(rng, (width, height)))


def smooth_scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo-like scene without texture or grain (a rendering, as PNGs often are)."""
    coarse = rng.integers(0, 256, (rng.integers(3, 7), rng.integers(3, 7), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


#: Content of JPEG files and of PNG files, with weights: PNGs are mostly
#: graphics (small files), JPEGs mostly photos and textures.
JPEG_CONTENT = {
    scene: 34,
    noise: 10,
    gradient: 6,
    stripes: 8,
    checker: 3,
    shapes: 4,
    textures.brick: 8,
    textures.stars: 5,
    textures.text: 3,
    textures.flat: 6,
    textures.dark: 12,
}
PNG_CONTENT = {
    shapes: 25,
    gradient: 12,
    stripes: 15,
    checker: 10,
    smooth_scene: 28,
    plain: 10,
}


def _pick(rng: np.random.Generator, weighted: dict):
    makers = list(weighted)
    weights = np.array([weighted[m] for m in makers], dtype=np.float64)
    return makers[rng.choice(len(makers), p=weights / weights.sum())]


# --- files ------------------------------------------------------------------------


def _plan(seed: int, index: int) -> tuple[int | None, str | None]:
    """``(original, kind)`` of file ``index``, or ``(None, None)`` for an original.

    A near-duplicate's original is an original (never another copy), found
    within :data:`NEAR_WINDOW` files before it.
    """
    rng = np.random.default_rng([seed, index, 0])
    if index == 0 or rng.random() >= NEAR_SHARE:
        return None, None
    source = index - 1 - int(rng.integers(min(index, NEAR_WINDOW)))
    while (parent := _plan(seed, source)[0]) is not None:
        source = parent
    return source, NEAR_KINDS[int(rng.integers(len(NEAR_KINDS)))]


def _layout(seed: int, index: int):
    """``(rng, width, height, jpeg, make)`` of original ``index``: its generator, what it drew."""
    rng = np.random.default_rng([seed, index, 1])
    if rng.random() < 0.5:
        width, height = COMMON_SIZES[int(rng.integers(len(COMMON_SIZES)))]
        if rng.random() < 0.3:
            width, height = height, width
    else:
        width = int(rng.integers(64, 257))
        height = width if rng.random() < 0.25 else int(rng.integers(64, 257))
    jpeg = bool(rng.random() < 0.7)
    return rng, width, height, jpeg, _pick(rng, JPEG_CONTENT if jpeg else PNG_CONTENT)


def _original(seed: int, index: int) -> tuple[bytes, str]:
    """The file bytes and extension of original ``index``."""
    rng, width, height, jpeg, make = _layout(seed, index)
    image = Image.fromarray(make(rng, width, height))
    buffer = io.BytesIO()
    if jpeg:
        image.save(buffer, "JPEG", quality=int(rng.integers(75, 96)))
    else:
        image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue(), ".jpg" if jpeg else ".png"


def _near_copy(seed: int, index: int, source: int, kind: str) -> tuple[bytes, str]:
    """The file bytes and extension of near-duplicate ``index`` of original ``source``."""
    rng = np.random.default_rng([seed, index, 1])
    data, ext = _original(seed, source)
    with Image.open(io.BytesIO(data)) as decoded:
        image = decoded.convert("RGB")
    if kind == "downscale":
        scale = rng.uniform(0.5, 0.9)
        size = (max(int(image.width * scale), 32), max(int(image.height * scale), 32))
        image = image.resize(size, Image.Resampling.LANCZOS)
    elif kind == "rotate":
        image = image.transpose(_TURNS[int(rng.integers(3))])
    else:
        ext = ".jpg"
    buffer = io.BytesIO()
    if ext == ".jpg":
        image.save(buffer, "JPEG", quality=int(rng.integers(75, 96)))
    else:
        image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue(), ext


def _relative(seed: int, index: int) -> str:
    """Path of file ``index`` inside the set's folder."""
    source, kind = _plan(seed, index)
    if source is None:
        ext = ".jpg" if _layout(seed, index)[3] else ".png"
    else:
        ext = ".jpg" if kind == "reencode" or _layout(seed, source)[3] else ".png"
    return f"d{index // FOLDER_FILES:04d}/f{index:07d}{ext}"


def _write_folder(args: tuple[str, int, int, int]) -> None:
    """Write files ``start`` .. ``stop - 1`` into their sub-folder of ``partial``.

    The sub-folder is written under a temporary name and renamed, so a
    resumed generation keeps only complete ones.
    """
    partial, start, stop, seed = args
    final = os.path.join(partial, os.path.dirname(_relative(seed, start)))
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for index in range(start, stop):
        source, kind = _plan(seed, index)
        if source is None:
            data, ext = _original(seed, index)
        else:
            data, ext = _near_copy(seed, index, source, kind)
        # describe() finds each file by _relative(): a mismatch fails there.
        with open(os.path.join(tmp, f"f{index:07d}{ext}"), "wb") as f:
            f.write(data)
    try:
        os.rename(tmp, final)
    except OSError:  # another generation finished this sub-folder first
        shutil.rmtree(tmp, ignore_errors=True)


def describe(folder: str, n: int, seed: int = 0) -> dict:
    """Counts of a set by content and format, its bytes, and its near-duplicates.

    Near-duplicates are ``{"original", "copy", "kind"}``, paths relative to
    ``folder``. Everything but the bytes is recomputed from ``(n, seed)``
    without drawing a picture.
    """
    content: dict[str, int] = {}
    formats: dict[str, int] = {}
    near = []
    total = 0
    for index in range(n):
        path = _relative(seed, index)
        total += os.stat(os.path.join(folder, path)).st_size
        ext = os.path.splitext(path)[1]
        formats[ext] = formats.get(ext, 0) + 1
        source, kind = _plan(seed, index)
        if source is None:
            name = _layout(seed, index)[4].__name__
        else:
            name = f"near-{kind}"
            near.append({"original": _relative(seed, source), "copy": path, "kind": kind})
        content[name] = content.get(name, 0) + 1
    return {
        "files": n,
        "seed": seed,
        "bytes": total,
        "formats": dict(sorted(formats.items())),
        "content": dict(sorted(content.items())),
        "near_duplicates": near,
    }


def set_name(n: int, seed: int = 0) -> str:
    """Folder name, in the cache folder, of the set of ``n`` small files."""
    return f"small-n{n}-seed{seed}"


def small_files(n: int, seed: int = 0, processes: int | None = None) -> str:
    """The folder of ``n`` small image files, generated (in parallel) if missing.

    File ``i`` depends only on ``(seed, i)``, so a set is the same on every
    machine and the first files of a larger set are those of a smaller one.
    Generation goes into ``<name>.partial``, renamed when complete: an
    interrupted generation is never taken for a finished one, and the next
    call resumes it (complete sub-folders are kept). ``<name>.json`` next to
    the folder records counts, bytes, the generation time and every
    near-duplicate as ``{"original", "copy", "kind"}`` (paths relative to
    the folder).

    Parameters
    ----------
    n : int
        Number of files.
    seed : int, default 0
    processes : int, optional
        Generating processes; None uses all cores.

    Returns
    -------
    str
        Absolute path of the folder.
    """
    folder = os.path.abspath(os.path.join(cache_folder(), set_name(n, seed)))
    if os.path.isdir(folder):
        return folder
    partial = folder + ".partial"
    os.makedirs(partial, exist_ok=True)
    started = time.perf_counter()
    jobs = [
        (partial, start, min(start + FOLDER_FILES, n), seed)
        for start in range(0, n, FOLDER_FILES)
        if not os.path.isdir(os.path.join(partial, f"d{start // FOLDER_FILES:04d}"))
    ]
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_write_folder, jobs))
    record = describe(partial, n, seed)
    record["generation_seconds"] = round(time.perf_counter() - started, 1)
    record["processes"] = processes or os.cpu_count()
    record["sub_folders_generated"] = len(jobs)  # fewer than all when resumed
    for entry in os.listdir(partial):  # sub-folders left by interrupted runs
        if ".tmp-" in entry:
            shutil.rmtree(os.path.join(partial, entry), ignore_errors=True)
    with open(folder + ".json", "w") as f:
        json.dump(record, f, indent=1)
    try:
        os.rename(partial, folder)
    except OSError:
        if not os.path.isdir(folder):
            raise
    return folder


# --- measurement ------------------------------------------------------------------

#: Run in a fresh interpreter: ``python -c CHILD FOLDER MODE STORE``. Prints
#: ``phase NAME`` lines as it goes (the parent's sampler attributes its
#: samples by them) and one ``result JSON`` line at the end.
CHILD = r"""
import json, os, sys, time

def status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields

def phase(name):
    print("phase", name, flush=True)
    time.sleep(0.2)  # the parent's sampler switches phase before the work starts

def reset_peak():  # VmHWM := VmRSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

def disk_bytes(top):
    total = 0
    for folder, _, names in os.walk(top):
        total += sum(os.lstat(os.path.join(folder, name)).st_blocks * 512 for name in names)
    return total

folder, mode, store = sys.argv[1:4]
import numpy as np
import fastdif
from fastdif.engine import warmup

report = {"after_import": status()}
keywords = {"store": store} if mode == "store" else {}
reset_peak()
phase("build")
start = time.perf_counter()
try:
    dif = fastdif.build(folder, show_progress=False, cache=None, **keywords)
except Exception as exc:
    report["error"] = f"{type(exc).__name__}: {exc}"
    print("result", json.dumps(report), flush=True)
    sys.exit(0)
report["build_seconds"] = time.perf_counter() - start
report["build"] = status()
report["files"] = len(dif)
report["invalid_files"] = dif.stats["invalid_files"]["count"]
report["tensors_dtype"] = str(dif.tensors.dtype)
report["tensors_bytes"] = int(dif.tensors.nbytes)
if mode == "store":
    report["store_disk_bytes"] = disk_bytes(store)
phase("warm")
start = time.perf_counter()
try:
    warmup.load_kernels(dif.tensors.dtype, warmup.SIMILAR_KERNELS, readonly=True)
except Exception as exc:  # as in the CLI: the search then compiles what it needs
    report["warm_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
report["warm_seconds"] = time.perf_counter() - start
report["before_search"] = status()
reset_peak()
phase("search")
start = time.perf_counter()
se = fastdif.search(dif, similarity="similar", show_progress=False)
report["search_seconds"] = time.perf_counter() - start
report["search"] = status()
report["groups"] = len(se.result)
report["grouped_files"] = len(se.result) + len(se.lower_quality)
phase("done")
print("result", json.dumps(report), flush=True)
"""

#: Seconds between samples of the building process's memory.
SAMPLE_INTERVAL = 0.05


def _anon(pid: int) -> tuple[int, int]:
    """``(RssAnon, RssFile)`` of a process in bytes; (0, 0) once it is gone."""
    anon = file = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith("RssFile:"):
                    file = int(line.split()[1]) * 1024
    except OSError:
        pass
    return anon, file


def _children(pid: int) -> list[int]:
    """Processes started by any thread of ``pid`` (its decoding workers)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return found


def run_once(folder: str, mode: str, store_parent: str | None = None, timeout=None) -> dict:
    """Build and search ``folder`` in a fresh interpreter; return its figures.

    ``mode`` is "memory" or "store" (a store in a new temporary folder under
    ``store_parent``, deleted afterwards). The result has ``error`` instead
    of timings when the build raised or the process failed.
    """
    tmp = tempfile.mkdtemp(prefix="fastdif-streamed-", dir=store_parent)
    store = os.path.join(tmp, "store")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, folder, mode, store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    current = ["start"]
    lines: list[str] = []
    errors: list[str] = []

    def read_stdout():
        for line in proc.stdout:
            if line.startswith("phase "):
                current[0] = line.split()[1]
            else:
                lines.append(line)

    def read_stderr():  # drained so a chatty child never blocks on a full pipe
        errors.extend(proc.stderr)

    readers = [threading.Thread(target=read_stdout), threading.Thread(target=read_stderr)]
    for reader in readers:
        reader.start()
    anon: dict[str, int] = {}
    file: dict[str, int] = {}
    workers: dict[str, int] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while proc.poll() is None:
            phase = current[0]
            a, f = _anon(proc.pid)
            w = sum(_anon(child)[0] for child in _children(proc.pid))
            anon[phase] = max(anon.get(phase, 0), a)
            file[phase] = max(file.get(phase, 0), f)
            workers[phase] = max(workers.get(phase, 0), w)
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
            time.sleep(SAMPLE_INTERVAL)
        proc.wait()
        for reader in readers:
            reader.join()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    results = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("result ")]
    if proc.returncode != 0 or not results:
        tail = "".join(errors)[-2000:]
        return {"mode": mode, "error": f"exit code {proc.returncode}", "stderr_tail": tail}
    child = results[-1]
    out = {"mode": mode}
    if "error" in child:
        out["error"] = child["error"]
        return out
    build_s, search_s = child["build_seconds"], child["search_seconds"]
    out.update(
        files=child["files"],
        invalid_files=child["invalid_files"],
        build_seconds=round(build_s, 2),
        files_per_second=round(child["files"] / build_s, 1),
        warm_seconds=round(child["warm_seconds"], 2),
        search_seconds=round(search_s, 2),
        groups=child["groups"],
        grouped_files=child["grouped_files"],
        warm_error=child.get("warm_error"),
        tensors_dtype=child["tensors_dtype"],
        tensors_mib=_mib(child["tensors_bytes"]),
        after_import_rss_mib=_mib(child["after_import"]["VmRSS"]),
        after_import_anon_mib=_mib(child["after_import"]["RssAnon"]),
        build_peak_rss_mib=_mib(child["build"]["VmHWM"]),
        build_peak_anon_mib=_mib(anon.get("build", 0)),
        build_peak_file_mib=_mib(file.get("build", 0)),
        build_workers_anon_peak_mib=_mib(workers.get("build", 0)),
        after_build_anon_mib=_mib(child["build"]["RssAnon"]),
        search_start_rss_mib=_mib(child["before_search"]["VmRSS"]),
        search_peak_rss_mib=_mib(child["search"]["VmHWM"]),
        search_peak_anon_mib=_mib(anon.get("search", 0)),
        search_peak_file_mib=_mib(file.get("search", 0)),
    )
    if mode == "store":
        out["store_disk_mib"] = _mib(child["store_disk_bytes"])
    return out


def _mib(n: int) -> float:
    return round(n / 2**20, 1)


def measure(n: int, modes: list[str], repeat: int = 1, seed: int = 0, store_parent=None):
    """Yield one figures dict per run, and per (memory, store) pair the build-time ratio.

    Modes alternate within each repetition, so both see the same machine load.
    """
    folder = small_files(n, seed)
    ratios = []
    for k in range(repeat):
        pair = {}
        for mode in modes:
            figures = run_once(folder, mode, store_parent)
            figures["repeat"] = k
            pair[mode] = figures
            yield figures
        seconds = [pair.get(m, {}).get("build_seconds") for m in ("store", "memory")]
        if None not in seconds:
            ratios.append(seconds[0] / seconds[1])
            yield {"repeat": k, "build_ratio_store_over_memory": round(ratios[-1], 3)}
    if len(ratios) > 1:
        yield {"build_ratio_store_over_memory_median": round(statistics.median(ratios), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write the set of N small files")
    generate.add_argument("n", type=int)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--processes", type=int, default=None)
    run = commands.add_parser("measure", help="build and search the set of N files")
    run.add_argument("n", type=int)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--mode", choices=("memory", "store", "both"), default="both")
    run.add_argument("--repeat", type=int, default=1)
    run.add_argument("--store-parent", default=None, help="where stores are made (default: TMPDIR)")
    args = parser.parse_args()
    if args.command == "generate":
        folder = small_files(args.n, args.seed, args.processes)
        with open(folder + ".json") as f:
            record = json.load(f)
        record.pop("near_duplicates")
        print(json.dumps({"folder": folder, **record}))
        return
    modes = ["memory", "store"] if args.mode == "both" else [args.mode]
    for line in measure(args.n, modes, args.repeat, args.seed, args.store_parent):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
