"""What each search mode finds: recall by copy kind and precision, on a labelled set.

    python -m benchmarks.modes                    # the accuracy table (about 2 minutes)
    python -m benchmarks.modes --floors           # the flat-image floor, measured
    python -m benchmarks.modes --speed            # search time of each mode, 6,000 and 100,000

The set (:func:`modes_dataset`, made once in the benchmark cache folder, or
``--folder``) holds photo-like pictures (:func:`benchmarks.make_dataset.photo`)
and textures (:mod:`benchmarks.textures`: foliage, gravel, brick, stars,
text, mosaics), each with one copy of every kind in :data:`KINDS`, and
distinct pictures that are hard to tell apart (:data:`DECOYS`): flat walls
and skies (pairs of one colour photographed at two exposures, and pairs of
equal luma in two hues), colour patterns of one luma, dark (underexposed)
and foggy low-contrast photos, line art, and bursts of near neighbours
(one scene, the camera moved 0.3 to 1.2% of the width between shots, exposure
within 1.5%).
Every file is a real JPEG or PNG, decoded by :func:`fastdif.build`.

One build (px 50), then a search per mode, rotate on, same_dim off (so
that crops of one scene are compared): plain MSE at "similar", and each
option (``color=False``, ``normalize=True``, both, and ``flip=True`` when
:func:`fastdif.search` takes it) at its "similar" threshold. Scored with
:func:`benchmarks.datasets.score`: per copy kind the copies found (in one
group with their original) out of all, and the precision (true pairs among
all pairs of files grouped together; a decoy grouped with anything is a
false pair). ``--scores`` adds, per mode, the largest MSE of each copy kind
to its original and the smallest MSE between two pictures that are not
copies: a threshold below that one has precision 1.0 on this set.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

import fastdif
from fastdif.engine import transforms
from fastdif.engine.transforms import transform
from fastdif.params import SIMILARITY_MSE

from .datasets import cached_set, load_truth, score
from .make_dataset import photo
from .recall import matched_pairs
from .textures import TEXTURES
from .thumbnails import photo_thumbnails

#: Copy kinds: each original gets one of each.
KINDS = (
    "exact",
    "png",
    "reencode",
    "rotate",
    "downscale",
    "mirror",
    "grey",
    "sepia",
    "darker",
    "brighter",
    "less contrast",
    "more contrast",
    "crop",
    "watermark",
)

#: The exposure edits: Pillow's enhancer and factor (30% either way).
EXPOSURE = {
    "darker": (ImageEnhance.Brightness, 0.7),
    "brighter": (ImageEnhance.Brightness, 1.3),
    "less contrast": (ImageEnhance.Contrast, 0.7),
    "more contrast": (ImageEnhance.Contrast, 1.3),
}

#: How each kind is made, for the table.
KIND_NOTES = {
    "exact": "byte copy",
    "png": "PNG of the decoded original",
    "reencode": "JPEG quality 70 to 90",
    "rotate": "90 degrees, lossless (PNG)",
    "downscale": "0.5x to 0.8x, JPEG",
    "mirror": "horizontal flip, JPEG",
    "grey": 'Pillow "L", JPEG',
    "sepia": "CSS sepia(1), JPEG",
    "darker": "brightness -30%, JPEG",
    "brighter": "brightness +30%, JPEG",
    "less contrast": "contrast -30%, JPEG",
    "more contrast": "contrast +30%, JPEG",
    "crop": "8% cut from two sides, JPEG",
    "watermark": "white text, 60% opaque, JPEG",
}

#: Distinct pictures mixed in; none is a copy of another.
DECOYS = ("flat", "isoluminant", "dark", "low_contrast", "line_art", "burst")

#: What originals show, in turn.
CONTENTS = ("photo", "foliage", "photo", "gravel", "photo", "brick", "stars", "text", "mosaic")

#: The CSS ``sepia(1)`` matrix (rows: R, G, B out), as photo apps tint.
SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
)

#: The modes compared: column name -> search keywords (flip only where the search has it).
MODES = {
    "plain": {},
    "color=False": {"color": False},
    "normalize=True": {"normalize": True},
    "color=False, normalize=True": {"color": False, "normalize": True},
    "flip=True": {"flip": True},
}

SETTINGS = {"px_size": 50, "rotate": True, "same_dim": False}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) of 0.15 to 0.5 megapixels, 4:3 or 3:2, a third portrait."""
    area = rng.uniform(0.15, 0.5) * 1e6
    aspect = rng.choice([4 / 3, 3 / 2])
    width = int(np.sqrt(area * aspect))
    height = int(width / aspect)
    return (height, width) if rng.random() < 0.33 else (width, height)


