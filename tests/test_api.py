"""End-to-end tests: real image files in tmp_path -> fastdif.build -> fastdif.search."""

import json
import os
from pathlib import Path

import images
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import fastdif
from fastdif import params
from fastdif.engine import matching as search_module

# --------------------------------------------------------------------------- matching


def test_exact_byte_copies_are_duplicates_with_mse_zero(tmp_path, find):
    a = images.save_photo(1, tmp_path / "a.jpg")
    a_copy = images.copy_bytes(a, tmp_path / "a_copy.jpg")
    b = images.save_photo(2, tmp_path / "b.png")
    b_copy = images.copy_bytes(b, tmp_path / "sub" / "b.png")
    images.save_photo(3, tmp_path / "c.jpg")

    se = find(tmp_path, similarity="duplicates")

    assert se.result == {a: [[a_copy, 0.0]], b: [[b_copy, 0.0]]}
    assert sorted(se.lower_quality) == sorted([a_copy, b_copy])
    assert se.stats["process"]["search"]["matches_found"] == {"duplicates": 2, "similar": 0}


def test_png_copy_of_small_jpeg_is_a_duplicate(tmp_path, find):
    jpg = images.save_photo(4, tmp_path / "small.jpg", 160, 120)
    png = str(tmp_path / "small.png")
    with Image.open(jpg) as image:
        image.save(png)

    se = find(tmp_path, similarity="duplicates", rotate=False)

    assert se.result in ({png: [[jpg, 0.0]]}, {jpg: [[png, 0.0]]})


def test_reencoded_jpeg_is_similar_but_not_duplicate(tmp_path, find):
    original = images.save_photo(5, tmp_path / "a.jpg", quality=95)
    reencoded = images.reencode(original, tmp_path / "b.jpg", quality=85)
    images.save_photo(6, tmp_path / "other.jpg")

    assert find(tmp_path, similarity="duplicates").result == {}
    similar = find(tmp_path, similarity="similar")
    assert list(similar.result) == [original]  # same size, the q95 file is larger
    [[path, mse]] = similar.result[original]
    assert path == reencoded
    assert 0.0 < mse <= 5.0
    assert similar.lower_quality == [reencoded]
    assert similar.stats["process"]["search"]["matches_found"] == {"duplicates": 0, "similar": 1}


@pytest.mark.parametrize("angle", [90, 180, 270])
@pytest.mark.parametrize("rotated_first", [False, True])
def test_rotated_copy_found_only_with_rotate(tmp_path, find, groups, angle, rotated_first):
    # File order decides which image of a pair the search rotates: try both.
    names = (
        ("b_original.png", "a_rotated.png") if rotated_first else ("a_original.png", "b_rot.png")
    )
    original = images.save_photo(7, tmp_path / names[0])
    copy = images.rotated(original, tmp_path / names[1], angle)
    images.save_photo(8, tmp_path / "z_other.png")

    found = find(tmp_path, similarity="similar", rotate=True)
    assert groups(found.result) == {frozenset([original, copy])}
    [[_, mse]] = next(iter(found.result.values()))
    assert mse <= 5.0

    assert find(tmp_path, similarity="similar", rotate=False).result == {}


def test_downscaled_copy_found_only_without_same_dim(tmp_path, find):
    original = images.save_photo(9, tmp_path / "full.png")
    half = images.resized(original, tmp_path / "half.png", 0.5)
    images.save_photo(10, tmp_path / "other.png")

    assert find(tmp_path, similarity="similar", same_dim=True).result == {}
    se = find(tmp_path, similarity="similar", same_dim=False)
    assert list(se.result) == [original]  # the larger picture is the key
    [[path, mse]] = se.result[original]
    assert path == half and 0.0 < mse <= 5.0
    assert se.lower_quality == [half]


def test_distinct_images_are_never_grouped(tmp_path, find):
    for seed in range(12):
        images.save_photo(100 + seed, tmp_path / f"p{seed:02d}.jpg")
        images.save_photo(200 + seed, tmp_path / f"q{seed:02d}.png", 150, 200)

    for similarity in ("duplicates", "similar", 50):
        se = find(tmp_path, similarity=similarity, rotate=True, same_dim=False)
        assert se.result == {}
        assert se.lower_quality == []
        assert se.stats["process"]["search"]["matches_found"] == {"duplicates": 0, "similar": 0}


