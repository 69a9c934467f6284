"""Near copies (fastdif.engine.near): the verifier's invariants, copies found, decoys refused.

Pictures are tests/images.py's photos (smooth blobs, waves and noise),
edited with Pillow as a person would (crops, overlays, exposure edits) and
reduced to the thumbnails a build makes (images.thumbnail, the exact area
filter), so every expectation is known. No file is written.
"""

import csv
import os

import images
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageEnhance

import fastdif
from fastdif.cli import main
from fastdif.engine import near

SIZE = (400, 300)


def picture(seed: int, size=SIZE) -> Image.Image:
    """A test photo with the contrast of a typical photo (luma deviation about 45)."""
    pixels = images.photo(seed, *size).astype(np.float64)
    luma = pixels @ [0.299, 0.587, 0.114]
    pixels = (pixels - pixels.mean()) * 45 / luma.std() + 128
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def thumb(image: Image.Image):
    """(thumbnail, shape) as a build holds them."""
    return images.thumbnail(image), image.size


def cropped(image, left=0.0, right=0.0, top=0.0, bottom=0.0):
    w, h = image.size
    return image.crop(
        (round(left * w), round(top * h), w - round(right * w), h - round(bottom * h))
    )


def logo(image, area=0.03):
    """An opaque red plate with a white disc in the lower right: ``area`` of the image."""
    out = image.copy()
    w, h = out.size
    bw = int(np.sqrt(area * w * h * 1.6))
    bh = int(bw / 1.6)
    box = (w - bw - 8, h - bh - 8, w - 8, h - 8)
    draw = ImageDraw.Draw(out)
    draw.rectangle(box, fill=(200, 30, 30))
    draw.ellipse((box[0] + 3, box[1] + 3, box[0] + bh - 3, box[3] - 3), fill="white")
    return out


def verify(a: Image.Image, b: Image.Image, **options):
    (ta, sa), (tb, sb) = thumb(a), thumb(b)
    return near.verify_near(ta, tb, sa, sb, **options)


# --- building blocks ---------------------------------------------------------------


def test_area_matrix_pools_and_averages():
    whole = near.area_matrix(50, 0.0, 1.0, 25)
    assert np.allclose(whole.sum(axis=1), 1.0)
    assert np.allclose(whole, np.kron(np.eye(25), [0.5, 0.5]))
    several = near.area_matrix(50, np.array([0.0, 0.1]), np.array([0.9, 1.0]), 25)
    assert several.shape == (2, 25, 50)
    assert np.allclose(several[1], near.area_matrix(50, 0.1, 1.0, 25))


@pytest.mark.parametrize("symmetry", near.SYMMETRIES)
def test_turned_coefficients_are_those_of_the_turned_image(symmetry):
    """The candidates hash a turned crop by turning its DCT coefficients (framing 0: whole)."""
    lumas = near.luma(images.thumbnail(picture(3)))
    turned = near.symmetric(lumas, symmetry)
    expected = near._coefficients(np.ascontiguousarray(turned)[None])[:, 0]
    got = near._turned_coefficients(near._coefficients(lumas[None])[:, 0], symmetry)
    assert np.allclose(got, expected, atol=1e-6)


def test_features_hold_every_framing_and_are_a_function_of_the_thumbnail():
    tensors = np.stack([images.thumbnail(picture(seed)) for seed in range(3)]).astype(np.uint8)
    features = near.near_features(tensors)
    assert features.hashes.dtype == np.uint64 and features.hashes.shape == (3, 81)
    assert features.masked.dtype == np.uint64 and features.masked.shape == (3, 4)
    assert features.contrast.dtype == np.float32
    assert sum(a.nbytes for a in features.arrays().values()) == 3 * 684
    again = near.near_features(tensors.astype(np.float32), chunk=1)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(features.arrays().values(), again.arrays().values(), strict=True)
    )
    # framing k of the stored hashes is the hash of the coefficients of crop _FRAMINGS[k]
    expected = near._pack(near._signs(near._coefficients(near.luma(tensors))))
    assert np.array_equal(features.hashes, expected)


