"""Search 100,000 to 1,000,000 photo-like thumbnails: phase times, pairs and peak memory.

``python -m benchmarks.million [N] [--block-means] [--threads T]`` memory-maps
(or first generates) ``photo_thumbnails(N)`` (:mod:`benchmarks.thumbnails`),
makes a repository of them with :func:`fastdif.from_arrays`, optionally
computes its block means first (as a build does, so the search reads them),
then searches "similar" and "duplicates" (rotate on, same_dim on) and prints
one JSON object: seconds per phase, pairs compared exactly, groups (and a
SHA-1 of the result, to compare runs), and the
peak RSS of each phase (VmHWM, reset before it; the mapped thumbnails the
phase touched count in it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import fastdif
from fastdif.engine.matching import Thumbnails

from .thumbnails import photo_thumbnails


def _rss(field: str) -> int:
    """A field of /proc/self/status (VmHWM, VmRSS) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _phase(figures: dict, name: str, run):
    """Run ``run()``; record its seconds and peak RSS under ``name``; return its result."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from the current RSS
    start = time.perf_counter()
    out = run()
    figures[name] = {
        "seconds": round(time.perf_counter() - start, 3),
        "peak_rss_gib": round(_rss("VmHWM") / 2**30, 3),
    }
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--block-means", action="store_true", help="compute them before searching")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-duplicates", action="store_true")
    args = parser.parse_args(argv)
    figures: dict = {"n": args.n}
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
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