def test_uniform_offset_of_16_is_mse_256_not_a_duplicate(tmp_path, find):
    # difPy 4.2.1 squares uint8 differences, so 16**2 wraps to 0 and this pair
    # would be called identical. The true MSE is 256.
    base = images.photo(11)  # values in 20..230: +16 never clips
    a = images.save(base, tmp_path / "a.png")
    b = images.save(base + np.uint8(16), tmp_path / "b.png")

    assert find(tmp_path, similarity="duplicates").result == {}
    assert find(tmp_path, similarity="similar").result == {}
    assert find(tmp_path, similarity=255.9, rotate=False).result == {}
    se = find(tmp_path, similarity=256, rotate=False)
    assert groups_with_mse(se.result) == {frozenset([a, b]): [256.0]}


def groups_with_mse(result):
    return {
        frozenset([key, *(p for p, _ in members)]): [m for _, m in members]
        for key, members in result.items()
    }


# --------------------------------------------------------------------------- result shapes


def make_mixed_set(root):
    """Groups a (byte copy + re-encode), b (rotated), c (half size); distinct d*; a broken file."""
    paths = {}
    paths["a"] = images.save_photo(20, root / "a.jpg")
    paths["a_copy"] = images.copy_bytes(paths["a"], root / "sub" / "a_copy.jpg")
    paths["a_q85"] = images.reencode(paths["a"], root / "a_q85.jpg", 85)
    paths["b"] = images.save_photo(21, root / "b.png")
    paths["b_r90"] = images.rotated(paths["b"], root / "sub" / "b_r90.png", 90)
    paths["c"] = images.save_photo(22, root / "c.png", 320, 240)
    paths["c_half"] = images.resized(paths["c"], root / "c_half.png", 0.5)
    for seed in range(4):
        paths[f"d{seed}"] = images.save_photo(30 + seed, root / "sub" / f"d{seed}.jpg")
    (root / "broken.jpg").write_text("not an image")
    return paths


def test_result_lower_quality_and_stats_have_difpy_shapes(tmp_path, find):
    p = make_mixed_set(tmp_path)
    se = find(tmp_path, similarity="similar", same_dim=False)

    assert isinstance(se.result, dict)
    members = set()
    for key, entries in se.result.items():
        assert isinstance(key, str)
        assert isinstance(entries, list) and entries
        for entry in entries:
            assert isinstance(entry, list) and len(entry) == 2
            path, mse = entry
            assert isinstance(path, str) and type(mse) is float
            assert path != key
            members.add(path)
    assert {frozenset([k, *(e[0] for e in v)]) for k, v in se.result.items()} == {
        frozenset([p["a"], p["a_copy"], p["a_q85"]]),
        frozenset([p["b"], p["b_r90"]]),
        frozenset([p["c"], p["c_half"]]),
    }
    # Every non-key member, once; no key is lower quality.
    assert sorted(se.lower_quality) == sorted(members)
    assert len(se.lower_quality) == len(set(se.lower_quality)) == 4
    assert not set(se.lower_quality) & set(se.result)
    assert p["c"] in se.result  # 320x240 beats 160x120

    stats = se.stats
    json.dumps(stats)
    json.dumps(se.result)
    assert stats["directory"] == [str(tmp_path)]
    assert stats["total_files"] == 12
    assert stats["invalid_files"]["count"] == 1
    assert list(stats["invalid_files"]["logs"]) == [str(tmp_path / "broken.jpg")]
    build_stats = stats["process"]["build"]
    assert set(build_stats["duration"]) >= {"start", "end", "seconds_elapsed"}
    assert build_stats["parameters"]["px_size"] == 50
    search_stats = stats["process"]["search"]
    assert set(search_stats["duration"]) >= {"start", "end", "seconds_elapsed"}
    assert search_stats["duration"]["seconds_elapsed"] >= 0
    assert search_stats["parameters"] == {
        "similarity_mse": 5.0,
        "rotate": True,
        "same_dim": False,
        "flip": False,
        "color": True,
        "normalize": False,
        "processes": 1,
        "chunksize": None,
    }
    assert search_stats["files_searched"] == 11
    # The byte copy and the lossless rotation are duplicates: the area filter
    # commutes with rotation, so b_r90's thumbnail is b's, rotated, exactly.
    assert search_stats["matches_found"] == {"duplicates": 2, "similar": 2}


def test_key_is_largest_area_not_largest_width_plus_height(tmp_path, find):
    picture = images.photo_image(40)
    # 180x180 has the larger area (32400 > 30600) but the smaller width+height
    # (360 < 430) and the smaller file.
    square = images.save(
        picture.resize((180, 180), Image.Resampling.LANCZOS),
        tmp_path / "b_sq.png",
        compress_level=9,
    )
    wide = images.save(
        picture.resize((340, 90), Image.Resampling.LANCZOS),
        tmp_path / "a_wide.png",
        compress_level=0,
    )
    assert os.path.getsize(wide) > os.path.getsize(square)

    se = find(tmp_path, similarity="similar", same_dim=False)

    assert list(se.result) == [square]
    assert [path for path, _ in se.result[square]] == [wide]
    assert se.lower_quality == [wide]


