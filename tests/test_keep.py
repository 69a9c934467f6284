"""Keep-best rules (``search(..., keep=...)``, ``--keep``): which file is kept, and why."""

import csv
import io
import json
import os
from datetime import datetime

import images
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import fastdif
import fastdif.pipelines.search
from fastdif import params, report
from fastdif.cli import main
from fastdif.engine.grouping import choose_key
from fastdif.engine.keep import Facts, choose, folder_parts, set_aside, under
from fastdif.io.metadata import Metadata, read_metadata

DATE_2019 = images.DATE_2019
DATE_2021 = images.DATE_2021


def _build(*paths, **kwargs):
    return fastdif.build(*paths, show_progress=False, processes=1, **kwargs)


def _search(dif, **kwargs):
    return fastdif.search(dif, show_progress=False, processes=1, **kwargs)


save = images.dated_photo


def only_group(se):
    """``(key, sorted members)`` of the one group of a result, as paths."""
    assert len(se.result) == 1, se.result
    ((key, members),) = se.result.items()
    return key, sorted(p for p, _ in members)


def reason(se, key):
    return se.stats["process"]["search"]["keep"]["reasons"][key]


def kept(folder, keep, **kwargs):
    """The key and its reason for the one group under ``folder``."""
    se = _search(_build(folder), keep=keep, **kwargs)
    key, _ = only_group(se)
    return key, reason(se, key)


# ------------------------------------------------------------------ the default


def test_default_rule_is_resolution_then_size_then_path_order(tmp_path):
    big = images.resized(save(tmp_path / "a_small.png"), tmp_path / "b_big.png", 2.0)
    se = _search(_build(tmp_path), similarity=20, same_dim=False)
    explicit = _search(_build(tmp_path), similarity=20, same_dim=False, keep="resolution")
    assert only_group(se)[0] == only_group(explicit)[0] == big
    keep = se.stats["process"]["search"]["keep"]
    assert keep == {"rule": ["resolution", "size"], "reasons": {big: keep["reasons"][big]}}
    assert keep["reasons"][big] == "kept: larger (400 x 300 vs 200 x 150)"
    assert json.loads(json.dumps(se.stats)) == se.stats


def test_default_rule_falls_back_to_size_then_path_order(tmp_path):
    small = save(tmp_path / "a.png", compress_level=9)
    large = save(tmp_path / "b.png", compress_level=0)
    key, why = kept(tmp_path, None)
    assert key == large
    sizes = os.path.getsize(large), os.path.getsize(small)
    assert why == "kept: larger file ({:,} vs {:,} bytes)".format(*sizes)
    images.copy_bytes(large, tmp_path / "c.png")
    key, why = kept(tmp_path, None)
    assert (key, why) == (large, "kept: path order (all else equal)")


# ------------------------------------------------------------ each criterion alone


def test_resolution_and_size_break_ties_in_the_order_given(tmp_path):
    # A large JPEG file of few pixels against a small PNG file of many.
    few = save(tmp_path / "few.png", size=(200, 150), compress_level=0)
    many = images.resized(few, tmp_path / "many.jpg", 2.0)
    assert os.path.getsize(few) > os.path.getsize(many)
    kwargs = {"similarity": 20, "same_dim": False}
    assert kept(tmp_path, ["resolution", "size"], **kwargs)[0] == many
    key, why = kept(tmp_path, ["size", "resolution"], **kwargs)
    assert key == few and why.startswith("kept: larger file (")


def test_newest_and_oldest_by_exif_date(tmp_path):
    old = save(tmp_path / "a_old.png", date=DATE_2019)
    new = save(tmp_path / "b_new.jpg", date=DATE_2021)
    undated = save(tmp_path / "c_undated.png")
    for path in (old, new, undated):
        os.utime(path, ns=(0, 1_700_000_000 * 10**9))
    os.utime(undated, ns=(0, 1_800_000_000 * 10**9))  # the newest file, but no EXIF date
    kwargs = {"similarity": 20}
    key, why = kept(tmp_path, ["newest"], **kwargs)
    assert (key, why) == (new, "kept: newest (taken 2021-06-01 10:22:00 vs 2019-03-02 08:00:00)")
    key, why = kept(tmp_path, ["oldest"], **kwargs)
    assert (key, why) == (old, "kept: oldest (taken 2019-03-02 08:00:00 vs 2021-06-01 10:22:00)")


