"""Search scaling with the number of Dask workers, on one many-core machine.

    python -m benchmarks.scripts.cluster_scaling --workers 2 4 8 16 --thumbnails 100000

For each worker count k, this process is pinned to k cores (the workers it
starts inherit that), and a ``LocalCluster(n_workers=k,
threads_per_worker=1)`` searches the photo-like thumbnails
(:mod:`benchmarks.data.thumbnails`, read by the workers from a memory-mapped
``.npy`` file) for ``"similar"`` with rotate on, next to the local search on
the same k cores (``processes=k``). Each figure is the median of
``--rounds`` searches after one warm-up search (kernels loaded). Prints a
table; needs the ``dask`` extra and a platform with ``os.sched_setaffinity``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import fastdif
from benchmarks.data.thumbnails import thumbnail_file


def median_seconds(function, rounds: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--thumbnails", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    dif = fastdif.from_arrays(np.load(thumbnail_file(args.thumbnails), mmap_mode="r"))
    cores = sorted(os.sched_getaffinity(0))
    print(f"{args.thumbnails} thumbnails, 'similar', rotate on; {len(cores)} cores")
    print("| cores = workers | local, s | LocalCluster, s | cluster / local | speed-up |")
    print("|---|---|---|---|---|")
    base = None
    try:
        for k in args.workers:
            os.sched_setaffinity(0, cores[:k])
            local = median_seconds(
                lambda k=k: fastdif.search(dif, "similar", show_progress=False, processes=k),
                args.rounds,
            )
            with (
                LocalCluster(
                    n_workers=k, threads_per_worker=1, dashboard_address=None, silence_logs=50
                ) as cluster,
                Client(cluster) as client,
            ):
                seconds = median_seconds(
                    lambda client=client: fastdif.search(
                        dif, "similar", show_progress=False, scheduler=client
                    ),
                    args.rounds,
                )
            base = base or (k, seconds)
            speed_up = base[1] / seconds
            print(f"| {k} | {local:.2f} | {seconds:.2f} | {seconds / local:.2f} | {speed_up:.2f} |")
    finally:
        os.sched_setaffinity(0, cores)


if __name__ == "__main__":
    main()