def test_key_is_larger_file_when_dimensions_tie(tmp_path, find):
    pixels = images.photo(41)
    small_file = images.save(pixels, tmp_path / "a.png", compress_level=9)
    big_file = images.save(pixels, tmp_path / "z.png", compress_level=0)

    se = find(tmp_path, similarity="duplicates")

    assert se.result == {big_file: [[small_file, 0.0]]}
    assert se.lower_quality == [small_file]


def test_key_is_first_path_when_files_are_identical(tmp_path, find):
    # Created in reverse order: the key follows path order, not creation order.
    c = images.save_photo(42, tmp_path / "c.png")
    b = images.copy_bytes(c, tmp_path / "b.png")
    a = images.copy_bytes(c, tmp_path / "a.png")

    se = find(tmp_path, similarity="duplicates")

    assert se.result == {a: [[b, 0.0], [c, 0.0]]}
    assert se.lower_quality == [b, c]


def test_a_member_linked_to_the_key_only_through_another_is_listed_apart(tmp_path, find):
    """Groups are connected sets of matches; ``result`` and ``lower_quality`` hold only
    members within the threshold of the key, so every one passes the move's re-check."""
    base = images.photo(43)
    # MSE(a, b) = MSE(b, c) = 4 <= 5 but MSE(a, c) = 16: one group, c chained through b.
    a = images.save(base, tmp_path / "a.png", compress_level=0)  # largest file: the key
    b = images.save(base + np.uint8(2), tmp_path / "b.png", compress_level=9)
    c = images.save(base + np.uint8(4), tmp_path / "c.png", compress_level=9)

    se = find(tmp_path, similarity="similar", rotate=False)

    assert se.result == {a: [[b, 4.0]]}
    assert se.lower_quality == [b]
    assert se.stats["process"]["search"]["chained"] == {c: {"key": a, "through": b, "mse": 16.0}}
    assert se.stats["process"]["search"]["matches_found"] == {"duplicates": 0, "similar": 1}
    moved = se.move_to(tmp_path / "moved")
    assert list(moved["moved"]) == [b] and moved["failed"] == {}
    assert os.path.exists(c)


def test_many_copies_form_one_group(tmp_path, find):
    # More matches per image than the kernel stores in its first pass.
    original = images.save_photo(44, tmp_path / "c00.png")
    copies = [images.copy_bytes(original, tmp_path / f"c{k:02d}.png") for k in range(1, 21)]
    images.save_photo(45, tmp_path / "z.png")

    se = find(tmp_path, similarity="duplicates")

    assert se.result == {original: [[path, 0.0] for path in copies]}
    assert se.lower_quality == copies


# --------------------------------------------------------------------------- inputs


def test_in_folder_subfolders_never_matches_across_folders(tmp_path, find):
    x, y, z = tmp_path / "x", tmp_path / "y", tmp_path / "z"
    xa = images.save_photo(50, x / "a.png")
    xa2 = images.copy_bytes(xa, x / "a2.png")
    ya = images.copy_bytes(xa, y / "a.png")  # duplicate of x/a.png, other folder
    yb = images.save_photo(51, y / "b.png")
    yb_jpg = images.save_photo(51, y / "b.jpg")
    yb_q85 = images.reencode(yb_jpg, y / "b_q85.jpg")
    images.save_photo(52, z / "lonely.png")
    zb = images.copy_bytes(yb, z / "b.png")  # duplicate of y/b.png, other folder

    se = find(tmp_path, similarity="similar", in_folder="subfolders")

    assert set(se.result) == {str(x), str(y)}
    assert se.result[str(x)] == {xa: [[xa2, 0.0]]}
    assert list(se.result[str(y)]) == [yb]  # the PNG is the largest file
    assert [path for path, _ in se.result[str(y)][yb]] == [yb_jpg, yb_q85]
    assert sorted(se.lower_quality) == sorted([xa2, yb_jpg, yb_q85])
    json.dumps(se.result)
    # in_folder=True, difPy's: each input on its own; x, y and z given, the same groups.
    assert find(x, y, z, similarity="similar", in_folder=True).result == se.result

    union = find(tmp_path, similarity="duplicates")
    assert union.result == {xa: [[xa2, 0.0], [ya, 0.0]], yb: [[zb, 0.0]]}


