"""The benchmarks' shared parts: the one copy maker, the studies' table writer, modes' speed.

The benchmarks themselves are measured, not tested; these parts are what
every generated set and every study table is made with.
"""

import numpy as np
import pytest
from PIL import Image

from benchmarks.data import copies, modes_set, photos, small_files, textures
from benchmarks.studies import modes, tables
from benchmarks.studies import near as near_study


@pytest.fixture
def original(tmp_path):
    """A photo-like JPEG of 120 x 90."""
    path = str(tmp_path / "original.jpg")
    photos.photo(np.random.default_rng(0), (120, 90)).save(path, quality=90)
    return path


@pytest.mark.parametrize(
    "table",
    [photos.COPIES, textures.COPIES, modes_set.COPIES],
    ids=["photos", "textures", "modes"],
)
def test_every_kind_of_copy_is_written_alike_from_one_seed(tmp_path, original, table):
    for kind, how in table.items():
        made = [
            copies.write_copy(
                original, str(tmp_path / f"{k}-{kind}"), how, np.random.default_rng(1)
            )
            for k in range(2)
        ]
        first, second = (open(path, "rb").read() for path in made)
        assert first == second, kind
        with Image.open(made[0]) as image:
            image.load()
        if how is copies.EXACT:
            assert first == open(original, "rb").read()


def test_lossless_copies_keep_the_decoded_pixels(tmp_path, original):
    decoded = np.asarray(copies.decode(original))
    for kind in textures.LOSSLESS_KINDS:
        path = copies.write_copy(
            original, str(tmp_path / kind), textures.COPIES[kind], np.random.default_rng(0)
        )
        assert np.array_equal(np.asarray(copies.decode(path)), decoded), kind


def test_a_copy_of_a_decoded_image_needs_no_file(tmp_path):
    image = Image.fromarray(np.full((40, 60, 3), 128, np.uint8))
    how = copies.recipe(copies.png(3), copies.turned(1))
    path = copies.write_copy(None, str(tmp_path / "turned"), how, np.random.default_rng(0), image)
    assert path.endswith(".png")
    with Image.open(path) as turned:
        assert turned.size == (40, 60)


def test_small_files_near_copies_keep_their_original_format_unless_reencoded():
    for index in range(1, 400):
        source, kind = small_files._plan(0, index)
        if source is not None:
            _, ext = small_files._near_copy(0, index, source, kind)
            assert small_files._relative(0, index).endswith(ext)


def test_the_kinds_table_counts_copies_found_per_kind_then_the_extra_rows():
    results = {
        "a": {"pairs_found_by_kind": {"exact": 2}, "pairs_by_kind": {"exact": 2, "png": 3}, "n": 5}
    }
    text = tables.kinds_table(results, ["exact", "png"], {"n": lambda r: str(r["n"])}, str.upper)
    assert text.splitlines() == [
        "| copy kind | a |",
        "|---|---:|",
        "| EXACT | 2 / 2 |",
        "| PNG | 0 / 3 |",
        "| n | 5 |",
    ]


@pytest.mark.parametrize("shapes", ["one", "mixed"])
def test_near_speed_times_each_stage(monkeypatch, shapes):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (60, 50, 50, 3)).astype(np.float64)
    # Smooth pictures (flat ones are never searched), each twice: near copies to find.
    smooth = np.cumsum(np.cumsum(base - 127.5, axis=1), axis=2)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    thumbnails = np.concatenate([smooth, smooth]).astype(np.uint8)
    monkeypatch.setattr(near_study, "photo_thumbnails", lambda n: thumbnails[:n])
    (row,) = near_study.speed((120,), 1, shapes, 1).values()
    assert set(row) == {"features", "candidates", "verify", "candidates_count", "verified", "found"}
    assert row["found"] > 0 and row["verify"] > 0 and row["verified"] >= row["found"]


def test_speed_times_the_chosen_modes_against_plain_at_each_similarity(monkeypatch):
    thumbnails = np.random.default_rng(0).integers(0, 256, (80, 50, 50, 3), dtype=np.uint8)
    monkeypatch.setattr(modes, "photo_thumbnails", lambda n: thumbnails[:n])
    results = modes.speed((80,), 1, 1, ("similar", "duplicates"), ["flip=True"])
    assert list(results) == ["80 similar", "80 duplicates"]
    for row in results.values():
        assert list(row) == ["plain", "flip=True"]
        assert row["plain"]["ratio"] == 1.0
        assert row["flip=True"]["seconds"] > 0
    assert "| 80 | duplicates | " in modes.speed_markdown(results)


def test_a_ratio_over_its_limit_is_measured_again_before_it_fails():
    from benchmarks import regression

    later = iter([2.5, 0.9, 5.0])
    # Over the limit once (a burst of load): measured again, and the best passes.
    assert regression.checked(lambda: next(later), 1.0, 3.0) == [3.0, 2.5, 0.9]
    # Within it: measured once.
    assert regression.checked(lambda: 9.0, 1.0, 0.5) == [0.5]
    # Over it every time: regression.TRIES measurements, then it fails.
    tries = regression.checked(lambda: 4.0, 1.0, 3.0)
    assert len(tries) == regression.TRIES and min(tries) > 1.0
