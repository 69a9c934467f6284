"""What the near search finds, next to "similar": recall per copy kind, false pairs, time.

    python -m benchmarks.studies.near              # the table (makes the set once)
    python -m benchmarks.studies.near --speed 1000 3000
    python -m benchmarks.studies.near --speed 100000 --repeat 1
    python -m benchmarks.studies.near --speed 12000 --shapes mixed --processes 2

The set (:func:`near_dataset`, made once in the benchmark cache folder)
holds distinct originals (:func:`benchmarks.data.photos.photo` and the
textures of :mod:`benchmarks.data.textures`), each with one copy of every
kind in :data:`KINDS` (crops up to 10% a side, overlays up to 5% of the
area, exposure edits with clipped highlights, and the kinds "similar"
already finds), and decoys: the modes set's
(:func:`benchmarks.data.modes_set.make_decoys`: flat walls and skies,
colour patterns of one luma, dark and foggy photos, line art, bursts of a
moving camera) plus two of its own, the same scene at another moment (the
light moved, an object moved) and distinct photos sharing one big logo.
Every file is a real JPEG or PNG, decoded by :func:`fastdif.build` (px 50).

Per kind: the copies found by "similar" (rotate on, same_dim off, as
:mod:`benchmarks.studies.modes` searches), by the near engine alone
(:func:`fastdif.engine.near.find_near`), by near with "similar" (what
``similarity="near"`` returns: the union), and the candidate recall (the
copy's pair among :func:`~fastdif.engine.near.near_candidates`). Then the
false pairs (pairs of files that are not copies of one picture) and the
closest score of a false pair the verifier saw.

``--speed`` times the near search (features, candidates, verification) on
:func:`benchmarks.data.thumbnails.photo_thumbnails` (uint8, 10% near copies,
all one shape, or ``--shapes mixed``) of each size given, the verification
in ``--processes`` processes (default: all cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

import fastdif
from benchmarks.data import copies
from benchmarks.data.cache import cached_set
from benchmarks.data.modes_set import DECOYS, make_decoys
from benchmarks.data.photos import photo
from benchmarks.data.textures import TEXTURES
from benchmarks.data.thumbnails import photo_thumbnails
from benchmarks.data.truth import group_names, load_truth, write_truth
from benchmarks.studies import tables
from fastdif.backends.spread import spread_map
from fastdif.engine import near

# --- the set ---------------------------------------------------------------------------


def _crop(lo: float, hi: float, sides: int = 4):
    """Each of ``sides`` random sides cut by a fraction drawn from ``[lo, hi)``."""

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        cuts = np.zeros(4)
        chosen = rng.choice(4, sides, replace=False)
        cuts[chosen] = rng.uniform(lo, hi, sides)
        w, h = image.size
        box = (
            round(cuts[0] * w),
            round(cuts[2] * h),
            w - round(cuts[1] * w),
            h - round(cuts[3] * h),
        )
        return image.crop(box)

    return edit


def _cropped_smaller(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Cut up to 10% a side, then scaled to 0.5 to 0.8 (Lanczos)."""
    image = _crop(0.0, 0.10)(image, rng)
    factor = rng.uniform(0.5, 0.8)
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.LANCZOS)


def _font(size: int):
    return ImageFont.load_default(max(size, 8))


def _box(image, rng, area: float, aspect: float) -> tuple[int, int, int, int]:
    """A box of ``area`` of the image (width over height ``aspect``) at a random corner."""
    w, h = image.size
    bw = int(np.sqrt(area * w * h * aspect))
    bh = int(bw / aspect)
    margin = int(0.03 * min(w, h))
    x = margin if rng.random() < 0.5 else w - bw - margin
    y = margin if rng.random() < 0.5 else h - bh - margin
    return x, y, x + bw, y + bh