def test_recursive_false_ignores_sub_folders(tmp_path, find):
    a = images.save_photo(53, tmp_path / "a.png")
    images.copy_bytes(a, tmp_path / "sub" / "a.png")
    images.save_photo(54, tmp_path / "b.png")

    flat = find(tmp_path, recursive=False)
    assert flat.result == {}
    assert flat.stats["process"]["search"]["files_searched"] == 2
    assert flat.stats["total_files"] == 2

    deep = find(tmp_path, recursive=True)
    assert deep.result == {a: [[str(tmp_path / "sub" / "a.png"), 0.0]]}


def test_single_files_lists_and_pathlib_inputs(tmp_path, find):
    a = images.save_photo(55, tmp_path / "x" / "a.png")
    b = images.copy_bytes(a, tmp_path / "y" / "b.png")
    c = images.copy_bytes(a, tmp_path / "z" / "c.png")
    expected = {a: [[b, 0.0]]}

    assert find(a, b).result == expected
    assert find([a, b]).result == expected
    assert find(Path(a), Path(b)).result == expected
    assert find([Path(a)], b).result == expected
    assert find(Path(tmp_path / "x"), [Path(tmp_path / "y")]).result == expected
    assert find(Path(tmp_path / "x"), tmp_path / "y", c).result == {a: [[b, 0.0], [c, 0.0]]}
    # A single file alone: nothing to compare, no error.
    single = find(Path(a))
    assert single.result == {} and single.stats["process"]["search"]["files_searched"] == 1


def test_overlapping_inputs_count_a_file_once(tmp_path, find):
    a = images.save_photo(56, tmp_path / "a.png")
    images.save_photo(57, tmp_path / "sub" / "b.png")
    b_copy = images.copy_bytes(tmp_path / "sub" / "b.png", tmp_path / "b_copy.png")

    for inputs in [(tmp_path, a), (a, tmp_path), (tmp_path, tmp_path / "sub"), ([tmp_path, a],)]:
        se = find(*inputs, similarity="duplicates")
        assert se.stats["process"]["search"]["files_searched"] == 3, inputs
        assert se.stats["total_files"] == 3
        # a.png is never its own duplicate; the real pair is still found.
        assert se.result == {b_copy: [[str(tmp_path / "sub" / "b.png"), 0.0]]}


def test_absolute_and_relative_inputs_can_be_mixed(tmp_path, find, monkeypatch):
    a = images.save_photo(58, tmp_path / "x" / "a.png")
    b = images.copy_bytes(a, tmp_path / "y" / "b.png")
    monkeypatch.chdir(tmp_path)

    se = find(str(tmp_path / "x"), "y")

    assert groups_of_paths(se.result) == {frozenset([os.path.realpath(a), os.path.realpath(b)])}


@pytest.mark.parametrize("in_folder", [True, "subfolders"])
def test_in_folder_groups_by_folder_not_by_how_its_path_is_spelled(
    tmp_path, find, monkeypatch, in_folder
):
    # The folder y given as "y" and one of its files as "./y/b.png": both files
    # are in one folder, so with in_folder they must still be compared.
    a = images.save_photo(59, tmp_path / "y" / "a.png")
    b = images.copy_bytes(a, tmp_path / "y" / "b.png")
    monkeypatch.chdir(tmp_path)

    se = find("y", os.path.join(".", "y", "b.png"), in_folder=in_folder)

    assert len(se.result) == 1
    [folder_result] = se.result.values()
    assert groups_of_paths(folder_result) == {frozenset([a, b])}


def groups_of_paths(result):
    return {
        frozenset(os.path.realpath(p) for p in [key, *(e[0] for e in members)])
        for key, members in result.items()
    }


# --------------------------------------------------------------------------- invalid files, EXIF


def test_invalid_files_are_logged_and_valid_ones_kept(tmp_path, find):
    good = images.save_photo(60, tmp_path / "good.png")
    good_copy = images.copy_bytes(good, tmp_path / "good_copy.png")
    (tmp_path / "text.jpg").write_text("this is not a JPEG\n")
    data = Path(good).read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")

    se = find(tmp_path, limit_extensions=True)

    logs = se.stats["invalid_files"]["logs"]
    assert set(logs) == {
        str(tmp_path / n) for n in ("text.jpg", "truncated.png", "empty.png", "notes.txt")
    }
    assert logs[str(tmp_path / "notes.txt")] == "Unsupported file type"
    for reason in logs.values():
        assert isinstance(reason, str) and reason and "\n" not in reason
    assert se.stats["invalid_files"]["count"] == 4
    assert se.stats["total_files"] == 6
    assert se.stats["process"]["search"]["files_searched"] == 2
    assert se.result == {good: [[good_copy, 0.0]]}
    json.dumps(se.stats)