def test_an_image_without_a_date_sorts_after_dated_ones(tmp_path):
    dated = save(tmp_path / "b_dated.png", date=DATE_2019)
    undated = save(tmp_path / "a_undated.png")
    os.utime(undated, ns=(0, 2_000_000_000 * 10**9))
    for rule in ("newest", "oldest"):
        key, why = kept(tmp_path, [rule])
        assert key == dated
        assert why == f"kept: {rule} (taken 2019-03-02 08:00:00 vs no EXIF date)"


def test_modification_time_breaks_ties_of_exif_dates(tmp_path):
    first = save(tmp_path / "a.png", date=DATE_2021)
    second = images.copy_bytes(first, tmp_path / "b.png")
    third = save(tmp_path / "c.png")  # no EXIF date: after both, however new
    os.utime(first, ns=(0, 1_600_000_000 * 10**9))
    os.utime(second, ns=(0, 1_700_000_000 * 10**9))
    os.utime(third, ns=(0, 1_900_000_000 * 10**9))

    def shown(seconds):
        return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")

    key, why = kept(tmp_path, ["newest"])
    assert key == second
    assert why == f"kept: newest (modified {shown(1_700_000_000)} vs {shown(1_600_000_000)})"
    key, why = kept(tmp_path, ["oldest"])
    assert key == first
    assert why == f"kept: oldest (modified {shown(1_600_000_000)} vs {shown(1_700_000_000)})"


def test_format_preference_with_unlisted_formats_last(tmp_path):
    # Lossless copies of one picture: exact duplicates in any format.
    png = save(tmp_path / "a.png")
    webp = save(tmp_path / "b.webp", lossless=True)
    tiff = save(tmp_path / "c.tif")
    bmp = save(tmp_path / "d.bmp")
    key, why = kept(tmp_path, ["format:webp>png"])
    assert (key, why) == (webp, "kept: WEBP preferred over PNG")
    key, why = kept(tmp_path, ["format:tif"])  # an alias
    assert (key, why) == (tiff, "kept: TIFF preferred over PNG")
    # Formats left unlisted tie, and the default rule decides (resolution, then size).
    key, why = kept(tmp_path, ["format:jpeg>heic"])
    assert key == max((png, webp, tiff, bmp), key=os.path.getsize)
    assert why.startswith("kept: larger file (")
    key, _ = kept(tmp_path, ["format:jpeg", "size"])
    assert key == max((png, webp, tiff, bmp), key=os.path.getsize)
    se = _search(_build(tmp_path), keep=["format:RAW>Jpg>HEIC>png"])
    assert se.stats["process"]["search"]["keep"]["rule"] == [
        "format:raw>jpeg>heif>png",
        "resolution",
        "size",
    ]


def test_raw_is_a_camera_raw_extension_whatever_pillow_reads(tmp_path):
    png = save(tmp_path / "a.png")
    raw = images.copy_bytes(save(tmp_path / "tiff" / "b.tif"), tmp_path / "b.dng")
    os.remove(tmp_path / "tiff" / "b.tif")
    assert read_metadata(raw) == Metadata("raw", None)
    dif = _build(tmp_path, limit_extensions=False)  # Pillow opens the DNG as a TIFF
    se = _search(dif, keep=["format:raw>png"])
    assert only_group(se) == (raw, [png])
    assert reason(se, raw) == "kept: RAW preferred over PNG"


def test_prefer_a_folder(tmp_path):
    big = images.resized(save(tmp_path / "a.png"), tmp_path / "b_big.png", 2.0)
    original = save(tmp_path / "photos" / "Originals" / "c.png")
    kwargs = {"similarity": 20, "same_dim": False}
    assert kept(tmp_path, None, **kwargs)[0] == big
    for spelling in ("Originals", "originals/", "photos/Originals", str(tmp_path / "photos")):
        key, why = kept(tmp_path, [f"prefer:{spelling}"], **kwargs)
        assert key == original
        assert why == f"kept: under {spelling.rstrip('/')}/"
    # Whole folder names only, consecutive, from the start for an absolute path.
    for spelling in (
        "Original",
        "Originals/c.png",
        "Originals/photos",
        str(tmp_path / "Originals"),
    ):
        key, why = kept(tmp_path, [f"prefer:{spelling}", "resolution"], **kwargs)
        assert key == big and why.startswith("kept: larger (")


