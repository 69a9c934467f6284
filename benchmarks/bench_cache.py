"""End-to-end timings of the thumbnail cache with the command line.

    python -m benchmarks.bench_cache DATASET WORK [--added 60] [--repeat 3] [--processes 2]

DATASET is a folder made by ``benchmarks.make_dataset`` (left untouched);
its images are hard-linked into ``WORK/images``. Each step runs
``python -m fastdif WORK/images -p false -proc P --cache WORK/cache.sqlite3``
in a fresh process and is timed end to end (interpreter start to exit):

1. cold: empty cache, every file decoded (and stored);
2. unchanged: the same folder again (median of ``--repeat`` runs);
3. added: ``--added`` new photo-like JPEGs (new content, made once in
   ``WORK/new``) copied into ``WORK/images/added``, then one run; the files
   are removed again and the cache pruned by the next run, ``--repeat`` times;
4. decode of the new files alone: ``fastdif.build`` of ``WORK/new`` with no
   cache and P processes (in-process time, pool start-up included).

Targets (issue 6): cold / unchanged >= 20, and added < 1.5 x unchanged +
decode of the new files. Prints a Markdown table and writes
``WORK/bench_cache.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

import numpy as np

from .make_dataset import photo


def cli(images: str, work: str, processes: int) -> float:
    """Run the CLI once on ``images``; return its wall time in seconds."""
    out = os.path.join(work, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    command = [sys.executable, "-m", "fastdif", images, "-p", "false", "-proc", str(processes)]
    command += ["--cache", os.path.join(work, "cache.sqlite3"), "-Z", out]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"fastdif failed ({proc.returncode}):\n{proc.stderr}")
    print(f"  {seconds:7.2f} s  {proc.stdout.splitlines()[0]}", flush=True)
    return seconds


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

    print(f"{count} images in {images}; cold run:", flush=True)
    cold = cli(images, work, args.processes)
    print("unchanged:", flush=True)
    unchanged = statistics.median(cli(images, work, args.processes) for _ in range(args.repeat))
    added_runs = []
    for _ in range(args.repeat):
        print(f"{args.added} added:", flush=True)
        target = os.path.join(images, "added")
        os.makedirs(target)
        for name in sorted(os.listdir(new)):
            shutil.copyfile(os.path.join(new, name), os.path.join(target, name))
        added_runs.append(cli(images, work, args.processes))
        shutil.rmtree(target)
        print("  removed again:", flush=True)
        cli(images, work, args.processes)
    added = statistics.median(added_runs)
    decode_new = statistics.median(decode_seconds(new, args.processes) for _ in range(args.repeat))
    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT count(*) FROM thumbnails").fetchone()[0]
    cache_bytes = os.path.getsize(cache)
    figures = {
        "images": count,
        "processes": args.processes,
        "cold_s": round(cold, 2),
        "unchanged_s": round(unchanged, 2),
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
        f"| first run, empty cache | {cold:.2f} |\n"
        f"| re-run, unchanged folder | {unchanged:.2f} ({cold / unchanged:.0f}x faster) |\n"
        f"| re-run, {args.added} new files | {added:.2f} (budget 1.5 x {unchanged:.2f} + "
        f"{decode_new:.2f} decoding them alone = {1.5 * unchanged + decode_new:.2f}) |\n"
        f"| cache size | {cache_bytes / 1e6:.1f} MB, {cache_bytes / max(rows, 1):.0f} bytes "
        "per image |"
    )


if __name__ == "__main__":
    main()