def test_limit_extensions_false_reads_any_file_name(tmp_path, find):
    a = images.save_photo(61, tmp_path / "a.png")
    disguised = images.copy_bytes(a, tmp_path / "a.data")
    (tmp_path / "notes.txt").write_text("hello")

    limited = find(tmp_path, limit_extensions=True)
    assert limited.result == {}
    assert limited.stats["invalid_files"]["logs"][disguised] == "Unsupported file type"

    everything = find(tmp_path, limit_extensions=False)
    assert groups_of_paths(everything.result) == {frozenset([a, disguised])}
    logs = everything.stats["invalid_files"]["logs"]
    assert list(logs) == [str(tmp_path / "notes.txt")]
    assert logs[str(tmp_path / "notes.txt")] != "Unsupported file type"


def test_exif_orientation_is_applied(tmp_path, build, search):
    upright = images.photo_image(62)  # 200 x 150 as displayed
    original = images.save(upright, tmp_path / "a_upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    oriented = images.save(
        upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "b_camera.jpg", exif=exif.tobytes()
    )
    with Image.open(oriented) as raw:
        assert raw.size == (150, 200)

    dif = build(tmp_path)
    assert dif.paths == (original, oriented)
    assert dif.shapes.tolist() == [[200, 150], [200, 150]]

    # rotate=False: only a correctly transposed thumbnail can match.
    se = search(dif, similarity="similar", rotate=False)
    assert groups_of_paths(se.result) == {frozenset([original, oriented])}


# --------------------------------------------------------------------------- processes, chunking