BITS = st.lists(st.booleans(), min_size=63, max_size=63)


@given(st.lists(BITS, min_size=1, max_size=5))
def test_packed_hashes_hold_bit_b_in_bit_b(rows):
    """_pack and _unpacked against the arithmetic reference: sign b weighs 2**b."""
    signs = np.array(rows, bool)
    reference = (signs * (np.uint64(1) << np.arange(63, dtype=np.uint64))).sum(
        axis=1, dtype=np.uint64
    )
    assert np.array_equal(near._pack(signs), reference)
    assert np.array_equal(near._unpacked(reference), signs)


@given(st.integers(0, 2**64 - 1))
def test_transposed_is_the_bit_matrix_transpose(word):
    bits = np.unpackbits(np.array([word], "<u8").view(np.uint8), bitorder="little")
    reference = np.packbits(bits.reshape(8, 8).T.ravel(), bitorder="little").view("<u8")
    assert near._transposed(np.array([word], np.uint64))[0] == reference[0]


@pytest.mark.parametrize("symmetry", near.SYMMETRIES)
def test_symmetric_hashes_are_the_hashes_of_the_turned_thumbnail(symmetry):
    """Every framing's hash turned by bit operations is the hash of its turned coefficients."""
    tensors = np.stack([images.thumbnail(picture(seed)) for seed in (3, 4)])
    features = near.near_features(tensors)
    c = near._coefficients(near.luma(tensors))
    expected = near._pack(near._signs(near._turned_coefficients(c, symmetry)))
    assert np.array_equal(near.symmetric_hashes(features.hashes, symmetry), expected)
    turned = np.stack([near.symmetric(t, symmetry) for t in tensors])
    seen = near.near_features(turned)
    assert np.array_equal(near.symmetric_hashes(features.hashes[:, 0], symmetry), seen.hashes[:, 0])
    # a masked quadrant lands where the symmetry moves it
    landed = near._TURNED_QUADRANTS[near.SYMMETRIES.index(symmetry)]
    assert np.array_equal(near.symmetric_hashes(features.masked, symmetry), seen.masked[:, landed])


@given(
    st.lists(st.integers(-1, 1), min_size=64, max_size=64),
    st.sampled_from(near.SYMMETRIES),
)
def test_a_negated_zero_coefficient_hashes_as_positive(values, symmetry):
    """The documented corner case: a coefficient exactly 0 that the symmetry negates gets bit 1."""
    c = np.array(values, np.float64).reshape(8, 8)
    turned = near._turned_coefficients(c, symmetry)
    negated = near._turned_coefficients(np.ones((8, 8)), symmetry) < 0
    reference = np.where(negated, turned >= 0, turned > 0).ravel()[1:]
    got = near.symmetric_hashes(near._pack(near._signs(c)), symmetry)
    assert got == near._pack(reference)


def test_an_overlay_in_one_quadrant_leaves_that_quadrants_masked_hash():
    """A logo in the lower right moves the whole hash more than that quadrant's masked hash."""
    sources = [picture(seed) for seed in range(101, 106)]
    tensors = np.stack(
        [images.thumbnail(image) for image in sources + [logo(a, 0.04) for a in sources]]
    )
    features = near.near_features(tensors)
    whole = np.bitwise_count(features.hashes[:5, 0] ^ features.hashes[5:, 0])
    masked = np.bitwise_count(features.masked[:5] ^ features.masked[5:])
    assert np.all(masked[:, 3] <= near.MASKED_DISTANCE)
    assert np.all(masked[:, 3] <= whole)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 6))