def test_avoid_folders_unless_every_member_is_there(tmp_path):
    # (Trash folders such as .Trash below an input are not searched at all.)
    downloads = save(tmp_path / "Downloads" / "a.png", compress_level=0)
    images.copy_bytes(downloads, tmp_path / "Trash" / "a.png")
    trashcan = images.copy_bytes(downloads, tmp_path / "Trashcan" / "a.png")
    pictures = save(tmp_path / "Pictures" / "a.png", compress_level=9)  # the smallest
    key, why = kept(tmp_path, ["avoid:Downloads|Trash|Trashcan", "size"])
    assert (key, why) == (pictures, "kept: not under Downloads/")
    # "Trash" is a whole name: it does not match "Trashcan".
    key, why = kept(tmp_path, ["avoid:Downloads|Trash", "size"])
    assert key == trashcan and why.startswith("kept: larger file (")
    # Every member avoided: one is still kept, by the next criterion.
    os.remove(pictures)
    key, why = kept(tmp_path, ["avoid:downloads|TRASH/|Trashcan", "size"])
    assert (key, why) == (downloads, "kept: path order (all else equal)")


def test_criteria_combine_each_breaking_the_ties_left_before(tmp_path):
    # new: the newest file, in Downloads. a and b: older copies, b larger.
    a = save(tmp_path / "Pictures" / "a.png", date=DATE_2019, compress_level=9)
    b = save(tmp_path / "Pictures" / "b.png", date=DATE_2019, compress_level=0)
    new = save(tmp_path / "Downloads" / "new.png", date=DATE_2021, compress_level=0)
    for path in (a, b, new):
        os.utime(path, ns=(0, 1_700_000_000 * 10**9))
    assert kept(tmp_path, ["newest", "avoid:Downloads"])[0] == new
    key, why = kept(tmp_path, ["avoid:Downloads", "newest", "size"])
    assert key == b and why.startswith("kept: larger file (")
    key, why = kept(tmp_path, ["avoid:Downloads", "newest"])  # then resolution, size
    assert key == b and why.startswith("kept: larger file (")
    key, why = kept(tmp_path, ["avoid:Downloads", "size", "oldest"])
    assert key == b and why.startswith("kept: larger file (")


# ------------------------------------------------------- results, reasons, actions


@pytest.fixture
def originals(tmp_path):
    """A folder with three copies of a picture; the one under Originals/ is the smallest."""
    folder = tmp_path / "pics"
    paths = {
        "original": save(folder / "Originals" / "x.png", compress_level=9),
        "big": images.resized(save(folder / "a" / "x.png"), folder / "b" / "x_big.png", 2.0),
        "copy": save(folder / "c" / "x.png", compress_level=0),
    }
    os.remove(folder / "a" / "x.png")
    save(folder / "unique.png", seed=5)
    return folder, paths


def test_the_rule_sets_keys_lower_quality_csv_and_report(originals):
    folder, paths = originals
    se = _search(_build(folder), similarity=20, same_dim=False, keep=["prefer:Originals"])
    assert only_group(se) == (paths["original"], sorted([paths["big"], paths["copy"]]))
    assert sorted(se.lower_quality) == sorted([paths["big"], paths["copy"]])
    assert se.stats["process"]["search"]["keep"] == {
        "rule": ["prefer:Originals", "resolution", "size"],
        "reasons": {paths["original"]: "kept: under Originals/"},
    }
    assert "kept_because" in report.CSV_COLUMNS
    rows = list(csv.DictReader(io.StringIO(report.to_csv(se))))
    assert {row["path"]: row["kept_because"] for row in rows} == {
        paths["original"]: "kept: under Originals/",
        paths["big"]: "",
        paths["copy"]: "",
    }
    (group,) = report.groups(se)
    assert group["kept_because"] == "kept: under Originals/"