def test_process_pool_gives_the_same_result_as_one_process(tmp_path, build, search, monkeypatch):
    for seed in range(34):
        images.save_photo(300 + seed, tmp_path / f"p{seed:02d}.jpg")
    for seed in range(4):
        images.copy_bytes(tmp_path / f"p{seed:02d}.jpg", tmp_path / "sub" / f"copy{seed}.jpg")
    for seed in range(4, 8):
        images.reencode(tmp_path / f"p{seed:02d}.jpg", tmp_path / "sub" / f"q85_{seed}.jpg")
    images.rotated(tmp_path / "p08.jpg", tmp_path / "sub" / "rot.png", 270)
    (tmp_path / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    n_files = 44
    assert fastdif.backends.pool.MIN_FILES_FOR_POOL < n_files

    started = []

    class RecordingWorker(fastdif.backends.pool._Worker):
        def __init__(self, context, *args, **kwargs):
            started.append(context.get_start_method())
            super().__init__(context, *args, **kwargs)

    monkeypatch.setattr(fastdif.backends.pool, "_Worker", RecordingWorker)
    serial = build(tmp_path, processes=1)
    assert started == []
    pooled = build(tmp_path, processes=2)
    assert started == ["spawn", "spawn"]  # the files really went through 2 workers

    assert len(serial) == n_files - 1
    assert pooled.paths == serial.paths
    assert np.array_equal(pooled.tensors, serial.tensors)
    assert np.array_equal(pooled.shapes, serial.shapes)
    assert np.array_equal(pooled.file_sizes, serial.file_sizes)
    assert pooled.stats["invalid_files"] == serial.stats["invalid_files"]
    assert pooled.stats["process"]["build"]["parameters"]["processes"] == 2

    one = search(serial, similarity="similar", processes=1)
    two = search(pooled, similarity="similar", processes=2)
    assert two.result == one.result
    assert two.lower_quality == one.lower_quality
    assert len(one.result) == 9
    assert len(one.lower_quality) == 9


@pytest.mark.parametrize("chunksize", [1, 3, 64])
def test_chunked_path_equals_classic_path(tmp_path, build, search, monkeypatch, chunksize):
    p = make_mixed_set(tmp_path)
    for k in range(18):  # a group bigger than one kernel pass stores
        images.copy_bytes(p["d0"], tmp_path / "many" / f"d0_{k:02d}.jpg")
    dif = build(tmp_path)

    for similarity, same_dim in [
        ("duplicates", True),
        ("similar", True),
        ("similar", False),
        (40, False),
    ]:
        classic = search(dif, similarity=similarity, same_dim=same_dim)
        assert classic.stats["process"]["search"]["parameters"]["chunksize"] is None
        with monkeypatch.context() as m:
            m.setattr(search_module, "CLASSIC_MAX_IMAGES", 1)
            chunked = search(dif, similarity=similarity, same_dim=same_dim, chunksize=chunksize)
        assert chunked.stats["process"]["search"]["parameters"]["chunksize"] == chunksize
        assert chunked.result == classic.result
        assert chunked.lower_quality == classic.lower_quality
        assert (
            chunked.stats["process"]["search"]["matches_found"]
            == (classic.stats["process"]["search"]["matches_found"])
        )
    assert len(classic.lower_quality) >= 22


# --------------------------------------------------------------------------- search property


def reference_search(tensors, shapes, sizes, folders, in_folder, max_mse, rotate, same_dim):
    """Brute-force NumPy search: groups as {folder or None: {key: [(member, mse)]}}.

    Groups are connected sets of matches; only members within ``max_mse`` of
    the key are listed, and the others go to ``{member: (key, mse)}``, returned too.
    """
    t = tensors.astype(np.float64)

    def mse(a, b):
        ks = range(4) if rotate else range(1)
        return min(float(np.mean((np.rot90(t[a], k) - t[b]) ** 2)) for k in ks)

    def comparable(a, b):
        wa, ha = shapes[a].tolist()
        return not same_dim or shapes[b].tolist() in ([wa, ha], [ha, wa])

    n = len(t)
    labels = sorted(set(folders)) if in_folder else [None]
    out, chained = {}, {}
    for label in labels:
        members = [i for i in range(n) if not in_folder or folders[i] == label]
        parent = {i: i for i in members}

        def root(a, parent=parent):
            while parent[a] != a:
                a = parent[a]
            return a

        for x, a in enumerate(members):
            for b in members[x + 1 :]:
                if comparable(a, b) and mse(a, b) <= max_mse:
                    ra, rb = root(a), root(b)
                    parent[max(ra, rb)] = min(ra, rb)
        comps = {}
        for i in members:
            comps.setdefault(root(i), []).append(i)
        for comp in comps.values():
            if len(comp) < 2:
                continue
            key = max(comp, key=lambda k: (int(shapes[k, 0] * shapes[k, 1]), int(sizes[k]), -k))
            others = [(m, mse(key, m)) for m in comp if m != key]
            out.setdefault(label, {})[key] = [(m, e) for m, e in others if e <= max_mse]
            chained.update({m: (key, e) for m, e in others if e > max_mse})
    return out, chained


@st.composite
def repositories(draw):
    px = draw(st.integers(2, 5))
    n = draw(st.integers(2, 18))
    n_bases = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bases = rng.integers(0, 256, (n_bases, px, px, 3))
    tensors = np.empty((n, px, px, 3), dtype=np.float32)
    for i in range(n):
        image = bases[draw(st.integers(0, n_bases - 1))].copy()
        kind = draw(st.sampled_from(["copy", "noise", "rot", "offset"]))
        if kind == "noise":
            image = np.clip(image + rng.integers(-2, 3, image.shape), 0, 255)
        elif kind == "rot":
            image = np.rot90(image, draw(st.integers(1, 3)))
        elif kind == "offset":
            image = np.clip(image + draw(st.integers(-3, 3)), 0, 255)
        tensors[i] = image
    shape_choices = [(4, 3), (3, 4), (5, 5), (6, 2)]
    shapes = np.array([shape_choices[draw(st.integers(0, 3))] for _ in range(n)], dtype=np.int64)
    sizes = np.array([draw(st.integers(100, 103)) for _ in range(n)], dtype=np.int64)
    in_folder = draw(st.booleans())
    folders = [f"/f{draw(st.integers(0, 2))}" for _ in range(n)] if in_folder else ["/f"] * n
    return px, tensors, shapes, sizes, folders, in_folder


def make_repository(tensors, shapes, sizes, folders, in_folder):
    n = len(tensors)
    paths = [f"{folders[i]}/img{i:03d}.png" for i in range(n)]
    if in_folder:
        labels = sorted(set(folders))
        groups = [[i for i in range(n) if folders[i] == label] for label in labels]
    else:
        labels, groups = ["/f"], [list(range(n))]
    stats = {
        "directory": labels,
        "process": {"build": {"duration": {}, "parameters": {"in_folder": in_folder}}},
        "total_files": n,
        "invalid_files": {"count": 0, "logs": {}},
    }
    repo = fastdif.Repository(
        np.ascontiguousarray(tensors), paths, shapes, sizes, groups, labels, in_folder, stats
    )
    return repo, paths


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    repo=repositories(),
    rotate=st.booleans(),
    same_dim=st.booleans(),
    threshold=st.sampled_from([0.0, 0.5, 1.0, 2.0, "pair"]),
    chunksize=st.integers(1, 20),
    data=st.data(),
)
def test_search_matches_brute_force_reference(repo, rotate, same_dim, threshold, chunksize, data):
    _, tensors, shapes, sizes, folders, in_folder = repo
    if threshold == "pair":  # a threshold equal to some pair's MSE: <= must include it
        a, b = (
            data.draw(st.integers(0, len(tensors) - 1)),
            data.draw(st.integers(0, len(tensors) - 1)),
        )
        threshold = float(np.mean((tensors[a].astype(np.float64) - tensors[b]) ** 2))
    repository, paths = make_repository(
        tensors.copy(), shapes.copy(), sizes.copy(), folders, in_folder
    )

    expected, chained = reference_search(
        tensors, shapes, sizes, folders, in_folder, threshold, rotate, same_dim
    )
    options = dict(similarity=threshold, rotate=rotate, same_dim=same_dim, show_progress=False)
    classic = fastdif.search(repository, processes=1, **options)
    old = search_module.CLASSIC_MAX_IMAGES
    search_module.CLASSIC_MAX_IMAGES = 1
    try:
        chunked = fastdif.search(repository, processes=1, chunksize=chunksize, **options)
    finally:
        search_module.CLASSIC_MAX_IMAGES = old

    assert chunked.result == classic.result
    assert chunked.lower_quality == classic.lower_quality
    flat = classic.result if in_folder else ({None: classic.result} if classic.result else {})
    got = {
        label: {
            paths.index(key): [(paths.index(p), m) for p, m in members]
            for key, members in groups.items()
        }
        for label, groups in flat.items()
    }
    assert set(got) == set(expected)
    for label in expected:
        assert set(got[label]) == set(expected[label])
        for key, members in expected[label].items():
            assert sorted(m for m, _ in got[label][key]) == sorted(m for m, _ in members)
            for m, mse in got[label][key]:
                assert mse == pytest.approx(dict(members)[m], abs=1e-9)
    expected_lower = sorted(paths[m] for g in expected.values() for ms in g.values() for m, _ in ms)
    assert sorted(classic.lower_quality) == expected_lower
    apart = classic.stats["process"]["search"]["chained"]
    got_apart = {paths.index(p): (paths.index(c["key"]), c["mse"]) for p, c in apart.items()}
    assert {m: k for m, (k, _) in got_apart.items()} == {m: k for m, (k, _) in chained.items()}
    for m, (_, mse) in got_apart.items():
        assert mse == pytest.approx(chained[m][1], abs=1e-9)