def test_multi_index_tables_find_what_a_full_comparison_finds(seed, flips):
    """_matches against comparing every query with every entry: no more, all within 3 bits."""
    rng = np.random.default_rng(seed)
    entries = rng.integers(0, 2**63, 300, dtype=np.uint64)
    noise = [
        np.bitwise_or.reduce(np.uint64(1) << rng.choice(63, flips, replace=False).astype(np.uint64))
        if flips
        else np.uint64(0)
        for _ in range(40)
    ]
    queries = entries[:40] ^ np.array(noise, np.uint64)
    query, entry, distance = near._matches(near._tables(entries), queries, 12)
    found = set(zip(query.tolist(), entry.tolist(), strict=True))
    full = np.bitwise_count(queries[:, None] ^ entries[None, :])
    assert np.array_equal(distance, full[query, entry]) and np.all(distance <= 12)
    assert {(q, e) for q, e in zip(*np.nonzero(full <= 3), strict=True)} <= found


def test_candidates_find_logo_copies_turned_or_not(monkeypatch):
    """Logo copies, some turned: the masked hashes find those whose whole hash moved too far."""
    sources = [picture(seed) for seed in range(111, 117)]
    copies = [logo(a, 0.04) for a in sources[:3]] + [
        logo(a, 0.04).transpose(Image.Transpose.ROTATE_90) for a in sources[3:]
    ]
    tensors = np.stack([images.thumbnail(image) for image in sources + copies])
    features = near.near_features(tensors)
    copied = {(k, k + 6) for k in range(6)}

    def found(**options):
        candidates = near.near_candidates(features, **options)
        return set(zip(candidates.i.tolist(), candidates.j.tolist(), strict=True)) & copied

    assert found() == copied
    assert found(rotate=False) == copied - {(k, k + 6) for k in range(3, 6)}
    monkeypatch.setattr(near, "MASKED_DISTANCE", -1)  # the whole hashes alone
    assert found() < copied


def test_candidates_are_those_of_a_full_comparison():
    """near_candidates against every framing and symmetry of every image against every image."""
    sources = [picture(seed) for seed in (121, 122, 123)]
    files = sources + [picture(124)]
    for a in sources:
        files += [cropped(a, 0.05, 0.0, 0.05, 0.05), logo(a, 0.04).rotate(90, expand=True)]
    features = near.near_features(np.stack([images.thumbnail(image) for image in files]))
    candidates = near.near_candidates(features, rotate=True, flip=True)
    h, m = features.hashes, features.masked
    turned = np.stack([near.symmetric_hashes(h, s) for s in near.SYMMETRIES])  # (8, n, 81)
    whole = np.bitwise_count(turned[:, :, None, :] ^ h[None, None, :, :1])  # (8, src, other, 81)
    landed = near._TURNED_QUADRANTS
    masked = np.stack(
        [
            np.bitwise_count(near.symmetric_hashes(m, s)[:, None, :] ^ m[None, :, landed[k]])
            for k, s in enumerate(near.SYMMETRIES)
        ]
    )  # (8, src, other, quadrant)
    n = len(files)
    closest = np.minimum(whole.min(axis=(0, 3)), masked.min(axis=(0, 3)))
    closest = np.minimum(closest, closest.T)
    limit = np.maximum(near.MAX_DISTANCE, near.MASKED_DISTANCE)
    found = set(zip(candidates.i.tolist(), candidates.j.tolist(), strict=True))
    upper = {(a, b) for a in range(n) for b in range(a + 1, n) if closest[a, b] <= limit}
    lower = {(a, b) for a in range(n) for b in range(a + 1, n) if closest[a, b] <= 3}
    assert lower <= found <= upper
    assert {(k, 4 + 2 * k + e) for k in range(3) for e in (0, 1)} <= found  # crops, logos
    for k in range(len(candidates)):  # each hint's distance is its hashes'
        src, i, j = candidates.source[k], candidates.i[k], candidates.j[k]
        other = j if src == i else i
        framing = np.flatnonzero((near._FRAMINGS == candidates.crop[k]).all(axis=1))[0]
        d = whole[candidates.symmetry[k], src, other, framing]
        if framing or d == candidates.distance[k]:
            assert d == candidates.distance[k]
        else:  # found by a masked hash, with its distance
            assert candidates.distance[k] in masked[candidates.symmetry[k], src, other]


# --- the verifier's invariants ----------------------------------------------------------