def test_the_report_shows_the_reason_in_each_group_header(originals):
    folder, paths = originals
    se = _search(_build(folder), similarity=20, same_dim=False, keep=["prefer:Originals"])
    data = report.report_data(se, thumbnail_size=32, processes=1)
    assert [g["kept_because"] for g in data["groups"]] == ["kept: under Originals/"]
    page = report.render_html(data)
    assert "function keptBecause(group)" in page
    assert page.count("keptBecause(group)") == 2  # defined once, called once in groupCard


def test_move_to_follows_the_rule(originals, tmp_path):
    folder, paths = originals
    se = _search(_build(folder), similarity=20, same_dim=False, keep=["prefer:Originals"])
    moved = se.move_to(tmp_path / "dupes")
    assert sorted(moved["moved"]) == sorted([paths["big"], paths["copy"]]) and not moved["failed"]
    assert os.path.exists(paths["original"])
    assert not os.path.exists(paths["big"]) and not os.path.exists(paths["copy"])


def test_delete_follows_the_rule(originals):
    folder, paths = originals
    se = _search(_build(folder), similarity=20, same_dim=False, keep=["prefer:Originals"])
    assert sorted(se.delete(dry_run=True)["would_delete"]) == sorted([paths["big"], paths["copy"]])
    done = se.delete(silent_del=True)
    assert sorted(done["deleted"]) == sorted([paths["big"], paths["copy"]]) and not done["failed"]
    assert os.path.exists(paths["original"])
    assert not os.path.exists(paths["big"]) and not os.path.exists(paths["copy"])


# ----------------------------------------------------------------- the library


def test_a_library_image_stays_the_key_and_the_rule_chooses_among_several(tmp_path):
    library, new = tmp_path / "library", tmp_path / "new"
    png = save(library / "a.png")
    tiff = save(library / "b.tif")
    copy = save(new / "Originals" / "copy.webp", lossless=True)
    dif = _build(new, reference=str(library))
    # The new file is preferred by every criterion given, and still not kept.
    se = _search(dif, keep=["prefer:Originals", "format:webp"])
    larger = max((png, tiff), key=os.path.getsize)  # the default rule breaks the tie
    assert only_group(se) == (larger, [copy])
    assert reason(se, larger).startswith("kept: library image, then larger file (")
    se = _search(dif, keep=["format:tiff>png"])
    assert only_group(se) == (tiff, [copy])
    assert reason(se, tiff) == "kept: library image, then TIFF preferred over PNG"
    assert copy in se.lower_quality and tiff not in se.lower_quality
    one = _build(new, reference=png)
    se = _search(one, keep=["prefer:Originals"])
    assert only_group(se) == (png, [copy]) and reason(se, png) == "kept: library image"


# ---------------------------------------------------------- reading, and when


def test_metadata_is_read_only_for_group_members_and_only_when_needed(tmp_path, monkeypatch):
    a = save(tmp_path / "a.png", date=DATE_2019)
    b = images.copy_bytes(a, tmp_path / "b.png")
    for seed in range(3):
        save(tmp_path / f"unique{seed}.png", seed=10 + seed)
    read = []

    def recording(path, *args):
        read.append(path)
        return read_metadata(path, *args)

    monkeypatch.setattr(fastdif.pipelines.search, "read_metadata", recording)
    dif = _build(tmp_path)
    _search(dif, keep=["newest", "format:png"])
    assert sorted(read) == [a, b]
    read.clear()
    _search(dif, keep=["resolution", "size", "prefer:x", "avoid:y"])
    assert read == []


# ------------------------------------------------------------------- path matching