# --------------------------------------------------------------------------- parameters


@pytest.fixture
def one_image(tmp_path):
    return images.save_photo(70, tmp_path / "a.png")


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"px_size": 5}, ValueError, "px_size"),
        ({"px_size": 6000}, ValueError, "px_size"),
        ({"px_size": "50"}, (TypeError, ValueError), "px_size"),
        ({"processes": 0}, ValueError, "processes"),
        ({"processes": (os.cpu_count() or 1) + 1}, ValueError, "processes"),
        ({"recursive": "yes"}, (TypeError, ValueError), "recursive"),
        ({"in_folder": 1}, (TypeError, ValueError), "in_folder"),
        ({"limit_extensions": None}, (TypeError, ValueError), "limit_extensions"),
        ({"show_progress": "no"}, (TypeError, ValueError), "show_progress"),
    ],
)
def test_build_parameter_errors_name_the_parameter(tmp_path, one_image, kwargs, error, name):
    kwargs = {"show_progress": False, "processes": 1, **kwargs}
    with pytest.raises(error, match=name):
        fastdif.build(tmp_path, **kwargs)


def test_build_directory_errors(tmp_path, one_image):
    with pytest.raises(ValueError, match="directory"):
        fastdif.build(show_progress=False, processes=1)
    with pytest.raises(ValueError, match="directory"):
        fastdif.build([], show_progress=False, processes=1)
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match="missing"):
        fastdif.build(tmp_path, missing, show_progress=False, processes=1)
    for same in [
        (tmp_path, tmp_path),
        (str(tmp_path), str(tmp_path) + os.sep),
        (one_image, Path(one_image)),
    ]:
        with pytest.raises(ValueError, match="directory"):
            fastdif.build(*same, show_progress=False, processes=1)
    with pytest.raises((TypeError, ValueError), match="directory"):
        fastdif.build(42, show_progress=False, processes=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"similarity": "low"}, ValueError, r"3\.0\.8"),
        ({"similarity": "normal"}, ValueError, r"3\.0\.8"),
        ({"similarity": "high"}, ValueError, r"3\.0\.8"),
        ({"similarity": -1}, ValueError, "similarity"),
        ({"similarity": "abc"}, ValueError, "similarity"),
        ({"similarity": float("nan")}, ValueError, "similarity"),
        ({"similarity": None}, (TypeError, ValueError), "similarity"),
        ({"rotate": "yes"}, (TypeError, ValueError), "rotate"),
        ({"same_dim": 1}, (TypeError, ValueError), "same_dim"),
        ({"processes": 0}, ValueError, "processes"),
        ({"processes": (os.cpu_count() or 1) + 1}, ValueError, "processes"),
        ({"chunksize": 0}, ValueError, "chunksize"),
        ({"chunksize": "3"}, (TypeError, ValueError), "chunksize"),
        ({"lazy": True}, ValueError, "same_dim"),
        ({"lazy": False}, ValueError, "same_dim"),
    ],
)
def test_search_parameter_errors_name_the_parameter(
    tmp_path, one_image, build, kwargs, error, pattern
):
    dif = build(tmp_path)
    kwargs = {"show_progress": False, "processes": 1, **kwargs}
    with pytest.raises(error, match=pattern):
        fastdif.search(dif, **kwargs)


