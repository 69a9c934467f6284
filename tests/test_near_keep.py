"""What a near search keeps: the most pixels of content, then no overlay; and what it says.

The keep steps (fastdif.engine.keep) on made-up facts, which image of a
near pair bears an overlay (NearMatch.marked), the match said of the copy
(NearMatch.as_copy), and, end to end, the key of a group with a logo copy
(of the original's size, a larger file) and a crop, and the refusals of a
move or delete whose key is the crop or the marked copy.
"""

import os

import images
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageEnhance

import fastdif
from fastdif.engine import near
from fastdif.engine.keep import Facts, choose
from fastdif.params import check_keep

SIZE = (400, 300)


def picture(seed: int) -> Image.Image:
    """A test photo with a typical photo's contrast (luma deviation about 45)."""
    pixels = images.photo(seed, *SIZE).astype(np.float64)
    luma = pixels @ [0.299, 0.587, 0.114]
    pixels = (pixels - pixels.mean()) * 45 / luma.std() + 128
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def with_logo(image: Image.Image) -> Image.Image:
    """A red plate with a white disc on 3% of the area, lower right."""
    out = image.copy()
    w, h = out.size
    box = (w - 95, h - 67, w - 8, h - 8)
    draw = ImageDraw.Draw(out)
    draw.rectangle(box, fill=(200, 30, 30))
    draw.ellipse((box[0] + 4, box[1] + 4, box[0] + 55, box[3] - 4), fill="white")
    return out


def crop(image: Image.Image) -> Image.Image:
    """6% cut from the left and 5% from the top."""
    w, h = image.size
    return image.crop((24, 15, w, h))


def verify(a: Image.Image, b: Image.Image) -> near.NearMatch | None:
    ta, tb = images.thumbnail(a), images.thumbnail(b)
    return near.verify_near(ta, tb, a.size, b.size)


# --- the keep steps ---------------------------------------------------------------------


def facts(**kw) -> Facts:
    return Facts(**{"width": 400, "height": 300, "size": 1000, **kw})


def test_the_most_pixels_then_no_overlay_before_the_rule():
    rule = check_keep("prefer:mine")
    mine = ("mine",)
    small = facts(width=200, height=150, folders=mine, edited=True)
    marked = facts(marked=True, edited=True, size=9000, folders=mine)
    assert choose(rule, [small, facts()]) == (1, "kept: larger (400 x 300 vs 200 x 150)")
    assert choose(rule, [marked, facts(edited=True)]) == (
        1,
        "kept: no overlay (the other bears one)",
    )


def test_without_an_edit_the_rule_decides_as_before():
    rule = check_keep("size")
    small_big_file = facts(width=200, height=150, size=9000)
    assert choose(rule, [facts(), small_big_file]) == (
        1,
        "kept: larger file (9,000 vs 1,000 bytes)",
    )


# --- which image bears the overlay ---------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_marked_names_the_image_bearing_the_overlay_either_way(seed):
    a = picture(seed)
    b = with_logo(a)
    one, other = verify(a, b), verify(b, a)
    assert one is not None and other is not None
    assert (one.marked, other.marked) == (1, 0)
    assert one.refusal(0) == "its key bears an overlay it has not"
    assert one.refusal(1) is None


@pytest.mark.parametrize("seed", [1, 2])
def test_no_image_is_marked_by_a_crop_or_a_tone_edit(seed):
    a = picture(seed)
    for b in (crop(a), ImageEnhance.Brightness(a).enhance(1.12)):
        match = verify(a, b)
        assert match is not None and match.marked == -1


def test_a_tone_edit_is_said_of_the_copy():
    a = picture(5)
    brighter = ImageEnhance.Brightness(a).enhance(1.15)
    for match, member in ((verify(a, brighter), 1), (verify(brighter, a), 0)):
        said = match.as_copy(member)
        assert said.brightness > 0.08 and "+" in said.describe()
        assert match.as_copy(1 - member).brightness < -0.08
        assert said.as_copy(member).brightness == pytest.approx(said.brightness)


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture
def marked_set(tmp_path):
    """An original (a smaller file than its logo copy, of one size) and a crop."""
    folder = tmp_path / "pics"
    folder.mkdir()
    a = picture(7)
    original = images.save(a, folder / "a_original.jpg", quality=75)
    logo = images.save(with_logo(a), folder / "b_logo.jpg", quality=97)
    cut = images.save(crop(a), folder / "c_crop.jpg", quality=97)
    assert os.path.getsize(original) < os.path.getsize(logo)
    return folder, original, logo, cut


def test_the_original_is_kept_over_a_marked_copy_and_a_crop(marked_set):
    folder, original, logo, cut = marked_set
    dif = fastdif.build(str(folder), show_progress=False, processes=1)
    se = fastdif.search(dif, similarity="near", show_progress=False, processes=1)
    assert list(se.result) == [original]
    assert sorted(se.lower_quality) == sorted([logo, cut])
    reason = se.stats["process"]["search"]["keep"]["reasons"][original]
    assert reason == "kept: no overlay (the other bears one)"
    transforms = se.stats["process"]["search"]["transforms"]
    assert "overlay" in transforms[logo] and transforms[cut].startswith("cropped ")