def pattern(text):
    criterion = params.check_keep([f"avoid:{text}"])[0]
    (found,) = criterion.values
    return found


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        ("Trash", "/home/me/Trash/a.jpg", True),
        ("Trash", "/home/me/trash/sub/a.jpg", True),  # case-insensitive
        ("Trash", "/home/me/.Trash/a.jpg", False),  # whole names, not prefixes
        ("Trash", "/home/me/Trashcan/a.jpg", False),
        ("Trash", "/home/me/Trash", False),  # a file named Trash is not in a folder Trash
        ("Trash/", "/home/me/Trash/a.jpg", True),
        (".Trash", "/Volumes/x/.Trash/a.jpg", True),
        ("Photos/Originals", "/a/Photos/Originals/b/c.jpg", True),
        ("Photos/Originals", "/a/Photos/x/Originals/c.jpg", False),
        ("/data/Originals", "/data/originals/sub/x.jpg", True),
        ("/data/Originals", "/backup/data/Originals/x.jpg", False),
        ("/data/./Originals/", "/data/Originals/x.jpg", True),
        ("/data/x/../Originals", "/data/Originals/x.jpg", True),
    ],
)
def test_path_patterns_match_whole_folder_names(text, path, expected):
    assert under(pattern(text), folder_parts(path)) is expected


def test_relative_file_paths_are_matched_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert under(pattern("Downloads"), folder_parts("Downloads/a.jpg"))
    assert under(pattern(tmp_path.name), folder_parts("a.jpg"))
    assert not under(pattern("Downloads"), folder_parts("a.jpg"))


# ----------------------------------------------------------------- the command line


def test_cli_keep_flag_is_repeatable_and_recorded(originals, tmp_path):
    folder, paths = originals
    out = tmp_path / "out"
    args = [str(folder), "-Z", str(out), "-s", "20", "-dim", "false", "-p", "false", "-q"]
    keep = ["--keep", "prefer:Originals|Masters", "--keep", "format:png>jpeg"]
    assert main([*args, "-proc", "1", "--no-cache", *keep, "--format", "csv"]) == 0
    names = sorted(os.listdir(out))
    stats = json.loads((out / next(n for n in names if n.endswith("_stats.json"))).read_text())
    assert stats["process"]["search"]["keep"] == {
        "rule": ["prefer:Originals|Masters", "format:png>jpeg", "resolution", "size"],
        "reasons": {paths["original"]: "kept: under Originals/"},
    }
    text = (out / next(n for n in names if n.endswith("_results.csv"))).read_text()
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["kept_because"]]
    assert [(r["path"], r["role"]) for r in rows] == [(paths["original"], "key")]


def test_cli_rejects_a_bad_rule_before_the_build(originals, tmp_path, capsys):
    folder, _ = originals
    out = tmp_path / "out"
    assert main([str(folder), "-Z", str(out), "--keep", "newest,size", "-q"]) == 2
    err = capsys.readouterr().err
    assert 'Invalid value for "keep" parameter: unknown criterion "newest,size"' in err
    assert "per --keep flag" in err
    assert not out.exists()


