"""Search 100,000 to 1,000,000 photo-like thumbnails: phase times, pairs and peak memory.

``python -m benchmarks.scripts.million [N] [--block-means] [--threads T] [--saved DIR]``
memory-maps (or first generates) ``photo_thumbnails(N)``
(:mod:`benchmarks.data.thumbnails`), makes a repository of them with
:func:`fastdif.from_arrays`, optionally computes its block means first (as a
build does, so the search reads them), then searches "similar" and
"duplicates" (rotate on, same_dim on) and prints one JSON object: seconds
per phase, pairs compared exactly, groups (and a SHA-1 of the result, to
compare runs), the peak RSS of each phase (VmHWM, reset before it; the
mapped thumbnails the phase touched count in it) and the peak of its
anonymous memory (RssAnon, sampled every 20 ms by a separate process: the
memory beyond the page cache). With ``--saved DIR`` the repository is
instead loaded with :func:`fastdif.load` from ``DIR``, as a streamed build
(``build(..., store=DIR)``) leaves it: uint8 thumbnails and block means,
memory-mapped; ``DIR`` is saved there first if it does not exist.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import fastdif
from benchmarks.data.thumbnails import photo_thumbnails
from fastdif.engine.matching import Thumbnails


def _rss(field: str) -> int:
    """A field of /proc/self/status (VmHWM, VmRSS) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


#: Run by a separate process: print "time RssAnon-kB" of process PID every 20 ms.
SAMPLER = """
import sys, time
while True:
    try:
        with open(f"/proc/{sys.argv[1]}/status") as f:
            anon = next(int(l.split()[1]) for l in f if l.startswith("RssAnon:"))
    except (OSError, StopIteration):
        break
    print(time.time(), anon, flush=True)
    time.sleep(0.02)
"""


def _phase(figures: dict, name: str, run):
    """Run ``run()``; record its seconds and peak RSS under ``name``; return its result."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from the current RSS
    start, wall = time.perf_counter(), time.time()
    out = run()
    figures[name] = {
        "seconds": round(time.perf_counter() - start, 3),
        "peak_rss_gib": round(_rss("VmHWM") / 2**30, 3),
        "span": (wall, time.time()),
    }
    return out


def _saved(path: str, n: int):
    """The repository saved at ``path``, made from ``photo_thumbnails(n)`` if not there yet."""
    if not os.path.exists(path):
        made = fastdif.from_arrays(photo_thumbnails(n))
        Thumbnails.of_repository(made)  # block means, saved with it
        made.save(path)
    return fastdif.load(path, verify=False)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--block-means", action="store_true", help="compute them before searching")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-duplicates", action="store_true")
    parser.add_argument("--saved", help="load the repository from this folder (made if missing)")
    args = parser.parse_args(argv)
    figures: dict = {"n": args.n}
    samples = tempfile.TemporaryFile(mode="w+")
    sampler = subprocess.Popen([sys.executable, "-c", SAMPLER, str(os.getpid())], stdout=samples)
    if args.saved:
        dif = _phase(figures, "load", lambda: _saved(args.saved, args.n))
    else:
        tensors = _phase(figures, "load", lambda: photo_thumbnails(args.n))
        dif = fastdif.from_arrays(tensors)
    if args.block_means:
        _phase(figures, "block_means", lambda: Thumbnails.of_repository(dif))
    searches = ["similar"] + ([] if args.skip_duplicates else ["duplicates"])
    for similarity in searches:
        se = _phase(
            figures,
            similarity,
            lambda similarity=similarity: fastdif.search(
                dif, similarity=similarity, processes=args.threads, show_progress=False
            ),
        )
        stats = se.stats["process"]["search"]
        figures[similarity].update(
            pairs_compared_exactly=stats["pairs_compared_exactly"],
            groups=len(se.result),
            images_in_groups=len(se.result) + sum(len(m) for m in se.result.values()),
            result_sha1=hashlib.sha1(json.dumps(se.result, sort_keys=True).encode()).hexdigest(),
        )
    figures["peak_rss_gib"] = round(_rss("VmHWM") / 2**30, 3)
    sampler.kill()
    sampler.wait()
    samples.seek(0)
    series = [tuple(map(float, line.split())) for line in samples if line.strip()]
    for phase in figures.values():
        if isinstance(phase, dict) and "span" in phase:
            begin, end = phase.pop("span")
            inside = [kb for t, kb in series if begin <= t <= end]
            phase["peak_anon_gib"] = round(max(inside, default=0) / 2**20, 3)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