@pytest.mark.parametrize("name", sorted(params.LEGACY_KEYWORDS))
def test_difpy_legacy_keywords_are_ignored_with_a_warning_that_says_what_to_do(
    tmp_path, one_image, name
):
    """difPy 4.2.1 ignores them silently: old scripts run, and are told what changed."""
    with pytest.warns(DeprecationWarning, match=f'build\\(\\): "{name}" .* Instead, ') as seen:
        dif = fastdif.build(tmp_path, show_progress=False, processes=1, **{name: True})
    assert seen[0].filename == __file__  # points at the caller's line
    with pytest.warns(DeprecationWarning, match=f'search\\(\\): "{name}"'):
        se = fastdif.search(dif, show_progress=False, processes=1, **{name: "x"})
    assert se.result == {} and os.path.exists(one_image)  # nothing moved or deleted


@pytest.mark.parametrize("function", ["build", "search"])
def test_other_unknown_keywords_stay_type_errors(tmp_path, one_image, build, function):
    dif = build(tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword argument 'similarty'"):
        if function == "build":
            fastdif.build(tmp_path, show_progress=False, processes=1, logs=True, similarty=5)
        else:
            fastdif.search(dif, show_progress=False, processes=1, similarty=5)


def test_similarity_accepts_numbers_and_numeric_strings(tmp_path, find):
    a = images.save_photo(71, tmp_path / "a.jpg")
    b = images.reencode(a, tmp_path / "b.jpg", 85)
    for similarity in (5, 5.0, "5", np.float64(5.0), "similar"):
        se = find(tmp_path, similarity=similarity)
        assert groups_of_paths(se.result) == {frozenset([a, b])}, similarity
        assert se.stats["process"]["search"]["parameters"]["similarity_mse"] == 5.0
        assert type(se.stats["process"]["search"]["parameters"]["similarity_mse"]) is float
    assert find(tmp_path, similarity=0).result == {}


def test_search_rejects_anything_but_a_repository():
    with pytest.raises(TypeError, match="dif"):
        fastdif.search({"not": "a repository"}, show_progress=False, processes=1)


def test_empty_folder_gives_empty_results(tmp_path, find):
    (tmp_path / "empty").mkdir()
    se = find(tmp_path / "empty")
    assert se.result == {} and se.lower_quality == []
    assert se.stats["total_files"] == 0
    assert se.stats["process"]["search"]["files_searched"] == 0
    json.dumps(se.stats)
    in_folder = find(tmp_path / "empty", in_folder=True)
    assert in_folder.result == {}


# --------------------------------------------------------------------------- test images


def test_test_images_are_what_these_tests_assume(tmp_path):
    thumbs = [images.thumbnail(images.photo_image(seed)) for seed in range(10)]
    distinct = min(
        images.min_rotated_mse(thumbs[i], thumbs[j]) for i in range(10) for j in range(i + 1, 10)
    )
    assert distinct > 100  # MSE >> 5 under every rotation
    photo = images.photo(0)
    assert photo.min() >= 20 and photo.max() <= 230
    original = images.save_photo(1, tmp_path / "a.jpg", quality=95)
    reencoded = images.reencode(original, tmp_path / "b.jpg", quality=85)
    assert 0 < images.mse(images.thumbnail(original), images.thumbnail(reencoded)) < 5
