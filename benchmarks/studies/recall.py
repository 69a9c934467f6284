"""Which copies of texture-rich pictures fastdif finds, per copy kind, and how precisely.

    python -m benchmarks.studies.recall --images 200            # fastdif
    python -m benchmarks.studies.recall --images 200 --difpy    # and difPy 4.2.1

On a texture set (:func:`benchmarks.data.textures.texture_dataset`, or
``--folder``), one build and two searches, "duplicates" and "similar"
(rotate on, same_dim off, px_size 50, no thumbnail cache), scored with
:func:`benchmarks.data.truth.score`: per copy kind the truth pairs found (the
original and its copy in one group) out of all of that kind, then the matched
pairs (every two files in one group), the false ones among them (files that
are not copies of one picture), the precision (true matched pairs over
matched pairs) and the images the build did not read (difPy skips ``.bmp``).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import fastdif
from benchmarks.data.textures import KINDS, texture_dataset
from benchmarks.data.truth import TRUTH_FILE, group_names, load_truth, score_with_precision
from benchmarks.studies.tables import kinds_table

SIMILARITIES = ("duplicates", "similar")

SETTINGS = {"px_size": 50, "rotate": True, "same_dim": False}


def groups_found(module, folder: str, processes: int | None = None) -> tuple[dict, list[str]]:
    """Build ``folder`` with ``module`` (fastdif or difPy) and search it at each similarity.

    Returns
    -------
    dict
        Similarity -> groups, each a list of file names: the key, then its matches.
    list of str
        Names of the image files the build did not read (unsupported or invalid).
    """
    processes = processes or os.cpu_count()  # difPy takes no None
    dif = module.build(
        folder, px_size=SETTINGS["px_size"], show_progress=False, processes=processes
    )
    found = {}
    for similarity in SIMILARITIES:
        se = module.search(
            dif,
            similarity=similarity,
            rotate=SETTINGS["rotate"],
            same_dim=SETTINGS["same_dim"],
            show_progress=False,
            processes=processes,
        )
        found[similarity] = group_names(se.result)
    unread = sorted(os.path.basename(p) for p in dif.stats["invalid_files"]["logs"])
    return found, [name for name in unread if name != TRUTH_FILE]


def recall(
    folder: str, tools: tuple[str, ...] = ("fastdif",), processes: int | None = None
) -> dict:
    """Scores of each tool at each similarity on ``folder``.

    Returns
    -------
    dict
        ``"<tool> <similarity>"`` -> :func:`benchmarks.data.truth.score`'s figures
        plus ``matched_pairs``, ``precision`` (None when nothing matched) and
        ``unread_files`` (images the tool's build did not read).
    """
    truth = load_truth(folder)
    results = {}
    for tool in tools:
        if tool == "difpy":
            import difPy as module  # optional: the "bench" extra
        else:
            module = fastdif
        found, unread = groups_found(module, folder, processes)
        for similarity, groups in found.items():
            figures = score_with_precision(groups, truth)
            figures["unread_files"] = unread
            results[f"{tool} {similarity}"] = figures
    return results


def markdown(results: dict) -> str:
    """One column per tool and similarity; found / total per kind, then precision."""
    first = next(iter(results.values()))
    kinds = [k for k in KINDS if k in first["pairs_by_kind"]]
    kinds += [k for k in first["pairs_by_kind"] if k not in kinds]
    rows = {
        "**all**": lambda r: f"**{r['pairs_found']} / {r['pairs_total']}**",
        "matched pairs": lambda r: str(r["matched_pairs"]),
        "false pairs": lambda r: str(r["false_pairs"]),
        "precision": lambda r: "" if r["precision"] is None else f"{r['precision']:.3f}",
        "images not read": lambda r: str(len(r["unread_files"])),
    }
    return kinds_table(results, kinds, rows)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; score the tools and print the table (and write them as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="size of the texture set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", help="a texture set made earlier (with truth.json)")
    parser.add_argument("--difpy", action="store_true", help="also difPy 4.2.1")
    parser.add_argument("--processes", type=int, help="default: all cores")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    folder = args.folder or texture_dataset(args.images, args.seed)
    tools = ("fastdif", "difpy") if args.difpy else ("fastdif",)
    results = recall(folder, tools, args.processes)
    print(f"{folder}: rotate on, same_dim off, px_size 50\n")
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"folder": folder, "settings": SETTINGS, "results": results}, f, indent=1)
        print(f"figures written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