def _picture(content: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    if content == "photo":
        return photo(rng, size)
    return Image.fromarray(TEXTURES[content](rng, *size))


def _jpeg(image: Image.Image, path: str, quality: int) -> str:
    image.save(path, quality=quality)
    return path


def sepia(image: Image.Image) -> Image.Image:
    """The CSS ``sepia(1)`` filter: each pixel times :data:`SEPIA`, clipped."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) @ SEPIA.T
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _watermark(image: Image.Image) -> Image.Image:
    """A semi-transparent white text mark across the lower right corner."""
    marked = image.convert("RGBA")
    layer = Image.new("RGBA", marked.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(image.height // 10, 10)
    font = ImageFont.load_default(size)
    text = "(c) fastdif photo"
    box = draw.textbbox((0, 0), text, font=font)
    x = image.width - (box[2] - box[0]) - size
    y = image.height - (box[3] - box[1]) - size
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 150))
    return Image.alpha_composite(marked, layer).convert("RGB")


def make_copy(image: Image.Image, kind: str, stem: str, rng: np.random.Generator) -> str:
    """Write the copy of ``kind`` of the decoded ``image`` (not ``exact``); return its path."""
    jpeg = stem + ".jpg"
    if kind == "png":
        image.save(stem + ".png", compress_level=1)
        return stem + ".png"
    if kind == "reencode":
        return _jpeg(image, jpeg, int(rng.integers(70, 91)))
    if kind == "rotate":
        image.transpose(Image.Transpose.ROTATE_90).save(stem + ".png", compress_level=1)
        return stem + ".png"
    if kind == "downscale":
        factor = rng.uniform(0.5, 0.8)
        size = (round(image.width * factor), round(image.height * factor))
        return _jpeg(image.resize(size, Image.Resampling.LANCZOS), jpeg, 92)
    if kind == "mirror":
        return _jpeg(ImageOps.mirror(image), jpeg, 92)
    if kind == "grey":
        return _jpeg(image.convert("L"), jpeg, 90)
    if kind == "sepia":
        return _jpeg(sepia(image), jpeg, 90)
    if kind in EXPOSURE:
        enhance, factor = EXPOSURE[kind]
        return _jpeg(enhance(image).enhance(factor), jpeg, 90)
    if kind == "crop":
        dx, dy = round(image.width * 0.08), round(image.height * 0.08)
        return _jpeg(image.crop((dx, dy, image.width, image.height)), jpeg, 92)
    return _jpeg(_watermark(image), jpeg, 92)


def make_original(args: tuple[str, int, int]) -> dict:
    """Write original ``index`` and one copy of each kind; return their truth records."""
    out, index, seed = args
    rng = np.random.default_rng([seed, index])
    content = CONTENTS[index % len(CONTENTS)]
    image = _picture(content, rng, _size(rng))
    stem = os.path.join(out, f"o{index:04d}_{content}")
    if index % 5 == 4:
        original = stem + ".png"
        image.save(original, compress_level=1)
    else:
        original = _jpeg(image, stem + ".jpg", int(rng.integers(88, 96)))
    with Image.open(original) as decoded:
        image = decoded.convert("RGB")
    records = []
    for kind in KINDS:
        if kind == "exact":
            copy = f"{stem}_{kind}{os.path.splitext(original)[1]}"
            shutil.copyfile(original, copy)
        else:
            copy = make_copy(image, kind, f"{stem}_{kind}", rng)
        records.append({"original": original, "copy": copy, "kind": kind})
    return {"original": original, "content": content, "copies": records}


def _flat_image(rng, size, colour, ramp, noise) -> Image.Image:
    """A wall or a sky: one colour, a gradient of ``ramp`` levels top to bottom, noise."""
    width, height = size
    gradient = np.linspace(-ramp / 2, ramp / 2, height, dtype=np.float32)[:, None, None]
    grain = rng.standard_normal((height, width, 3)).astype(np.float32) * noise
    pixels = np.asarray(colour, np.float32) + gradient + grain
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _equal_luma(rng, colour) -> np.ndarray:
    """Another hue of the same luma as ``colour`` (shifted along the grey axis to it)."""
    for _ in range(100):
        other = rng.uniform(30, 225, 3).astype(np.float32)
        other += float(_LUMA @ colour - _LUMA @ other)
        if other.min() >= 0 and other.max() <= 255 and np.abs(other - colour).max() > 40:
            return other
    return colour[::-1].copy()


def _line_art(rng, size) -> Image.Image:
    """Black strokes on white paper: lines, circles and arcs."""
    width, height = size
    image = Image.new("RGB", size, (250, 250, 247))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 30))):
        x0, x1 = rng.uniform(0, width, 2)
        y0, y1 = rng.uniform(0, height, 2)
        ink = int(rng.integers(0, 60))
        stroke = int(rng.integers(1, 4))
        shape = rng.integers(3)
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if shape == 0:
            draw.line((x0, y0, x1, y1), fill=(ink,) * 3, width=stroke)
        elif shape == 1:
            draw.ellipse(box, outline=(ink,) * 3, width=stroke)
        else:
            draw.arc(box, *sorted(rng.uniform(0, 360, 2)), fill=(ink,) * 3, width=stroke)
    return image


def make_decoys(args: tuple[str, int, int]) -> list[str]:
    """Write decoy set ``index`` (one to four distinct pictures); return their paths."""
    out, index, seed = args
    rng = np.random.default_rng([seed, 2_000_000 + index])
    kind = DECOYS[index % len(DECOYS)]
    size = _size(rng)
    stem = os.path.join(out, f"d{index:04d}_{kind}")
    if kind == "flat":
        colour = rng.uniform(25, 230, 3).astype(np.float32)
        if index % 2:  # one wall, two exposures
            other = colour * rng.choice([0.8, 1.2])
        else:  # two walls of equal luma, two hues
            other = _equal_luma(rng, colour)
        images = [
            _flat_image(rng, size, c, rng.uniform(0, 34), rng.uniform(0.5, 2))
            for c in (colour, other)
        ]
    elif kind == "isoluminant":
        base = rng.uniform(60, 190, 3).astype(np.float32)
        images = []
        for _ in range(2):
            a, b = base, _equal_luma(rng, base)
            period = int(rng.integers(20, 120))
            width, height = size
            stripes = (np.arange(width) // period) % 2 == 1
            pixels = np.where(stripes[None, :, None], b, a) * np.ones((height, 1, 1), np.float32)
            images.append(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))
    elif kind == "dark":
        images = [Image.fromarray(TEXTURES["dark"](rng, *size)) for _ in range(2)]
    elif kind == "low_contrast":
        images = []
        for _ in range(2):
            scene = np.asarray(photo(rng, size), np.float32)
            strength = rng.uniform(0.08, 0.25)
            haze = rng.uniform(150, 220)
            pixels = scene * strength + haze * (1 - strength)
            images.append(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))
    elif kind == "line_art":
        images = [_line_art(rng, size) for _ in range(2)]
    else:  # a burst: one scene, the camera moved between shots
        width, height = size
        content = ("photo", "foliage", "brick", "text", "gravel")[index // len(DECOYS) % 5]
        margin = int(0.2 * width)
        scene = _picture(content, rng, (width + margin, height + margin))
        images = []
        step = rng.uniform(0.003, 0.012) * width
        for shot in range(4):
            dx = int(round(shot * step))
            dy = int(round(shot * step * rng.uniform(-0.5, 0.5))) + margin // 2
            crop = scene.crop((dx, dy, dx + width, dy + height))
            exposure = rng.uniform(0.985, 1.015)
            pixels = np.asarray(crop, np.float32) * exposure
            images.append(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))
    paths = []
    for n, image in enumerate(images):
        if kind in ("flat", "isoluminant", "line_art") and n % 2:
            image.save(path := f"{stem}_{n}.png", compress_level=1)
        else:
            path = _jpeg(image, f"{stem}_{n}.jpg", int(rng.integers(88, 96)))
        paths.append(path)
    return paths


def make_modes_set(out: str, originals: int = 45, decoys: int = 48, seed: int = 0) -> dict:
    """Write the labelled set into ``out``; return what ``out/truth.json`` holds."""
    os.makedirs(out, exist_ok=True)
    with ProcessPoolExecutor() as pool:
        made = list(pool.map(make_original, [(out, i, seed) for i in range(originals)]))
        distinct = list(pool.map(make_decoys, [(out, i, seed) for i in range(decoys)]))
    record = {
        "seed": seed,
        "originals": [{"path": m["original"], "content": m["content"]} for m in made],
        "duplicates": [copy for m in made for copy in m["copies"]],
        "decoys": [path for paths in distinct for path in paths],
    }
    record["images"] = len(made) * (1 + len(KINDS)) + len(record["decoys"])
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record


def modes_dataset(originals: int = 45, decoys: int = 48, seed: int = 0) -> str:
    """The folder of the labelled set in the benchmark cache folder, made if missing."""
    name = f"modes-o{originals}-d{decoys}-seed{seed}"
    return cached_set(name, lambda tmp: make_modes_set(tmp, originals, decoys, seed))


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
        Mode name -> :func:`benchmarks.datasets.score`'s figures plus
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
        groups = [
            [os.path.basename(key)] + [os.path.basename(path) for path, _ in members]
            for key, members in se.result.items()
        ]
        figures = score(groups, truth)
        matched = matched_pairs(groups)
        search = se.stats["process"]["search"]
        figures.update(
            matched_pairs=matched,
            precision=(matched - figures["false_pairs"]) / matched if matched else None,
            threshold=search["parameters"]["similarity_mse"],
            seconds=search["duration"]["seconds_elapsed"],
            closest_false_pair=closest_false_pair(dif, truth, options),
        )
        results[name] = figures
    return results


def markdown(results: dict) -> str:
    """Copies found per kind (of all of that kind), then precision, per mode."""
    names = list(results)
    lines = ["| copy kind | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for kind in KINDS:
        cells = [
            f"{r['pairs_found_by_kind'].get(kind, 0)} / {r['pairs_by_kind'][kind]}"
            for r in results.values()
        ]
        lines.append(f"| {kind} ({KIND_NOTES[kind]}) | " + " | ".join(cells) + " |")
    rows = {
        "**all copies**": lambda r: f"**{r['pairs_found']} / {r['pairs_total']}**",
        "matched pairs": lambda r: str(r["matched_pairs"]),
        "false pairs": lambda r: str(r["false_pairs"]),
        "**precision**": lambda r: "" if r["precision"] is None else f"**{r['precision']:.3f}**",
        'threshold ("similar", MSE)': lambda r: f"{r['threshold']:g}",
        "closest two non-copies (MSE)": lambda r: f"{r['closest_false_pair'][0]:.1f}",
    }
    for label, cell in rows.items():
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in results.values()) + " |")
    return "\n".join(lines)


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
    lines = [
        "| luma floor | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for floor, row in results.items():
        cells = [
            f"{row[m]['false']} false, {row[m]['copies']} copies, closest {row[m]['closest']:.1f}"
            for m in names
        ]
        lines.append(f"| {floor:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- speed -------------------------------------------------------------------------


def speed(sizes=(6000, 100_000), repeat: int = 3, processes: int | None = None) -> dict:
    """Search time of each mode at "similar" on photo-like thumbnails, best of ``repeat``.

    :func:`benchmarks.thumbnails.photo_thumbnails` (uint8, memory-mapped from
    the benchmark cache) through :func:`fastdif.from_arrays`; rotate and
    same_dim on (the search's defaults). The modes alternate within each
    round, in one process, after a search of 64 images per mode has
    compiled the kernels.

    Returns
    -------
    dict
        Size -> mode name -> ``{"seconds": best, "ratio": best / plain's}``.
    """
    modes = available_modes()
    results = {}
    for n in sizes:
        thumbnails = photo_thumbnails(n)
        warm = fastdif.from_arrays(np.ascontiguousarray(thumbnails[:64]))
        for options in modes.values():
            fastdif.search(warm, "similar", show_progress=False, processes=processes, **options)
        dif = fastdif.from_arrays(thumbnails)
        times: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(repeat):
            for name, options in modes.items():
                start = time.perf_counter()
                fastdif.search(dif, "similar", show_progress=False, processes=processes, **options)
                times[name].append(time.perf_counter() - start)
        plain = min(times["plain"])
        results[n] = {
            name: {"seconds": min(t), "ratio": min(t) / plain} for name, t in times.items()
        }
    return results


def speed_markdown(results: dict) -> str:
    """Seconds and ratio to plain "similar", per size and mode."""
    names = list(next(iter(results.values())))
    lines = ["| thumbnails | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for n, row in results.items():
        cells = [f"{row[m]['seconds']:.2f} s ({row[m]['ratio']:.1f}x)" for m in names]
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    parser.add_argument("--processes", type=int, help="default: all cores")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    folder = args.folder or (
        None if args.speed else modes_dataset(args.originals, args.decoys, args.seed)
    )
    if args.speed:
        results = speed(tuple(args.sizes), args.repeat, args.processes)
        print(f'search "similar", rotate and same_dim on, best of {args.repeat}\n')
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