SEEDS = st.integers(0, 10_000)
SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(SEEDS)
def test_identical_thumbnails_score_zero(seed):
    t, shape = thumb(picture(seed))
    match = near.verify_near(t, t.copy(), shape, shape)
    assert match is not None and match.score == 0.0
    assert match.crop == (0.0, 0.0, 0.0, 0.0) and match.overlay == 0.0
    assert match.describe() == "no visible edit"


@SLOW
@given(SEEDS, st.sampled_from(["crop", "logo", "brighter", "different"]))
def test_the_arguments_can_be_swapped(seed, edit):
    a = picture(seed)
    b = {
        "crop": lambda: cropped(a, 0.04, 0.0, 0.06, 0.0),
        "logo": lambda: logo(a),
        "brighter": lambda: ImageEnhance.Brightness(a).enhance(1.15),
        "different": lambda: picture(seed + 1),
    }[edit]()
    one, other = verify(a, b), verify(b, a)
    assert (one is None) == (other is None)
    if one is not None:
        assert one.score == pytest.approx(other.score, abs=1e-9)
        assert one.source == 1 - other.source
        assert one.crop == other.crop
        assert one.marked == (-1 if other.marked < 0 else 1 - other.marked)


@SLOW
@given(SEEDS, st.sampled_from(near.SYMMETRIES), st.booleans())
def test_unchanged_by_the_symmetries_it_claims(seed, symmetry, edited):
    a = picture(seed)
    b = cropped(a, 0.05, 0.0, 0.0, 0.03) if edited else ImageEnhance.Contrast(a).enhance(0.8)
    (ta, sa), (tb, sb) = thumb(a), thumb(b)
    # A flat picture (walls, skies) is never a near copy: not the claim here.
    assume(min(near.luma(ta).std(), near.luma(tb).std()) >= near.FLAT_CONTRAST)
    turned = np.ascontiguousarray(near.symmetric(tb, symmetry))
    turned_shape = sb[::-1] if symmetry[0] % 2 else sb
    plain = near.verify_near(ta, tb, sa, sb, rotate=True, flip=True)
    moved = near.verify_near(ta, turned, sa, turned_shape, rotate=True, flip=True)
    assert plain is not None and moved is not None
    assert moved.score == pytest.approx(plain.score, abs=1e-6)
    assert moved.crop == plain.crop
    assert moved.marked == plain.marked
    assert plain.symmetry == (0, False)
    turns, mirrored = symmetry
    inverse = symmetry if mirrored else (-turns % 4, False)
    assert moved.symmetry == (symmetry if moved.source == 0 else inverse)


def test_a_mirror_image_counts_only_with_flip():
    a = picture(5)
    b = a.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert verify(a, b) is None
    assert verify(a, b, flip=True).symmetry == (0, True)


def test_turns_count_only_with_rotate():
    a = picture(6)
    b = a.transpose(Image.Transpose.ROTATE_90)
    assert verify(a, b, rotate=False) is None
    assert verify(a, b).symmetry == (1, False)


# --- copies found -------------------------------------------------------------------------

EDITS = {
    "crop 6% left, 3% top": lambda a: cropped(a, 0.06, 0.0, 0.03, 0.0),
    "crop 10% every side": lambda a: cropped(a, 0.1, 0.1, 0.1, 0.1),
    "crop of another aspect": lambda a: cropped(a, 0.02, 0.08, 0.0, 0.0),
    "crop, then half size": lambda a: cropped(a, 0.0, 0.07, 0.05, 0.02).resize((186, 140)),
    "logo on 3%": logo,
    "caption band": lambda a: caption(a),
    "brightness +12%": lambda a: ImageEnhance.Brightness(a).enhance(1.12),
    "brightness +30%, clipped": lambda a: ImageEnhance.Brightness(a).enhance(1.3),
    "contrast -20%": lambda a: ImageEnhance.Contrast(a).enhance(0.8),
    "gamma 0.8": lambda a: a.point([round(255 * (v / 255) ** 0.8) for v in range(256)] * 3),
    "crop and logo and darker": lambda a: ImageEnhance.Brightness(
        logo(cropped(a, 0.05, 0.0, 0.0, 0.04), 0.02)
    ).enhance(0.9),
}