@pytest.mark.parametrize("key", ["logo", "crop"])
def test_the_original_is_never_removed_for_its_marked_or_cropped_copy(marked_set, key):
    folder, original, logo, cut = marked_set
    dif = fastdif.build(str(folder), show_progress=False, processes=1)
    se = fastdif.search(dif, similarity="near", show_progress=False, processes=1)
    chosen = {"logo": logo, "crop": cut}[key]
    se.result = {chosen: [[original, 1.0]]}  # an edited result
    se.lower_quality = [original]
    report = se.delete(silent_del=True)
    assert report["deleted"] == [] and os.path.exists(original)
    assert {"logo": "overlay", "crop": "more pixels"}[key] in report["failed"][original]


def test_a_crop_is_not_kept_over_its_original_whatever_the_rule(tmp_path):
    a = picture(8)
    original = images.save(a, tmp_path / "photos" / "a.jpg", quality=80)
    cut = images.save(crop(a), tmp_path / "mine" / "a_crop.jpg", quality=97)
    dif = fastdif.build(str(tmp_path), show_progress=False, processes=1)
    se = fastdif.search(
        dif, similarity="near", keep="prefer:mine", show_progress=False, processes=1
    )
    assert list(se.result) == [original] and se.lower_quality == [cut]
    reason = se.stats["process"]["search"]["keep"]["reasons"][original]
    assert reason.startswith("kept: larger (400 x 300 vs ")
    similar = fastdif.search(dif, keep="prefer:mine", show_progress=False, processes=1)
    assert similar.result == {}  # "similar" does not see the crop


# --- against a library ---------------------------------------------------------------------


@pytest.mark.parametrize("within_new", [True, False])
def test_near_copies_of_library_images_are_found_and_moved(tmp_path, within_new):
    library, new = tmp_path / "library", tmp_path / "new"
    a, b = picture(9), picture(10)
    original = images.save(a, library / "a.jpg", quality=90)
    cut = images.save(crop(a), new / "a_crop.jpg")
    logo = images.save(with_logo(a), new / "a_logo.jpg")
    b_original = images.save(b, new / "b.jpg", quality=90)
    b_logo = images.save(with_logo(b), new / "b_logo.jpg")
    dif = fastdif.build(str(new), reference=str(library), show_progress=False, processes=1)
    se = fastdif.search(
        dif, similarity="near", within_new=within_new, show_progress=False, processes=1
    )
    expected = {original: {cut, logo}}
    if within_new:  # the new photo with its own logo copy: unmarked kept
        expected[b_original] = {b_logo}
    assert {k: {m for m, _ in ms} for k, ms in se.result.items()} == expected
    reasons = se.stats["process"]["search"]["keep"]["reasons"]
    assert reasons[original] == "kept: library image"
    listed = list(se.lower_quality)
    moved = se.move_to(str(tmp_path / "moved"))
    assert moved["failed"] == {} and sorted(moved["moved"]) == sorted(listed)
    assert not any(os.path.exists(p) for p in listed)
    assert os.path.exists(original) and os.path.exists(b_original)


@given(st.integers(0, 5), st.integers(0, 5), st.data())
def test_rows_read_as_the_concatenation(n_first, n_second, data):
    from fastdif.pipelines.search import _Rows

    rng = np.random.default_rng(n_first * 7 + n_second)
    first = rng.random((n_first, 2, 2, 3)).astype(np.float32)
    second = rng.integers(0, 255, (n_second, 2, 2, 3)).astype(np.uint8)
    whole = np.concatenate([first, second.astype(np.float32)])
    rows = _Rows(first, second)
    assert len(rows) == len(whole) and rows.shape == whole.shape
    if len(whole):
        index = data.draw(st.lists(st.integers(0, len(whole) - 1), max_size=8))
        assert np.array_equal(rows[np.array(index, np.int64)], whole[index])
        k = data.draw(st.integers(-len(whole), len(whole) - 1))
        assert np.array_equal(rows[k], whole[k])
    assert np.array_equal(rows[1:4], whole[1:4])


# --- progress and interrupts -----------------------------------------------------------------


def test_find_near_reports_its_progress(marked_set):
    folder, *_ = marked_set
    dif = fastdif.build(str(folder), show_progress=False, processes=1)
    calls = []
    i, _, _ = near.find_near(
        np.asarray(dif.tensors),
        dif.shapes,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert len(i) == 2 and calls[0][0] == 0 and calls[-1][0] == calls[-1][1] > 0
    assert all(a[0] <= b[0] and a[1] == b[1] for a, b in zip(calls, calls[1:], strict=False))


def test_a_near_search_shows_its_progress_and_stops_on_ctrl_c(marked_set, monkeypatch):
    import signal

    from fastdif.pipelines import search as pipeline

    folder, *_ = marked_set
    dif = fastdif.build(str(folder), show_progress=False, processes=1)
    opened = []
    real_bar, real_find = pipeline.progress_bar, pipeline.find_near

    def bar(total, description, unit, show, done=0):
        opened.append((description, total, show))
        return real_bar(total, description, unit, show, done)

    monkeypatch.setattr(pipeline, "progress_bar", bar)
    fastdif.search(dif, similarity="near", show_progress=False, processes=1)
    assert ("Near copies", 2, False) in opened  # the two candidates screened in

    def interrupted(*args, progress, **kwargs):
        def ctrl_c(done, total):
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C while the near copies are verified
            progress(done, total)

        return real_find(*args, progress=ctrl_c, **kwargs)

    monkeypatch.setattr(pipeline, "find_near", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fastdif.search(dif, similarity="near", show_progress=False, processes=1)
