"""Build from many real small files: time, throughput and memory, in memory and streamed.

    python -m benchmarks.scripts.streamed generate 200000 [--seed 0]
    python -m benchmarks.scripts.streamed measure 200000 [--mode memory|store|both] [--repeat K]

``generate`` writes ``n`` small image files
(:func:`benchmarks.data.small_files.small_files`) into the benchmark cache
folder as ``small-n{n}-seed{seed}/``. ``measure`` generates the set when it
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
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks.data.small_files import small_files

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