def caption(image):
    out = image.copy()
    w, h = out.size
    ImageDraw.Draw(out).rectangle((0, h - int(0.045 * h), w, h), fill=(15, 15, 15))
    return out


@pytest.mark.parametrize("kind", EDITS)
def test_an_edited_copy_is_found_and_described(kind):
    a = picture(11)
    match = verify(a, EDITS[kind](a))
    assert match is not None, kind
    assert match.score <= near.NEAR_MSE
    if kind.startswith("crop"):  # the source shows more; between equals it is either
        assert match.source == 0


def test_the_description_names_the_crop_the_overlay_and_the_tone():
    a = picture(12)
    b = ImageEnhance.Brightness(logo(cropped(a, 0.06, 0.0, 0.03, 0.0), 0.02)).enhance(1.12)
    match = verify(a, b)
    left, right, top, bottom = match.crop
    assert left == pytest.approx(0.06, abs=0.01) and top == pytest.approx(0.03, abs=0.01)
    assert right < 0.005 and bottom < 0.005
    assert 0.005 <= match.overlay <= near.OVERLAY_MAX
    assert match.brightness == pytest.approx(0.12, abs=0.03)
    words = match.describe()
    assert words.startswith("cropped 6% left, 3% top; overlay on ")
    assert "+1" in words and "% brightness" in words


# --- decoys refused -------------------------------------------------------------------


def test_different_pictures_are_refused():
    assert all(verify(picture(seed), picture(seed + 100)) is None for seed in range(4))


def test_flat_images_are_never_near():
    w, h = SIZE
    ramp = np.linspace(0, 20, h)[:, None, None] * np.ones((1, w, 1))
    one = Image.fromarray(np.clip(ramp + (120, 130, 140), 0, 255).astype(np.uint8))
    other = Image.fromarray(np.clip(ramp * 1.5 + (90, 90, 90), 0, 255).astype(np.uint8))
    assert verify(one, other) is None
    assert verify(one, one) is None


@pytest.mark.parametrize("move", [0.004, 0.008, 0.012])
def test_two_shots_of_a_moving_camera_are_refused(move):
    """A burst: one scene, the frame moved, the size kept; not a crop of the other."""
    scene = picture(21, (480, 360))
    dx = round(move * 400)
    first = scene.crop((20, 20, 420, 320))
    second = scene.crop((20 + dx, 20, 420 + dx, 320))
    assert verify(first, second) is None


def test_pictures_sharing_a_big_logo_are_refused():
    a, b = logo(picture(31), 0.1), logo(picture(32), 0.1)
    assert verify(a, b) is None


def test_a_crop_never_enlarges():
    """A copy as large as its source cannot be its crop: two framings of one size differ."""
    a = picture(41, (480, 360))
    b = cropped(a, 0.08, 0.0, 0.08, 0.0).resize((480, 360))
    assert verify(a, b) is None
    assert verify(a, cropped(a, 0.08, 0.0, 0.08, 0.0)) is not None


# --- the search ---------------------------------------------------------------------


def test_find_near_finds_the_copies_and_nothing_else():
    originals = [picture(seed) for seed in (51, 52, 53)]
    files = []
    for k, a in enumerate(originals):
        files += [(k, a), (k, cropped(a, 0.05, 0.0, 0.0, 0.05)), (k, logo(a, 0.01))]
        files.append((k, ImageEnhance.Brightness(a).enhance(1.12).rotate(90, expand=True)))
    files += [(10 + seed, picture(seed)) for seed in (61, 62)]
    tensors = np.stack([images.thumbnail(image) for _, image in files]).astype(np.float32)
    shapes = np.array([image.size for _, image in files])
    i, j, matches = near.find_near(tensors, shapes)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    same = {
        (p, q)
        for p in range(len(files))
        for q in range(p + 1, len(files))
        if files[p][0] == files[q][0]
    }
    originals_with_copies = {(p, q) for p, q in same if p % 4 == 0}
    assert originals_with_copies <= found
    assert found <= same
    assert all(m.score <= near.NEAR_MSE for m in matches)
    candidates = near.near_candidates(near.near_features(tensors))
    assert originals_with_copies <= set(
        zip(candidates.i.tolist(), candidates.j.tolist(), strict=True)
    )


