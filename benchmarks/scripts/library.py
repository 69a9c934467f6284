"""New photos against a saved library: ``build(new, reference=fastdif.load(library))``.

    python -m benchmarks.scripts.library [--library 100000] [--new 100]

The library is ``--library`` photo-like thumbnails (:mod:`benchmarks.data.thumbnails`)
holding, at random places, the thumbnails fastdif decodes from the originals
of half of the new photos. It is saved with its block means (as a saved
``build`` is) and loaded memory-mapped. The new photos are JPEG files of 0.3
to 3 megapixels (:func:`benchmarks.data.photos.photo`): a quarter are byte
copies of a library original, a quarter re-encodes of one (quality 75), half
are in no library. Everything is measured in one run: loading the library,
the build of the new photos (decoding, the worker pool's start included),
and the search, its first call (kernels compiled or loaded from Numba's
cache) and the best of five. The search must find exactly the planted
pairs: every copy, no other pair.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

import fastdif
from benchmarks.data.photos import photo
from benchmarks.data.thumbnails import photo_thumbnails
from fastdif.engine.matching import Thumbnails


def best_of(fn, repeat: int = 5) -> tuple[float, object]:
    """Shortest wall time of ``repeat`` calls of ``fn``, and its last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def timed(fn) -> tuple[float, object]:
    return best_of(fn, 1)


def make_photos(folder: str, count: int, seed: int) -> tuple[list[str], list[str]]:
    """Originals (in ``folder``/originals) and the new photos (in ``folder``/new).

    Returns the originals that go into the library, and the new photo of each.
    """
    rng = np.random.default_rng(seed)
    originals, new = os.path.join(folder, "originals"), os.path.join(folder, "new")
    os.makedirs(originals)
    os.makedirs(new)
    planted, copies = [], []
    for k in range(count):
        image = photo(rng)
        target = os.path.join(new, f"new{k:04d}.jpg")
        if k >= count // 2:  # in no library
            image.save(target, quality=90)
            continue
        source = os.path.join(originals, f"original{k:04d}.jpg")
        image.save(source, quality=90)
        if k % 2:
            shutil.copyfile(source, target)
        else:
            image.save(target, quality=75)
        planted.append(source)
        copies.append(target)
    return planted, copies


def make_library(folder: str, size: int, planted: list[str], seed: int) -> tuple[str, dict]:
    """Save the library of ``size`` thumbnails with ``planted`` among them; its folder and map."""
    decoded = fastdif.build(planted, show_progress=False)
    fill = photo_thumbnails(size - len(decoded), seed=seed)
    rng = np.random.default_rng(seed)
    where = np.sort(rng.choice(size, len(decoded), replace=False))
    tensors = np.empty((size, *fill.shape[1:]), dtype=np.uint8)
    others = np.setdiff1d(np.arange(size), where)
    tensors[others] = fill
    tensors[where] = decoded.tensors.astype(np.uint8)
    paths = [f"library/{k:07d}" for k in range(size)]
    origin = dict(zip(decoded.paths, where.tolist(), strict=True))
    for path, k in origin.items():
        paths[k] = path
    shapes = np.full((size, 2), 50, dtype=np.int64)
    shapes[where] = decoded.shapes
    library = fastdif.from_arrays(tensors, paths, shapes)
    Thumbnails.of_repository(library)  # its block means, saved with it as a build's are
    return library.save(os.path.join(folder, "library.fastdif")), origin


def run(library_size: int, new_count: int, seed: int = 0) -> dict:
    folder = tempfile.mkdtemp(prefix="fastdif-reference-")
    try:
        planted, copies = make_photos(folder, new_count, seed)
        saved, origin = make_library(folder, library_size, planted, seed)
        expected = {(copy, source) for copy, source in zip(copies, planted, strict=True)}
        load_s, library = timed(lambda: fastdif.load(saved, verify=False))
        verify_s, _ = timed(lambda: fastdif.load(saved))
        new = os.path.join(folder, "new")
        build_s, dif = timed(lambda: fastdif.build(new, reference=library, show_progress=False))
        figures = {
            "library": library_size,
            "new": new_count,
            "load_s": load_s,
            "load_verified_s": verify_s,
            "build_s": build_s,
        }
        for similarity in ("duplicates", "similar"):

            def search(similarity=similarity):
                return fastdif.search(dif, similarity=similarity, show_progress=False)

            first_s, _ = timed(search)
            search_s, se = best_of(search)
            found = {(path, key) for key, members in se.result.items() for path, _ in members}
            byte_copies = {c for c in copies if int(os.path.basename(c)[3:7]) % 2}
            want = expected
            if similarity == "duplicates":  # a re-encode is similar, not a duplicate
                want = {(c, s) for c, s in expected if c in byte_copies}
            figures[similarity] = {
                "first_search_s": first_s,
                "search_s": search_s,
                "pairs_compared_exactly": se.stats["process"]["search"]["pairs_compared_exactly"],
                "found": len(found & want),
                "planted": len(want),
                "other_pairs": len(found - want),
            }
        return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100)
    args = parser.parse_args()
    f = run(args.library, args.new)
    print(f"{f['new']} new photos against a saved library of {f['library']:,} thumbnails")
    print(f"load {f['load_s']:.3f} s (verified: {f['load_verified_s']:.3f} s); "
          f"build of the new photos {f['build_s']:.2f} s")  # fmt: skip
    print("| similarity | search, s | first search, s | exact sums | found | other pairs |")
    print("|---|---|---|---|---|---|")
    for name in ("duplicates", "similar"):
        s = f[name]
        print(
            f"| {name} | {s['search_s']:.3f} | {s['first_search_s']:.3f} | "
            f"{s['pairs_compared_exactly']:,} of {f['new'] * f['library']:,} | "
            f"{s['found']}/{s['planted']} | {s['other_pairs']} |"
        )


if __name__ == "__main__":
    main()
