"""The targets of issue 25 side by side in one run: the first run against the next, and difPy.

    python -m benchmarks.scripts.cold_start                      # parts 1 and 2: 3 to 5 minutes
    python -m benchmarks.scripts.cold_start --end-to-end 6000    # and part 3: 6 to 15 minutes more

1. The command line on the generated photo set of ``--images`` pictures
   (default 200), "duplicates" and "similar", default options:
   :func:`benchmarks.scripts.first_run.first_run_seconds` (a new interpreter with an
   empty ``NUMBA_CACHE_DIR``, cold, then the next run with the cache it
   filled, warm; best of ``$FASTDIF_BENCH_ROUNDS`` pairs, default 3).
   Targets: cold at most 1.5 s longer than warm; warm at most 2.5 s.
2. The build of the 1,000-image set against difPy 4.2.1's, each in a new
   interpreter (:func:`benchmarks.scripts.compare_difpy.run_child`: build, then a
   "similar" search), alternated, best of ``--rounds`` (default 2); fastdif
   with a filled kernel cache (its first run, which fills it, is shown as
   "cold"); and the CPU seconds of the whole runs. Target: at most 0.5x.
   Needs difPy (the ``bench`` extra).
3. With ``--end-to-end N``: :func:`benchmarks.scripts.compare_difpy.compare` on N
   images (difPy, then fastdif cold and warm: one run each, the settings of
   that comparison, ``--similarity`` "duplicates", difPy's default, unless
   given), wall and CPU seconds. Targets on
   6,000: at least 3x faster than difPy end to end cold, 3.5x warm.

Load averages (1, 5, 15 minutes) are printed before and after each part: the
machine may be shared. Prints a Markdown table of the figures, each with its
target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from benchmarks.data.photos import dataset
from benchmarks.data.truth import image_files
from benchmarks.scripts.compare_difpy import compare, run_child
from benchmarks.scripts.first_run import SIMILARITIES, first_run_seconds
from benchmarks.timing import warm_page_cache

#: The targets of issue 25.
COLD_MINUS_WARM_S = 1.5
WARM_S = 2.5
BUILD_OVER_DIFPY = 0.5
FASTER_COLD = 3.0
FASTER_WARM = 3.5


def load() -> str:
    """The load averages, as ``/proc/loadavg`` gives them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def row(figure: str, value: float, unit: str = " s", limit: str = "", met: bool | None = None):
    """One line of the table; ``limit`` and ``met`` only for a figure with a target."""
    verdict = "" if met is None else ("met" if met else "missed")
    return f"| {figure} | {value:.2f}{unit} | {limit} | {verdict} |"


def cli_rows(images: int) -> list[str]:
    """Part 1: cold and warm command-line runs, per similarity."""
    rows = []
    for similarity in SIMILARITIES:
        cold, warm = first_run_seconds(similarity, images)
        print(f"CLI {similarity}: cold {cold:.2f} s, warm {warm:.2f} s", file=sys.stderr)
        name = f"CLI {similarity}, {images} images"
        rows += [
            row(f"{name}: cold", cold),
            row(f"{name}: warm", warm, " s", f"at most {WARM_S} s", warm <= WARM_S),
            row(
                f"{name}: cold - warm",
                cold - warm,
                " s",
                f"at most {COLD_MINUS_WARM_S} s",
                cold - warm <= COLD_MINUS_WARM_S,
            ),
        ]
    return rows


def build_rows(images: int, rounds: int) -> list[str]:
    """Part 2: fastdif's build against difPy's, new interpreters, alternated.

    Also the CPU seconds of each whole run (build and search, all processes),
    which the machine's other load moves less than wall times.
    """
    folder = dataset(images)
    warm_page_cache(image_files(folder))
    processes = os.cpu_count() or 1
    best = {"difpy": {}, "fastdif": {}}
    with tempfile.TemporaryDirectory(prefix="fastdif-cold-start-") as workdir:
        env = {**os.environ, "NUMBA_CACHE_DIR": os.path.join(workdir, "numba")}
        cold = run_child("fastdif", folder, processes, env, workdir)["build_s"]  # fills the cache
        for _ in range(rounds):
            for tool, figures in best.items():
                record = run_child(tool, folder, processes, env, workdir)
                print(f"build {images}: {tool} {record['build_s']:.2f} s", file=sys.stderr)
                for key in ("build_s", "cpu_s"):
                    figures[key] = min(figures.get(key, float("inf")), record[key])
    difpy, fastdif = best["difpy"], best["fastdif"]
    ratio = fastdif["build_s"] / difpy["build_s"]
    name = f"build, {images} images"
    return [
        row(f"{name}: difPy 4.2.1", difpy["build_s"]),
        row(f"{name}: fastdif, kernel cache empty", cold),
        row(f"{name}: fastdif", fastdif["build_s"]),
        row(
            f"{name}: fastdif / difPy",
            ratio,
            "",
            f"at most {BUILD_OVER_DIFPY}",
            ratio <= BUILD_OVER_DIFPY,
        ),
        row(f"{name}, whole run in CPU s: fastdif / difPy", fastdif["cpu_s"] / difpy["cpu_s"], ""),
    ]


def end_to_end_rows(images: int, similarity: str) -> list[str]:
    """Part 3: difPy, fastdif cold and warm, end to end, one run each; and in CPU seconds."""
    runs = ("difpy", "fastdif-cold", "fastdif-warm")
    runs = compare(images, os.cpu_count() or 1, runs, similarity)["runs"]
    difpy = runs["difpy"]
    name = f"end to end, {images} images, {similarity!r}"
    rows = [row(f"{name}: difPy 4.2.1", difpy["end_to_end_s"])]
    for run, at_least in (("fastdif-cold", FASTER_COLD), ("fastdif-warm", FASTER_WARM)):
        seconds = runs[run]["end_to_end_s"]
        faster = difpy["end_to_end_s"] / seconds
        rows += [
            row(f"{name}: {run}", seconds),
            row(
                f"{name}: difPy / {run}",
                faster,
                "x",
                f"at least {at_least}x",
                faster >= at_least,
            ),
            row(f"{name}, CPU s: difPy / {run}", difpy["cpu_s"] / runs[run]["cpu_s"], "x"),
        ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="of the CLI runs; 0: no CLI part")
    parser.add_argument("--build-images", type=int, default=1000, help="0: no build part")
    parser.add_argument("--rounds", type=int, default=2, help="of the build part")
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N", help="0: no part 3")
    parser.add_argument(
        "--similarity",
        choices=("duplicates", "similar"),
        default="duplicates",
        help="of part 3 (default: difPy's default, duplicates)",
    )
    args = parser.parse_args(argv)
    rows = []
    parts = []
    if args.images:
        parts.append(("CLI", lambda: cli_rows(args.images)))
    if args.build_images:
        parts.append(("build", lambda: build_rows(args.build_images, args.rounds)))
    if args.end_to_end:
        parts.append(("end to end", lambda: end_to_end_rows(args.end_to_end, args.similarity)))
    for name, part in parts:
        before = load()
        rows += part()
        print(f"{name}: load average {before} before, {load()} after", file=sys.stderr)
        rows.append(f"| load average ({name}): {before} before, {load()} after | | | |")
    print("| figure | measured | target | |")
    print("|---|---:|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