def _all_hints(tensors):
    """Candidates for every ordered pair under every symmetry, at two framings (a full screen)."""
    n = len(tensors)
    rows = [
        (src, other, crop, s)
        for src in range(n)
        for other in range(n)
        if src != other
        for crop in (0, 40)  # no cut; 5% cut from the left and the top
        for s in range(len(near.SYMMETRIES))
    ]
    src, other, crop, symmetry = (np.array(v) for v in zip(*rows, strict=True))
    return near.Candidates(
        i=np.minimum(src, other),
        j=np.maximum(src, other),
        source=src,
        crop=near._FRAMINGS[crop],
        symmetry=symmetry,
        distance=np.zeros(len(src), np.int64),
    )


def test_screening_refuses_only_what_the_verifier_refuses():
    """find_near's batched screen: every pair the verifier accepts passes it, most others do not."""
    a, b = picture(71), picture(72)
    files = [
        a,
        logo(a, 0.02),
        ImageEnhance.Brightness(a).enhance(1.1),
        cropped(a, 0.04, 0.0, 0.03, 0.0),
        a.rotate(90, expand=True),
        b,
        ImageEnhance.Contrast(b).enhance(0.85),
        picture(73),
    ]
    tensors = np.stack([images.thumbnail(image) for image in files]).astype(np.float32)
    shapes = np.array([image.size for image in files])
    candidates = _all_hints(tensors)
    keep = near.screened(tensors, shapes, candidates, chunk=64)
    accepted = np.array(
        [
            near.verify_near(
                tensors[s],
                tensors[o],
                shapes[s],
                shapes[o],
                flip=True,
                hint=(candidates.crop[k], candidates.symmetry[k]),
            )
            is not None
            for k, (s, o) in enumerate(
                zip(
                    candidates.source.tolist(),
                    np.where(
                        candidates.source == candidates.i, candidates.j, candidates.i
                    ).tolist(),
                    strict=True,
                )
            )
        ]
    )
    assert accepted.sum() >= 20
    assert np.all(keep[accepted])
    assert keep.sum() < 0.5 * len(keep)


@pytest.mark.parametrize("seeds", [(81, 82), (83, 83)])
def test_batched_alignment_is_the_verifiers(seeds):
    """_hinted_alignment (many pairs at once) is _alignment pair by pair (a reference)."""
    first = images.thumbnail(picture(seeds[0]))
    second = images.thumbnail(logo(picture(seeds[1]), 0.03))
    tensors = np.stack([first, second]).astype(np.float64)
    crops = np.array([[0.0, 0.0, 0.0, 0.0], [0.001, 0.0, 0.0, 0.0012], [0.05, 0.02, 0.0, 0.07]])
    for s, symmetry in enumerate(near.SYMMETRIES):
        batched = near._hinted_alignment(
            tensors, np.zeros(3, int), np.ones(3, int), np.full(3, s), crops
        )
        seen = near._pooled(near.luma(near.unsymmetric(tensors[1], symmetry)))
        reference = near._alignment(near.luma(tensors[0]), seen, crops)
        assert np.allclose(batched, reference, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [91, 92, 93])
def test_alignment_floor_is_below_every_framing_it_covers(seed):
    """The screen's floor never exceeds the alignment of any framing the verifier would try."""
    source = picture(seed, (800, 600))
    copies = [logo(source, 0.03), picture(seed + 10, (800, 600)), source.rotate(180)]
    tensors = np.stack([images.thumbnail(image) for image in [source, *copies]]).astype(np.float64)
    limits = (1.0 / 800, 1.0 / 600)
    crops = np.unique(near._feasible(near._FRAMINGS.astype(np.float64), limits), axis=0)
    spread = near._framing_spreads(tensors, np.array([0]), crops, chunk=64)
    for other in (1, 2, 3):
        for s, symmetry in enumerate(near.SYMMETRIES):
            floor = near._alignment_floor(
                tensors, np.array([0]), np.array([other]), np.array([s]), spread[[0]]
            )
            seen = near._pooled(near.luma(near.unsymmetric(tensors[other], symmetry)))
            best = near._alignment(near.luma(tensors[0]), seen, crops).min()
            assert floor[0] <= best + 1e-12


