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


def test_features_are_twelve_bytes_per_image_and_a_function_of_the_thumbnail():
    tensors = np.stack([images.thumbnail(picture(seed)) for seed in range(3)]).astype(np.uint8)
    features = near.near_features(tensors)
    assert features.hashes.dtype == np.uint64 and features.hashes.shape == (3,)
    assert features.contrast.dtype == np.float32
    again = near.near_features(tensors.astype(np.float32), chunk=1)
    assert np.array_equal(features.hashes, again.hashes)


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
    candidates = near.near_candidates(tensors, near.near_features(tensors))
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


def test_near_on_the_command_line_and_not_with_a_library(edited, tmp_path, capsys):
    folder, original, copies, _ = edited
    out = tmp_path / "out"
    args = [str(folder), "-Z", str(out), "-s", "near", "-p", "false", "--format", "csv"]
    assert main(args) == 0
    (name,) = [n for n in os.listdir(out) if n.endswith("_results.csv")]
    rows = {r["path"]: r for r in csv.DictReader((out / name).open())}
    assert rows[copies["crop"]]["transform"].startswith("cropped ")
    dif = fastdif.build(str(folder), reference=str(tmp_path / "out"), show_progress=False)
    with pytest.raises(ValueError, match="near"):
        fastdif.search(dif, similarity="near", show_progress=False)
