"""What each search mode finds: recall by copy kind and precision, on a labelled set.

    python -m benchmarks.studies.modes             # the accuracy table (about 2 minutes)
    python -m benchmarks.studies.modes --floors    # the flat-image floor, measured
    python -m benchmarks.studies.modes --speed     # search time of each mode, 6,000 and 100,000
    python -m benchmarks.studies.modes --speed --modes flip=True --similarity similar duplicates

The set is :func:`benchmarks.data.modes_set.modes_dataset` (made once in the
benchmark cache folder, or ``--folder``): pictures with one copy of every
kind in :data:`~benchmarks.data.modes_set.KINDS`, and distinct pictures
that are hard to tell apart. Every file is decoded by :func:`fastdif.build`.

One build (px 50), then a search per mode, rotate on, same_dim off (so
that crops of one scene are compared): plain MSE at "similar", and each
option (``color=False``, ``normalize=True``, both, and ``flip=True`` when
:func:`fastdif.search` takes it) at its "similar" threshold. Scored with
:func:`benchmarks.data.truth.score`: per copy kind the copies found (in one
group with their original) out of all, and the precision (true pairs among
all pairs of files grouped together; a decoy grouped with anything is a
false pair). Each mode's column also has the smallest MSE between two
pictures that are not copies: a threshold below that one has precision 1.0
on this set.

``--speed`` times the modes instead (:func:`speed`), ``--floors`` measures
the flat-image floor (:func:`floors`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time

import numpy as np

import fastdif
from benchmarks.data.modes_set import KIND_NOTES, KINDS, modes_dataset
from benchmarks.data.thumbnails import photo_thumbnails
from benchmarks.data.truth import group_names, load_truth, score_with_precision
from benchmarks.studies import tables
from fastdif.engine import transforms
from fastdif.engine.transforms import transform
from fastdif.params import SIMILARITY_MSE

#: The modes compared: column name -> search keywords (flip only where the search has it).
MODES = {
    "plain": {},
    "color=False": {"color": False},
    "normalize=True": {"normalize": True},
    "color=False, normalize=True": {"color": False, "normalize": True},
    "flip=True": {"flip": True},
}

SETTINGS = {"px_size": 50, "rotate": True, "same_dim": False}

# --- scores ----------------------------------------------------------------------


def symmetric_mse(tensors, flip: bool = False) -> np.ndarray:
    """float64 (N, N): each pair's smallest MSE over the rotations (and flips) of the first.

    By the product identity ``|a|^2 + |b|^2 - 2 a.b`` in float64: close
    enough for margins (errors near 1e-8), not for deciding a pair at its
    exact threshold, which the search does.
    """
    t = np.asarray(tensors, dtype=np.float64)
    n = t.shape[0]
    flat = t.reshape(n, -1)
    norms = (flat * flat).sum(axis=1)
    best = np.full((n, n), np.inf)
    faces = (t, t[:, :, ::-1]) if flip else (t,)
    for face in faces:
        for k in range(4 if SETTINGS["rotate"] else 1):
            turned = np.rot90(face, k, axes=(1, 2)).reshape(n, -1)
            sse = norms[:, None] + norms[None, :] - 2.0 * (turned @ flat.T)
            best = np.minimum(best, np.maximum(sse, 0.0) / flat.shape[1])
    return np.minimum(best, best.T)


def available_modes() -> dict:
    """:data:`MODES`, less those :func:`fastdif.search` does not take (``flip`` until it does)."""
    parameters = inspect.signature(fastdif.search).parameters
    return {name: options for name, options in MODES.items() if set(options) <= set(parameters)}


def closest_false_pair(dif, truth, options: dict) -> tuple[float, str, str]:
    """The smallest MSE, as ``options`` compare, between two files that are not copies."""
    tensors = transform(dif.tensors, options.get("color", True), options.get("normalize", False))
    mse = symmetric_mse(tensors, options.get("flip", False))
    names = [os.path.basename(p) for p in dif.paths]
    related = np.array([[truth.related(a, b) for b in names] for a in names], dtype=bool)
    false = np.where(related | np.eye(len(names), dtype=bool), np.inf, mse)
    a, b = np.unravel_index(np.argmin(false), false.shape)
    return float(false[a, b]), names[a], names[b]


def accuracy(folder: str, processes: int | None = None) -> dict:
    """One build of ``folder``; per mode its search at "similar", scored against the truth.

    Returns
    -------
    dict
        Mode name -> :func:`benchmarks.data.truth.score`'s figures plus
        ``matched_pairs``, ``precision`` (None when nothing matched),
        ``threshold`` (the MSE "similar" meant), ``seconds`` (the search)
        and ``closest_false_pair`` (:func:`closest_false_pair`).
    """
    truth = load_truth(folder)
    dif = fastdif.build(
        folder, px_size=SETTINGS["px_size"], show_progress=False, processes=processes
    )
    results = {}
    for name, options in available_modes().items():
        se = fastdif.search(
            dif,
            similarity="similar",
            rotate=SETTINGS["rotate"],
            same_dim=SETTINGS["same_dim"],
            show_progress=False,
            processes=processes,
            **options,
        )
        figures = score_with_precision(group_names(se.result), truth)
        search = se.stats["process"]["search"]
        figures.update(
            threshold=search["parameters"]["similarity_mse"],
            seconds=search["duration"]["seconds_elapsed"],
            closest_false_pair=closest_false_pair(dif, truth, options),
        )
        results[name] = figures
    return results


def markdown(results: dict) -> str:
    """Copies found per kind (of all of that kind), then precision, per mode."""
    rows = {
        "**all copies**": lambda r: f"**{r['pairs_found']} / {r['pairs_total']}**",
        "matched pairs": lambda r: str(r["matched_pairs"]),
        "false pairs": lambda r: str(r["false_pairs"]),
        "**precision**": lambda r: "" if r["precision"] is None else f"**{r['precision']:.3f}**",
        'threshold ("similar", MSE)': lambda r: f"{r['threshold']:g}",
        "closest two non-copies (MSE)": lambda r: f"{r['closest_false_pair'][0]:.1f}",
    }
    return tables.kinds_table(results, KINDS, rows, lambda kind: f"{kind} ({KIND_NOTES[kind]})")


# --- the flat-image floor ------------------------------------------------------------------


def floors(folder: str, values=(0.0, 5.0, 8.0, 10.0, 12.0), processes=None) -> dict:
    """Per floor on the luma contrast and per option: false pairs and copies within "similar".

    Pairs, not groups: for each mode the MSE of every two files (as that
    mode compares them, :data:`transforms.FLAT_CONTRAST` set to each value
    in turn), then the pairs of files that are not copies within MSE 5, and
    the copies within MSE 5 of their original.

    Returns
    -------
    dict
        Floor -> mode name -> ``{"false": int, "copies": int, "closest": float}``.
    """
    truth = load_truth(folder)
    dif = fastdif.build(
        folder, px_size=SETTINGS["px_size"], show_progress=False, processes=processes
    )
    names = [os.path.basename(p) for p in dif.paths]
    index = {name: k for k, name in enumerate(names)}
    related = np.array([[truth.related(a, b) for b in names] for a in names], dtype=bool)
    related |= np.eye(len(names), dtype=bool)
    upper = np.triu(np.ones_like(related), 1)
    copies = [(index[a], index[b]) for a, b, _ in truth.pairs]
    threshold = SIMILARITY_MSE["similar"]
    modes = {name: o for name, o in MODES.items() if "flip" not in o and o}
    results: dict = {}
    saved = transforms.FLAT_CONTRAST
    try:
        for floor in values:
            transforms.FLAT_CONTRAST = floor
            for name, options in modes.items():
                color, normalize = options.get("color", True), options.get("normalize", False)
                mse = symmetric_mse(transform(dif.tensors, color, normalize))
                false = np.where(related, np.inf, mse)
                results.setdefault(floor, {})[name] = {
                    "false": int(((false <= threshold) & upper).sum()),
                    "copies": sum(int(mse[a, b] <= threshold) for a, b in copies),
                    "closest": float(false.min()),
                }
    finally:
        transforms.FLAT_CONTRAST = saved
    return results


def floors_markdown(results: dict) -> str:
    """False pairs, copies found and the closest false pair, per floor and option."""
    names = list(next(iter(results.values())))
    rows = [
        [f"{floor:g}"]
        + [
            f"{row[m]['false']} false, {row[m]['copies']} copies, closest {row[m]['closest']:.1f}"
            for m in names
        ]
        for floor, row in results.items()
    ]
    return tables.markdown(["luma floor", *names], rows)


# --- speed -------------------------------------------------------------------------


def speed(
    sizes=(6000, 100_000),
    repeat: int = 3,
    processes: int | None = None,
    similarities=("similar",),
    modes: list[str] | None = None,
) -> dict:
    """Search time of each mode against plain, on photo-like thumbnails, best of ``repeat``.

    :func:`benchmarks.data.thumbnails.photo_thumbnails` (uint8, memory-mapped
    from the benchmark cache, 10% near-duplicates) through
    :func:`fastdif.from_arrays` (all 50 x 50, so ``same_dim`` splits
    nothing); rotate and same_dim on (the search's defaults). The kernels
    are compiled (or loaded from Numba's cache) first by a search of 64
    images per mode, then the modes alternate within each round, in one
    process, so a slow spell of the machine hits every mode alike.

    Parameters
    ----------
    sizes : sequence of int
    repeat : int, default 3
    processes : int, optional
    similarities : sequence of str or float, default ("similar",)
    modes : list of str, optional
        Names in :data:`MODES`; default every mode the search takes. The
        ratio is against ``"plain"``, timed too.

    Returns
    -------
    dict
        ``"<size> <similarity>"`` -> mode name -> ``{"seconds": best,
        "ratio": best / plain's, "pairs_summed", "members", "transformed"}``
        (the last three from the search's stats: pairs compared exactly,
        members found, members found only turned or mirrored).
    """
    chosen = available_modes()
    if modes is not None:
        chosen = {name: chosen[name] for name in dict.fromkeys(["plain", *modes])}
    results = {}
    for n in sizes:
        thumbnails = photo_thumbnails(n)
        warm = fastdif.from_arrays(np.ascontiguousarray(thumbnails[:64]))
        dif = fastdif.from_arrays(thumbnails)
        for similarity in similarities:
            common = {"show_progress": False, "processes": processes}
            for options in chosen.values():
                fastdif.search(warm, similarity, **common, **options)
            found: dict[str, dict] = {name: {"seconds": np.inf} for name in chosen}
            for _ in range(repeat):
                for name, options in chosen.items():
                    start = time.perf_counter()
                    se = fastdif.search(dif, similarity, **common, **options)
                    seconds = time.perf_counter() - start
                    search = se.stats["process"]["search"]
                    found[name] = {
                        "seconds": min(seconds, found[name]["seconds"]),
                        "pairs_summed": search["pairs_compared_exactly"],
                        "members": len(se.lower_quality),
                        "transformed": len(search["transforms"]),
                    }
            plain = found["plain"]["seconds"]
            for figures in found.values():
                figures["ratio"] = figures["seconds"] / plain
            results[f"{n} {similarity}"] = found
    return results


def speed_markdown(results: dict) -> str:
    """Seconds and ratio to plain, per size, similarity and mode."""
    names = list(next(iter(results.values())))
    rows = []
    for key, row in results.items():
        n, similarity = key.split(" ", 1)
        cells = [f"{row[m]['seconds']:.2f} s ({row[m]['ratio']:.1f}x)" for m in names]
        rows.append([f"{int(n):,}", similarity, *cells])
    return tables.markdown(["thumbnails", "similarity", *names], rows)


def _similarity(level: str):
    """A ``--similarity`` value: a name or an MSE."""
    return level if level in SIMILARITY_MSE else float(level)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; print the accuracy table (or the speed or the floor table)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=45, help="pictures with copies")
    parser.add_argument("--decoys", type=int, default=48, help="sets of distinct pictures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", help="a set made earlier (with truth.json)")
    parser.add_argument("--speed", action="store_true", help="time the modes instead")
    parser.add_argument(
        "--floors", action="store_true", help="the flat-image floor: false pairs by floor"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[6000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--modes", nargs="+", choices=list(MODES), help="with --speed: these modes and plain"
    )
    parser.add_argument(
        "--similarity", nargs="+", default=["similar"], help="with --speed: names or MSEs"
    )
    parser.add_argument("--processes", type=int, help="default: all cores")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    folder = args.folder or (
        None if args.speed else modes_dataset(args.originals, args.decoys, args.seed)
    )
    if args.speed:
        similarities = [_similarity(level) for level in args.similarity]
        results = speed(tuple(args.sizes), args.repeat, args.processes, similarities, args.modes)
        print(f"search, rotate and same_dim on, best of {args.repeat}\n")
        print(speed_markdown(results))
    elif args.floors:
        results = floors(folder, processes=args.processes)
        print(f"{folder}: pairs within MSE 5, rotate on, same_dim off\n")
        print(floors_markdown(results))
    else:
        results = accuracy(folder, args.processes)
        print(f"{folder}: px_size 50, rotate on, same_dim off\n")
        print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"figures written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
