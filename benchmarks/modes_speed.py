"""Search time of each matching mode against plain "similar", on the same thumbnails.

    python -m benchmarks.modes_speed [--sizes 6000 100000] [--rounds 3]
                                     [--similarity similar duplicates] [--processes N]

Photo-like uint8 thumbnails (:func:`benchmarks.thumbnails.photo_thumbnails`,
10% near-duplicates, cached as ``.npy``) are read into RAM and wrapped by
:func:`fastdif.from_arrays` (all 50 x 50, so ``same_dim`` splits nothing).
Each mode of :data:`MODES` is one set of ``search`` keywords on top of
``rotate=True``; the baseline is plain "similar" (``MODES["plain"]``). The
kernels are compiled (or loaded from Numba's cache) first, then the modes
are searched in turn, round after round in one process, so a slow spell of
the machine hits every mode alike; each mode's figure is its best round.
Printed: seconds, the ratio to plain, pairs summed exactly and the
members found, as a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastdif
from benchmarks.thumbnails import photo_thumbnails

#: ``search`` keywords of each mode, on top of ``rotate=True``.
MODES = {
    "plain": {},
    "flip": {"flip": True},
}


def measure(n: int, similarity, rounds: int, processes, modes=MODES) -> dict[str, dict]:
    """Best search time of each mode over ``rounds`` alternating rounds, on ``n`` thumbnails."""
    tensors = np.ascontiguousarray(photo_thumbnails(n))
    dif = fastdif.from_arrays(tensors)
    common = {"similarity": similarity, "rotate": True, "show_progress": False}
    common["processes"] = processes
    small = fastdif.from_arrays(np.ascontiguousarray(tensors[:64]))
    for keywords in modes.values():  # compile or load the kernels first
        fastdif.search(small, **common, **keywords)
    found: dict[str, dict] = {name: {"seconds": np.inf} for name in modes}
    for _ in range(rounds):
        for name, keywords in modes.items():
            start = time.perf_counter()
            se = fastdif.search(dif, **common, **keywords)
            seconds = time.perf_counter() - start
            search = se.stats["process"]["search"]
            found[name] = {
                "seconds": min(seconds, found[name]["seconds"]),
                "pairs_summed": search["pairs_compared_exactly"],
                "members": len(se.lower_quality),
                "transformed": len(search["transforms"]),
            }
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--similarity", nargs="+", default=["similar"])
    parser.add_argument("--processes", type=int, default=None)
    args = parser.parse_args(argv)
    print("| thumbnails | similarity | mode | seconds (best) | vs plain | exact sums | members |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for level in args.similarity:
            similarity = float(level) if level not in ("similar", "duplicates") else level
            found = measure(n, similarity, args.rounds, args.processes)
            plain = found["plain"]["seconds"]
            for name, row in found.items():
                print(
                    f"| {n:,} | {level} | {name} | {row['seconds']:.3f} | "
                    f"{row['seconds'] / plain:.2f}x | {row['pairs_summed']:,} | "
                    f"{row['members']:,} ({row['transformed']:,} turned or mirrored) |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
