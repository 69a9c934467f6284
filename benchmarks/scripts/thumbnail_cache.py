"""End-to-end timings of the thumbnail cache with the command line.

    python -m benchmarks.scripts.thumbnail_cache DATASET WORK [--added 60] [--repeat 3]
                                                 [--processes 2]

DATASET is a folder made by ``python -m benchmarks.data.photos`` (left untouched);
its images are hard-linked into ``WORK/images``. Each step runs
``python -m fastdif WORK/images -p false -proc P --cache WORK/cache.sqlite3``
in a fresh process and is timed end to end (interpreter start to exit):

0. warm-up: one search on random thumbnails, as many as the dataset has
   images, so Numba's cache holds the kernels and no timed run pays the
   JIT compile;
1. cold: empty cache, every file decoded (and stored);
2. unchanged: the same folder again (median of ``--repeat`` runs);
3. added: ``--added`` new photo-like JPEGs (new content, made once in
   ``WORK/new``) copied into ``WORK/images/added``, then one run;
4. decode of the new files alone: ``fastdif.build`` of ``WORK/new`` with no
   cache and P processes (in-process time, pool start-up included); then
   the new files are removed and one more run prunes them from the cache.

Steps 2 to 4 repeat ``--repeat`` times, and the medians are reported.

Targets (issue 6): cold / unchanged >= 20, and added < 1.5 x unchanged +
decode of the new files. Prints a Markdown table and writes
``WORK/bench_cache.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks.data.photos import photo


def cli(images: str, work: str, processes: int, cached: bool = True) -> tuple[float, float]:
    """Run the CLI once on ``images``; return its wall and CPU time in seconds.

    CPU time (user + system, decoding workers included) hardly changes with
    the load other programs put on the machine, so it complements wall time.
    """
    out = os.path.join(work, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    command = [sys.executable, "-m", "fastdif", images, "-p", "false", "-proc", str(processes)]
    command += ["--cache", os.path.join(work, "cache.sqlite3")] if cached else ["--no-cache"]
    command += ["-Z", out]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode != 0:
        raise SystemExit(f"fastdif failed ({proc.returncode}):\n{proc.stderr}")
    print(f"  {seconds:7.2f} s ({cpu:6.2f} s CPU)  {proc.stdout.splitlines()[0]}", flush=True)
    return seconds, cpu


def decode_seconds(folder: str, processes: int) -> float:
    """In-process build time of ``folder`` without a cache, in a fresh interpreter."""
    code = (
        "import sys, fastdif; "
        f"d = fastdif.build({folder!r}, show_progress=False, processes={processes}); "
        "print(d.stats['process']['build']['duration']['seconds_elapsed'])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(proc.stdout.split()[-1])


def main(argv: list[str] | None = None) -> None:
    """Run the steps above and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("work")
    parser.add_argument("--added", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--baseline", action="store_true", help="also time one run with --no-cache first"
    )
    args = parser.parse_args(argv)

    work = os.path.abspath(args.work)
    images = os.path.join(work, "images")
    shutil.rmtree(images, ignore_errors=True)
    os.makedirs(images)
    count = 0
    for name in sorted(os.listdir(args.dataset)):
        if not name.endswith(".json"):
            os.link(os.path.join(args.dataset, name), os.path.join(images, name))
            count += 1
    new = os.path.join(work, "new")
    if not os.path.isdir(new) or len(os.listdir(new)) != args.added:
        shutil.rmtree(new, ignore_errors=True)
        os.makedirs(new)
        for i in range(args.added):
            rng = np.random.default_rng([987_654, i])
            photo(rng).save(os.path.join(new, f"new_{i:03d}.jpg"), quality=90)
    cache = os.path.join(work, "cache.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(cache + suffix):
            os.remove(cache + suffix)

    # Fill Numba's cache first, so that no timed run pays the JIT compile:
    # the CLI's default search on as many (random) thumbnails as the dataset.
    print("warm-up (compiles the search kernels)", flush=True)
    warm_up = (
        "import numpy as np, fastdif; "
        f"t = np.random.default_rng(0).uniform(0, 255, ({count}, 50, 50, 3)).astype(np.float32); "
        f"fastdif.search(fastdif.from_arrays(t), show_progress=False, processes={args.processes})"
    )
    subprocess.run([sys.executable, "-c", warm_up], check=True)
    baseline = None
    if args.baseline:
        print(f"{count} images in {images}; --no-cache run:", flush=True)
        baseline = cli(images, work, args.processes, cached=False)[0]
    print(f"{count} images in {images}; cold run:", flush=True)
    cold, cold_cpu = cli(images, work, args.processes)
    # Each round times an unchanged run, a run with the new files and the new
    # files decoded alone back to back, so a change in machine load between
    # rounds affects all three alike.
    unchanged_runs, added_runs, decode_runs, unchanged_cpu = [], [], [], []
    target = os.path.join(images, "added")
    for _ in range(args.repeat):
        print("unchanged:", flush=True)
        wall, cpu = cli(images, work, args.processes)
        unchanged_runs.append(wall)
        unchanged_cpu.append(cpu)
        os.makedirs(target)
        for name in sorted(os.listdir(new)):
            shutil.copyfile(os.path.join(new, name), os.path.join(target, name))
        print(f"{args.added} added:", flush=True)
        added_runs.append(cli(images, work, args.processes)[0])
        decode_runs.append(decode_seconds(new, args.processes))
        print(f"  {decode_runs[-1]:7.2f} s  decoding them alone", flush=True)
        shutil.rmtree(target)
        print("removed again (prunes the cache):", flush=True)
        cli(images, work, args.processes)
    unchanged = statistics.median(unchanged_runs)
    added = statistics.median(added_runs)
    decode_new = statistics.median(decode_runs)
    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT count(*) FROM thumbnails").fetchone()[0]
    cache_bytes = os.path.getsize(cache)
    figures = {
        "images": count,
        "processes": args.processes,
        "no_cache_s": None if baseline is None else round(baseline, 2),
        "cold_s": round(cold, 2),
        "cold_cpu_s": round(cold_cpu, 2),
        "unchanged_cpu_s": round(statistics.median(unchanged_cpu), 2),
        "unchanged_s": round(unchanged, 2),
        "unchanged_runs_s": [round(t, 2) for t in unchanged_runs],
        "added_runs_s": [round(t, 2) for t in added_runs],
        "decode_added_alone_runs_s": [round(t, 2) for t in decode_runs],
        "speedup": round(cold / unchanged, 1),
        "added_files": args.added,
        "added_s": round(added, 2),
        "decode_added_alone_s": round(decode_new, 2),
        "added_budget_s": round(1.5 * unchanged + decode_new, 2),
        "cache_rows": rows,
        "cache_bytes": cache_bytes,
        "cache_bytes_per_image": round(cache_bytes / max(rows, 1)),
    }
    with open(os.path.join(work, "bench_cache.json"), "w", encoding="utf-8") as out:
        json.dump(figures, out, indent=2)
    print(
        f"\n| step ({count} images, {args.processes} processes, CLI end to end) | seconds |\n"
        "|---|---|\n"
        + ("" if baseline is None else f"| run with --no-cache | {baseline:.2f} |\n")
        + f"| first run, empty cache | {cold:.2f} |\n"
        f"| re-run, unchanged folder | {unchanged:.2f} ({cold / unchanged:.0f}x faster) |\n"
        f"| re-run, {args.added} new files | {added:.2f} (budget 1.5 x {unchanged:.2f} + "
        f"{decode_new:.2f} decoding them alone = {1.5 * unchanged + decode_new:.2f}) |\n"
        f"| CPU time (all processes), first run vs unchanged | {cold_cpu:.2f} vs "
        f"{figures['unchanged_cpu_s']:.2f} ({cold_cpu / figures['unchanged_cpu_s']:.0f}x) |\n"
        f"| cache size | {cache_bytes / 1e6:.1f} MB, {cache_bytes / max(rows, 1):.0f} bytes "
        "per image |"
    )


if __name__ == "__main__":
    main()