# ---------------------------------------------------------------- search(similarity="near")


@pytest.fixture
def edited(tmp_path):
    """A photo, a crop of it, a copy with a date stamp, a brighter copy, and another photo."""
    folder = tmp_path / "pics"
    original = images.save_photo(5, folder / "orig.jpg", 400, 300, quality=98)  # largest file
    with Image.open(original) as image:
        w, h = image.size
        crop = images.save(image.crop((20, 15, w - 10, h - 12)), folder / "crop.jpg", quality=92)
        stamped = image.copy()
    ImageDraw.Draw(stamped).rectangle((300, 260, 390, 290), fill=(255, 140, 0))
    stamp = images.save(stamped, folder / "stamp.jpg", quality=92)
    with Image.open(original) as image:
        brighter = ImageEnhance.Brightness(image).enhance(1.12)
        bright = images.save(brighter, folder / "bright.jpg", quality=90)
    other = images.save_photo(6, folder / "other.jpg", 400, 300)
    return folder, original, {"crop": crop, "stamp": stamp, "bright": bright}, other


def test_near_finds_edited_copies_that_similar_misses(edited):
    folder, original, copies, other = edited
    dif = fastdif.build(str(folder), show_progress=False, processes=1)
    similar = fastdif.search(dif, similarity="similar", show_progress=False, processes=1)
    assert not any(copies["crop"] in [m for m, _ in ms] for ms in similar.result.values())
    se = fastdif.search(dif, similarity="near", show_progress=False, processes=1)
    assert list(se.result) == [original]  # the largest file with the most pixels is kept
    members = dict(se.result[original])
    assert set(members) == set(copies.values()) and other not in members
    transforms = se.stats["process"]["search"]["transforms"]
    assert transforms[copies["crop"]].startswith("cropped ")
    assert all(0 <= score <= near.NEAR_MSE for score in members.values())
    assert se.stats["process"]["search"]["near"]["threshold"] == near.NEAR_MSE
    assert sorted(se.lower_quality) == sorted(copies.values())


def test_near_copies_are_checked_again_before_they_move(edited, tmp_path):
    folder, original, copies, _ = edited
    dif = fastdif.build(str(folder), show_progress=False, processes=1)
    se = fastdif.search(dif, similarity="near", show_progress=False, processes=1)
    moved = se.move_to(tmp_path / "moved")
    assert moved["failed"] == {} and sorted(moved["moved"]) == sorted(copies.values())
    assert os.path.exists(original)


def test_a_larger_original_is_never_removed_as_the_copy_of_its_crop(edited, tmp_path):
    folder, original, copies, _ = edited
    dif = fastdif.build(str(folder), show_progress=False, processes=1)
    se = fastdif.search(dif, similarity="near", show_progress=False, processes=1)
    # An edited result: the crop as the key, the original as its member.
    se.result = {copies["crop"]: [[original, 1.0]]}
    se.lower_quality = [original]
    report = se.delete(silent_del=True)
    assert report["deleted"] == [] and "more pixels" in report["failed"][original]
    assert os.path.exists(original)


def test_near_on_the_command_line(edited, tmp_path, capsys):
    folder, original, copies, _ = edited
    out = tmp_path / "out"
    args = [str(folder), "-Z", str(out), "-s", "near", "-p", "false", "--format", "csv"]
    assert main(args) == 0
    (name,) = [n for n in os.listdir(out) if n.endswith("_results.csv")]
    rows = {r["path"]: r for r in csv.DictReader((out / name).open())}
    assert rows[copies["crop"]]["transform"].startswith("cropped ")