# ------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("keep", "error", "message"),
    [
        (5, TypeError, "must be a list of criteria"),
        (["size", 3], TypeError, "must be a list of criteria"),
        ([], ValueError, "at least one criterion"),
        (["biggest"], ValueError, 'unknown criterion "biggest"; allowed: resolution, size'),
        (["size:1"], ValueError, 'unknown criterion "size:1"'),
        (["format"], ValueError, 'unknown criterion "format"'),
        (["format:"], ValueError, 'unknown format ""'),
        (["format:png>jpx"], ValueError, 'unknown format "jpx"; formats are separated by ">"'),
        (["format:png>PNG"], ValueError, "names a format twice"),
        (["avoid:"], ValueError, "empty path"),
        (["prefer:a||b"], ValueError, "empty path"),
        (["prefer:/"], ValueError, "names no folder"),
        (["avoid:../Downloads"], ValueError, 'may not hold ".."'),
        (["size", "size"], ValueError, '"size" after "size" can never break a tie'),
        (["newest", "oldest"], ValueError, '"oldest" after "newest" can never break a tie'),
        (["format:png", "format:jpeg"], ValueError, "can never break a tie"),
    ],
)
def test_invalid_rules_are_rejected(keep, error, message):
    with pytest.raises(error, match='Invalid value for "keep" parameter') as raised:
        params.check_keep(keep)
    assert message in str(raised.value)
    dif = fastdif.from_arrays(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(error, match='"keep" parameter'):
        _search(dif, keep=keep)


def test_valid_spellings():
    rule = params.check_keep(
        [" Newest ", "FORMAT:Raw>PNG>heic>JPG>webp", "prefer:~/Originals", "avoid:a|b/c"]
    )
    assert [c.text for c in rule] == [
        "newest",
        "format:raw>png>heif>jpeg>webp",
        "prefer:~/Originals",
        "avoid:a|b/c",
        "resolution",  # the default rule's criteria follow as tie-breakers
        "size",
    ]
    assert rule[2].values[0].absolute and rule[2].values[0].parts[-1] == "originals"
    assert [p.parts for p in rule[3].values] == [("a",), ("b", "c")]
    assert [c.text for c in params.check_keep(None)] == ["resolution", "size"]
    texts = [c.text for c in params.check_keep(["prefer:a", "prefer:b"])]
    assert texts == ["prefer:a", "prefer:b", "resolution", "size"]


# ---------------------------------------------------------------- the ranking


PATTERNS = {"a": ("a",), "b": ("b",), "ab": ("a", "b")}


def reference_key(criterion, f: Facts):
    """A plain sort key per criterion, written apart from the engine (smaller is better)."""
    kind = criterion.kind
    if kind == "resolution":
        return (-f.width * f.height,)
    if kind == "size":
        return (-f.size,)
    if kind in ("newest", "oldest"):
        sign = -1 if kind == "newest" else 1
        taken = 0 if f.taken is None else sign * f.taken.timestamp()
        return (f.taken is None, taken, f.mtime_ns == 0, sign * f.mtime_ns)
    if kind == "format":
        listed = list(criterion.values)
        return (listed.index(f.format) if f.format in listed else len(listed),)
    inside = any(
        any(f.folders[k : k + len(p.parts)] == p.parts for k in range(len(f.folders)))
        for p in criterion.values
    )
    return (not inside,) if kind == "prefer" else (inside,)


CRITERIA = [
    "resolution",
    "size",
    "newest",
    "oldest",
    "format:png>jpeg>raw",
    "prefer:a",
    "prefer:b|a/b",
    "avoid:b",
    "avoid:a/b",
]

facts = st.builds(
    Facts,
    width=st.integers(1, 3),
    height=st.integers(1, 3),
    size=st.integers(1, 3),
    taken=st.one_of(st.none(), st.sampled_from([datetime(2019, 1, 1), datetime(2021, 1, 1)])),
    mtime_ns=st.sampled_from([0, 10**18, 2 * 10**18]),
    format=st.sampled_from([None, "png", "jpeg", "raw", "gif"]),
    folders=st.sampled_from([(), ("a",), ("b",), ("a", "b"), ("x", "a", "b"), ("b", "a")]),
    aside=st.integers(0, 2),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(facts, min_size=1, max_size=6),
    st.lists(st.sampled_from(CRITERIA), min_size=1, max_size=5, unique=True),
)
def test_ranking_equals_a_sort_by_a_tuple_of_keys(candidates, texts):
    dates = [t for t in texts if t in ("newest", "oldest")]
    texts = [t for t in texts if t not in dates[1:]]  # newest and oldest exclude each other
    rule = params.check_keep(texts)

    def ranked(p):  # the rule's keys, then visible before set aside, then path order
        f = candidates[p]
        return tuple(k for c in rule for k in reference_key(c, f)) + (f.aside,)

    expected = min(range(len(candidates)), key=lambda p: (ranked(p), p))
    position, why = choose(rule, candidates)
    assert position == expected
    assert why.startswith("kept: ")
    ties = [p for p in range(len(candidates)) if ranked(p) == ranked(position)]
    if len(candidates) > 1:
        assert (why == "kept: path order (all else equal)") == (len(ties) > 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(0, 3)), min_size=1))
def test_the_default_rule_is_choose_key(rows):
    shapes = np.array([(w, h) for w, h, _ in rows], dtype=np.int64)
    sizes = np.array([s for _, _, s in rows], dtype=np.int64)
    candidates = [Facts(width=w, height=h, size=s) for w, h, s in rows]
    position, _ = choose(params.check_keep(None), candidates)
    assert position == choose_key(list(range(len(rows))), shapes, sizes)