def _logo(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An opaque coloured logo (a disc and a letter on a plate), 2 to 4% of the area."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    box = _box(out, rng, rng.uniform(0.02, 0.04), 1.6)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    draw.rectangle(box, fill=colour)
    x0, y0, x1, y1 = box
    draw.ellipse((x0 + 4, y0 + 4, x0 + (y1 - y0) - 4, y1 - 4), fill=(255, 255, 255))
    draw.text((x0 + (y1 - y0), y0), "Q", font=_font(y1 - y0), fill=(255, 255, 255))
    return out


def _caption(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A dark band along the bottom with white text: 4 to 5% of the area."""
    out = image.copy()
    w, h = out.size
    band = int(h * rng.uniform(0.04, 0.05))
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, h - band, w, h), fill=(20, 20, 20))
    draw.text((band // 2, h - band), "Summer 2019, the lake", font=_font(band), fill="white")
    return out


def _date_stamp(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An orange camera date stamp in the lower right, about 1% of the area."""
    out = image.copy()
    w, h = out.size
    size = max(h // 18, 8)
    draw = ImageDraw.Draw(out)
    text = f"'{int(rng.integers(90, 100))} {int(rng.integers(1, 13)):2d} {int(rng.integers(1, 29))}"
    box = draw.textbbox((0, 0), text, font=_font(size))
    x, y = w - (box[2] - box[0]) - size, h - (box[3] - box[1]) - size
    draw.text((x, y), text, font=_font(size), fill=(255, 140, 30))
    return out


def _digit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One painted digit, about 3% of the area, anywhere."""
    out = image.copy()
    w, h = out.size
    size = int(0.28 * min(w, h))
    x, y = int(rng.uniform(0, w - size)), int(rng.uniform(0, h - size))
    ink = tuple(int(v) for v in rng.integers(0, 256, 3))
    ImageDraw.Draw(out).text((x, y), str(rng.integers(10)), font=_font(size), fill=ink)
    return out


def _gamma(value: float):
    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        table = [round(255 * (v / 255) ** value) for v in range(256)] * 3
        return image.point(table)

    return edit


#: Copy kinds: how each is made; each original gets one of each.
COPIES = {
    "reencode": copies.recipe(copies.jpeg((70, 91))),
    "rotate": copies.recipe(copies.png(1), copies.turned()),
    "crop 2-5%, 2 sides": copies.recipe(copies.jpeg(92), _crop(0.02, 0.05, 2)),
    "crop 0-10%, 4 sides": copies.recipe(copies.jpeg(92), _crop(0.0, 0.10)),
    "crop 0-10%, then 0.5-0.8x": copies.recipe(copies.jpeg(92), _cropped_smaller),
    "watermark": copies.recipe(copies.jpeg(92), copies.watermarked),
    "logo 2-4%": copies.recipe(copies.jpeg(92), _logo),
    "caption band 4-5%": copies.recipe(copies.jpeg(92), _caption),
    "date stamp": copies.recipe(copies.jpeg(92), _date_stamp),
    "painted digit": copies.recipe(copies.jpeg(92), _digit),
    "brightness +12%": copies.recipe(
        copies.jpeg(90), copies.enhanced(ImageEnhance.Brightness, 1.12)
    ),
    "brightness -10%": copies.recipe(
        copies.jpeg(90), copies.enhanced(ImageEnhance.Brightness, 0.9)
    ),
    "brightness +30%, clipped": copies.recipe(
        copies.jpeg(90), copies.enhanced(ImageEnhance.Brightness, 1.3)
    ),
    "contrast -20%": copies.recipe(copies.jpeg(90), copies.enhanced(ImageEnhance.Contrast, 0.8)),
    "contrast +20%": copies.recipe(copies.jpeg(90), copies.enhanced(ImageEnhance.Contrast, 1.2)),
    "gamma 0.8": copies.recipe(copies.jpeg(90), _gamma(0.8)),
    "gamma 1.25": copies.recipe(copies.jpeg(90), _gamma(1.25)),
}
KINDS = tuple(COPIES)

#: What originals show, in turn (textures the modes set uses, photos most).
CONTENTS = ("photo", "foliage", "photo", "gravel", "photo", "brick", "photo", "text", "mosaic")

#: The decoys of this set besides the modes set's.
OWN_DECOYS = ("another_moment", "shared_logo")


def _size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) of 0.1 to 0.3 megapixels, 4:3 or 3:2, a third portrait."""
    area = rng.uniform(0.1, 0.3) * 1e6
    aspect = rng.choice([4 / 3, 3 / 2])
    width = int(np.sqrt(area * aspect))
    height = int(width / aspect)
    return (height, width) if rng.random() < 0.33 else (width, height)


def _picture(content: str, rng: np.random.Generator, size) -> Image.Image:
    if content == "photo":
        return photo(rng, size)
    return Image.fromarray(TEXTURES[content](rng, *size))


def make_original(args: tuple[str, int, int]) -> dict:
    """Write original ``index`` and one copy of each kind; return their truth records."""
    out, index, seed = args
    rng = np.random.default_rng([seed, 3_000_000 + index])
    content = CONTENTS[index % len(CONTENTS)]
    image = _picture(content, rng, _size(rng))
    stem = os.path.join(out, f"o{index:04d}_{content}")
    original = stem + ".jpg"
    image.save(original, quality=int(rng.integers(88, 96)))
    image = copies.decode(original)
    records = []
    for n, kind in enumerate(KINDS):
        copy = copies.write_copy(original, f"{stem}_k{n:02d}", COPIES[kind], rng, image)
        records.append({"original": original, "copy": copy, "kind": kind})
    return {"original": original, "copies": records}


def _moments(rng: np.random.Generator) -> list[Image.Image]:
    """One scene twice: the light moved across it, an object moved in it."""
    size = _size(rng)
    scene = np.asarray(photo(rng, size), np.float32)
    h, w = scene.shape[:2]
    shots = []
    for shot in range(2):
        ramp = np.linspace(1 - 0.15 * (shot * 2 - 1), 1 + 0.15 * (shot * 2 - 1), w)
        pixels = scene * ramp[None, :, None] + rng.normal(0, 3, scene.shape)
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
        x, y = rng.uniform(0.1, 0.7) * w, rng.uniform(0.1, 0.7) * h
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        ImageDraw.Draw(image).ellipse((x, y, x + 0.2 * w, y + 0.3 * h), fill=colour)
        shots.append(image)
    return shots


def _shared_logo(rng: np.random.Generator, logo_seed: int) -> list[Image.Image]:
    """Two distinct photos with one big logo (10% of the area) in one place."""
    shots = []
    for _ in range(2):
        image = photo(rng, (640, 480))
        draw = ImageDraw.Draw(image)
        logo_rng = np.random.default_rng(logo_seed)
        colour = tuple(int(v) for v in logo_rng.integers(0, 256, 3))
        draw.rectangle((40, 40, 40 + 277, 40 + 110), fill=colour)
        draw.text((60, 40), "LOGO", font=_font(100), fill=(255, 255, 255))
        shots.append(image)
    return shots


def make_own_decoys(args: tuple[str, int, int]) -> list[str]:
    """Write this set's own decoy pair ``index``; return their paths."""
    out, index, seed = args
    rng = np.random.default_rng([seed, 4_000_000 + index])
    kind = OWN_DECOYS[index % len(OWN_DECOYS)]
    images = _moments(rng) if kind == "another_moment" else _shared_logo(rng, seed)
    paths = []
    for n, image in enumerate(images):
        path = os.path.join(out, f"e{index:04d}_{kind}_{n}.jpg")
        image.save(path, quality=int(rng.integers(88, 96)))
        paths.append(path)
    return paths


def make_near_set(out: str, originals: int, decoys: int, seed: int) -> dict:
    """Write the labelled set into ``out``; return what ``out/truth.json`` holds."""
    os.makedirs(out, exist_ok=True)
    with ProcessPoolExecutor() as pool:
        made = list(pool.map(make_original, [(out, i, seed) for i in range(originals)]))
        modes = list(pool.map(make_decoys, [(out, i, seed) for i in range(decoys)]))
        own = list(pool.map(make_own_decoys, [(out, i, seed) for i in range(decoys // 2)]))
    paths = [p for group in modes + own for p in group]
    record = {
        "seed": seed,
        "originals": [m["original"] for m in made],
        "duplicates": [copy for m in made for copy in m["copies"]],
        "decoys": paths,
    }
    record["images"] = len(made) * (1 + len(KINDS)) + len(paths)
    return write_truth(out, record)


def near_dataset(originals: int = 36, decoys: int = 48, seed: int = 0) -> str:
    """The folder of the labelled set in the benchmark cache folder, made if missing."""
    name = f"near-o{originals}-d{decoys}-seed{seed}"
    return cached_set(name, lambda tmp: make_near_set(tmp, originals, decoys, seed))


# --- measures --------------------------------------------------------------------------


def _decoy_kind(name: str) -> str | None:
    """The decoy kind a file name says (None for originals and copies)."""
    for kind in DECOYS + OWN_DECOYS:
        if f"_{kind}" in name and name[0] in "de":
            return kind
    return None


def _scored(pairs: set, truth) -> dict:
    """Copies found per kind among ``pairs`` (of names), and the false pairs."""
    found_by_kind: dict[str, int] = {}
    total_by_kind: dict[str, int] = {}
    for original, copy, kind in truth.pairs:
        total_by_kind[kind] = total_by_kind.get(kind, 0) + 1
        if (original, copy) in pairs or (copy, original) in pairs:
            found_by_kind[kind] = found_by_kind.get(kind, 0) + 1
    false = sorted(p for p in pairs if not truth.related(*p))
    by_decoy: dict[str, int] = {}
    for a, b in false:
        kind = _decoy_kind(a) or _decoy_kind(b) or "copy with copy"
        by_decoy[kind] = by_decoy.get(kind, 0) + 1
    return {
        "pairs_found": sum(found_by_kind.values()),
        "pairs_total": len(truth.pairs),
        "pairs_found_by_kind": found_by_kind,
        "pairs_by_kind": total_by_kind,
        "false_pairs": len(false),
        "false_by_decoy": by_decoy,
        "false_examples": [list(p) for p in false[:8]],
    }


def _group_pairs(groups) -> set:
    pairs = set()
    for names in groups:
        unique = sorted(set(names))
        pairs.update((a, b) for k, a in enumerate(unique) for b in unique[k + 1 :])
    return pairs


def accuracy(folder: str, processes: int | None = None) -> dict:
    """One build of ``folder``; "similar", the near engine and their union, scored.

    Returns
    -------
    dict
        Column name -> copies found per kind and false pairs
        (:func:`_scored`), plus ``"details"``: the candidate count, the
        near search's seconds, the closest false score, the copies the
        verifier refused with their scores, and which file of each copy pair
        it says bears an overlay (``overlay_on``: the keep rule's guess).
    """
    truth = load_truth(folder)
    dif = fastdif.build(folder, px_size=50, show_progress=False, processes=processes)
    names = [os.path.basename(p) for p in dif.paths]
    se = fastdif.search(
        dif, "similar", rotate=True, same_dim=False, show_progress=False, processes=processes
    )
    similar = {tuple(sorted(p)) for p in _group_pairs(group_names(se.result))}
    tensors = np.asarray(dif.tensors)
    start = time.perf_counter()
    features = near.near_features(tensors)
    candidates = near.near_candidates(features)
    i, j, matches = near.find_near(tensors, dif.shapes, features=features)
    seconds = time.perf_counter() - start
    found = {
        tuple(sorted((names[a], names[b]))) for a, b in zip(i.tolist(), j.tolist(), strict=True)
    }
    proposed = {
        tuple(sorted((names[a], names[b])))
        for a, b in zip(candidates.i.tolist(), candidates.j.tolist(), strict=True)
    }
    # The closest non-copy the verifier scored, and each copy it saw but refused.
    saved, near.NEAR_MSE = near.NEAR_MSE, np.inf
    try:
        index = {name: k for k, name in enumerate(names)}
        closest = (np.inf, None)
        for a, b in zip(candidates.i.tolist(), candidates.j.tolist(), strict=True):
            if truth.related(names[a], names[b]):
                continue
            m = near.verify_near(tensors[a], tensors[b], dif.shapes[a], dif.shapes[b])
            if m is not None and m.score < closest[0]:
                closest = (m.score, (names[a], names[b]))
        refused = []
        for original, copy, kind in truth.pairs:
            pair = tuple(sorted((original, copy)))
            if pair in proposed and pair not in found:
                a, b = index[original], index[copy]
                m = near.verify_near(tensors[a], tensors[b], dif.shapes[a], dif.shapes[b])
                refused.append((kind, copy, None if m is None else round(m.score, 2)))
    finally:
        near.NEAR_MSE = saved
    descriptions, marked = {}, {"copy": 0, "original": 0, "neither": 0}
    for original, copy, _ in truth.pairs:
        # Which file the verifier says bears an overlay (the keep rule's guess).
        m = near.verify_near(*(tensors[index[n]] for n in (original, copy)),
                             *(dif.shapes[index[n]] for n in (original, copy)))  # fmt: skip
        if m is not None:
            marked[("neither", "original", "copy")[m.marked + 1]] += 1
    for a, b, m in zip(i.tolist(), j.tolist(), matches, strict=True):
        kinds = [k for o, c, k in truth.pairs if {o, c} == {names[a], names[b]}]
        if kinds and kinds[0] not in descriptions:
            descriptions[kinds[0]] = f"{m.describe()} (score {m.score:.2f})"
    return {
        '"similar"': _scored(similar, truth),
        "near engine": _scored(found, truth),
        "near (with similar)": _scored(found | similar, truth),
        "candidates": _scored(proposed, truth),
        "details": {
            "images": len(names),
            "candidates": len(candidates),
            "near_seconds": seconds,
            "closest_false": [float(closest[0]), closest[1]],
            "refused": refused,
            "descriptions": descriptions,
            "overlay_on": marked,
        },
    }


def markdown(results: dict) -> str:
    """Copies found per kind, then the false pairs, per column."""
    columns = {k: v for k, v in results.items() if k != "details"}
    rows = {
        "**all copies**": lambda r: f"**{r['pairs_found']} / {r['pairs_total']}**",
        "false pairs": lambda r: (
            str(r["false_pairs"]) + (f" ({r['false_by_decoy']})" if r["false_pairs"] else "")
        ),
    }
    # The kinds of the set measured (``--folder`` may name another labelled set).
    present = next(iter(columns.values()))["pairs_by_kind"]
    kinds = [k for k in KINDS if k in present] + [k for k in present if k not in KINDS]
    return tables.kinds_table(columns, kinds, rows)


#: The shapes ``--speed --shapes mixed`` gives the thumbnails in turn (drawn at
#: random): two cameras of one aspect, a phone's, and a portrait photo, so
#: that one image may be a crop of another and candidates need a crop search.
MIXED_SHAPES = ((800, 600), (1600, 1200), (4032, 3024), (600, 800))


def speed(sizes=(1000,), repeat: int = 2, shapes: str = "one", processes: int = 1) -> dict:
    """Seconds of the near search's stages on ``photo_thumbnails(n)``, best of ``repeat``.

    ``shapes`` "one": all thumbnails are given one shape (800 x 600), as in
    a library of one camera's photos: no crop fits between two of them, so
    a candidate costs its alignment and, when that passes, its tone curve.
    "mixed": :data:`MIXED_SHAPES` at random, so that crops are searched.
    The verification runs in ``processes`` processes
    (:func:`fastdif.backends.spread.spread_map`, as a search does), the rest
    in this one. The candidates grow faster than the images (pairs of
    similar hashes): time several sizes before extrapolating.

    Returns
    -------
    dict
        Size -> seconds of ``features``, ``candidates`` and ``verify`` (the
        batched screen, then the verifier on the pairs it keeps), with
        ``candidates_count``, ``verified`` (the pairs screened in) and
        ``found`` (pairs).
    """
    results = {}
    spread = partial(spread_map, processes=processes)
    for n in sizes:
        tensors = photo_thumbnails(n)
        if shapes == "one":
            sizes_of = np.tile([800, 600], (n, 1))
        else:
            sizes_of = np.array(MIXED_SHAPES)[np.random.default_rng(0).integers(0, 4, n)]
        best = {"features": np.inf, "candidates": np.inf, "verify": np.inf}
        for _ in range(repeat):
            t0 = time.perf_counter()
            features = near.near_features(tensors)
            t1 = time.perf_counter()
            candidates = near.near_candidates(features)
            t2 = time.perf_counter()
            i, _, _ = near.find_near(tensors, sizes_of, features=features, map=spread)
            t3 = time.perf_counter()
            # find_near makes the candidates again, then verifies each.
            stages = {"features": t1 - t0, "candidates": t2 - t1, "verify": t3 - t2 - (t2 - t1)}
            best = {key: min(best[key], value) for key, value in stages.items()}
        verified = int(near.screened(tensors, sizes_of, candidates).sum())
        best.update(candidates_count=len(candidates), verified=verified, found=len(i))
        results[n] = best
    return results


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; print the accuracy table, or the speed figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=36, help="pictures with copies")
    parser.add_argument("--decoys", type=int, default=48, help="sets of the modes decoys")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", help="a set made earlier (with truth.json)")
    parser.add_argument("--speed", type=int, nargs="*", help="time on these sizes instead")
    parser.add_argument("--repeat", type=int, default=2, help="timings per size (the best kept)")
    parser.add_argument("--processes", type=int, help="default: all cores")
    parser.add_argument(
        "--shapes", choices=("one", "mixed"), default="one", help="with --speed: see speed()"
    )
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.speed is not None:
        processes = args.processes or os.cpu_count() or 1
        results = speed(tuple(args.speed) or (1000,), args.repeat, args.shapes, processes)
        for n, figures in results.items():
            print(n, {k: round(float(v), 3) for k, v in figures.items()})
    else:
        folder = args.folder or near_dataset(args.originals, args.decoys, args.seed)
        results = accuracy(folder, args.processes)
        print(f"{folder}: px_size 50, rotate on, same_dim off\n")
        print(markdown(results))
        print(json.dumps(results["details"], indent=1, default=str))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
        print(f"figures written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