# ---------------------------------------------------------------- set aside


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/photos/trip/coins.png", 0),
        ("/photos/.coins_copy.png", 1),
        ("/home/me/.Trash/coins.png", 1),
        ("/home/me/.Trash/.coins.png", 2),
        ("/photos/Trash/coins.png", 1),
        ("/tmp/photos/Trash/coins.png", 2),
        ("/photos/$RECYCLE.BIN/coins.png", 1),
        ("/photos/cache/coins.png", 1),
        ("/photos/Thumbnails/coins.png", 1),
        ("/photos/@eaDir/coins.png", 1),
        ("/photos/trashcan/coins.png", 0),  # whole names only
        ("/photos/cache.png", 0),  # a file's own name is not a folder
        ("/photos/my.album/coins.png", 0),
    ],
)
def test_set_aside_counts_hidden_trash_and_cache_names(path, expected):
    assert set_aside(path) == expected


@pytest.mark.parametrize("aside", [".coins_copy.png", ".hidden/coins.png", "Trash/coins.png"])
def test_a_copy_set_aside_is_never_kept_over_a_visible_original(tmp_path, aside):
    """Path order puts ``.coins_copy.png`` and ``Trash/`` first; the visible original is kept.

    Both lie under the temporary folder (a set-aside name they share).
    """
    original = save(tmp_path / "trip" / "coins.png")
    copy = images.copy_bytes(original, tmp_path / aside)
    assert sorted([original, copy])[0] == copy  # path order alone would keep the copy
    se = _search(_build(str(tmp_path)))
    assert only_group(se) == (original, [copy])
    assert se.lower_quality == [copy]
    assert reason(se, original) == "kept: not hidden or in a trash or cache folder (the other is)"


def test_the_rule_comes_before_visibility(tmp_path):
    """A larger hidden file is still kept: visibility only breaks the rule's ties."""
    large = save(tmp_path / ".coins_large.png", size=(120, 90))
    with Image.open(large) as image:
        small = images.save(image.resize((60, 45), Image.LANCZOS), tmp_path / "trip" / "coins.png")
    se = _search(_build(str(tmp_path)), same_dim=False, similarity="similar")
    assert only_group(se) == (large, [small])


# ---------------------------------------------------------------- the front door


def test_a_rule_is_followed_by_the_default_rule_as_tie_breakers():
    assert [c.text for c in params.check_keep("newest")] == ["newest", "resolution", "size"]
    assert [c.text for c in params.check_keep(["size", "oldest"])] == [
        "size",
        "oldest",
        "resolution",
    ]
    # Neither has a date: newest ties, and resolution decides (not path order).
    small, large = Facts(width=10, height=10, size=5), Facts(width=20, height=20, size=5)
    assert choose(params.check_keep("newest"), [small, large]) == (
        1,
        "kept: larger (20 x 20 vs 10 x 10)",
    )


def test_a_folder_preference_that_names_no_searched_folder_warns(tmp_path, capsys):
    save(tmp_path / "trip" / "a.png")
    images.copy_bytes(tmp_path / "trip" / "a.png", tmp_path / "trip" / "b.png")
    dif = _build(str(tmp_path))
    with pytest.warns(
        UserWarning, match=r'"prefer:Originals": no searched file is under Originals/'
    ):
        _search(dif, keep=["prefer:Originals", "avoid:trip"])  # trip holds them: no warning for it
    assert (
        main([str(tmp_path), "-Z", str(tmp_path), "-p", "false", "--keep", "avoid:Downloads"]) == 0
    )
    err = capsys.readouterr().err
    assert err.count("no searched file is under Downloads/") == 1


def test_a_missing_decision_file_is_named(tmp_path, capsys):
    save(tmp_path / "a.png")
    missing = tmp_path / "decisons.json"  # misspelt
    dif = _build(str(tmp_path))
    with pytest.warns(UserWarning, match=f'decision file "{missing}" does not exist'):
        _search(dif, decisions=missing)
    args = [str(tmp_path), "-Z", str(tmp_path), "-p", "false", "--decisions", str(missing)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count(f'fastdif: warning: decision file "{missing}" does not exist') == 1
