"""New photos against a library (``reference=``): what is reported, what is kept, what is safe."""

import csv
import io
import os

import images
import numpy as np
import pytest

import fastdif
from fastdif.cli import main
from fastdif.report import groups, to_csv


def _build(*paths, **kwargs):
    return fastdif.build(*paths, show_progress=False, processes=1, **kwargs)


def _search(dif, **kwargs):
    return fastdif.search(dif, show_progress=False, processes=1, **kwargs)


@pytest.fixture
def folders(tmp_path):
    """A library and a folder of new photos.

    library: t0..t5 (textures), plus lib_dup_of_t3 (a copy of t3 inside the library).
    new: copy_t0 (PNG of t0), big_t1 (t1 at twice the size: larger than its
    library copy, same picture), reenc_t2 (JPEG re-encode of t2), twin_a and
    twin_b (a new photo twice), and lone (matches nothing).
    """
    library, new = tmp_path / "library", tmp_path / "new"
    kinds = ("foliage", "gravel", "brick", "stars", "text", "foliage")
    for k, kind in enumerate(kinds):
        images.save(images.texture(kind, k, 320, 240), library / f"t{k}.png")
    images.copy_bytes(library / "t3.png", library / "lib_dup_of_t3.png")
    images.copy_bytes(library / "t0.png", new / "copy_t0.png")
    images.resized(library / "t1.png", new / "big_t1.png", 2.0)
    images.reencode(library / "t2.png", new / "reenc_t2.jpg", 95)
    twin = images.save_photo(40, new / "twin_a.png")
    images.copy_bytes(twin, new / "twin_b.png")
    images.save_photo(41, new / "lone.png")
    return str(library), str(new)


def _names(result):
    return {
        os.path.basename(key): sorted(os.path.basename(p) for p, _ in members)
        for key, members in result.items()
    }


def test_new_photos_are_checked_against_the_library(folders):
    library, new = folders
    dif = _build(new, reference=library)
    assert len(dif) == 6 and len(dif.reference) == 7
    se = _search(dif, similarity="similar", same_dim=False)
    assert _names(se.result) == {
        "t0.png": ["copy_t0.png"],
        # The library copy stays the key although the new file is larger.
        "t1.png": ["big_t1.png"],
        "t2.png": ["reenc_t2.jpg"],
        "twin_a.png": ["twin_b.png"],
    }
    # Two library images are never compared: t3 and its copy are not a group.
    assert not any("t3" in name for name in _names(se.result))
    lower = {os.path.basename(p) for p in se.lower_quality}
    assert lower == {"copy_t0.png", "big_t1.png", "reenc_t2.jpg", "twin_b.png"}
    assert se.stats["process"]["search"]["reference"] == {
        "images": 7,
        "within_new": True,
        "files_also_in_reference": 0,
    }


def test_within_new_false_reports_only_matches_with_the_library(folders):
    library, new = folders
    se = _search(
        _build(new, reference=library), similarity="similar", same_dim=False, within_new=False
    )
    assert set(_names(se.result)) == {"t0.png", "t1.png", "t2.png"}


def test_a_saved_library_serves_as_the_reference_for_build_and_search(folders, tmp_path):
    library, new = folders
    saved = _build(library).save(tmp_path / "library.fastdif")
    expected = _names(_search(_build(new, reference=library), similarity="similar").result)
    loaded = fastdif.load(saved)
    assert loaded.block_means is not None  # saved by the build: no recomputation per search
    by_build = _search(_build(new, reference=loaded), similarity="similar")
    by_search = _search(_build(new), similarity="similar", reference=fastdif.load(saved))
    assert _names(by_build.result) == _names(by_search.result) == expected


def test_a_reference_image_is_never_moved_or_deleted(folders, tmp_path):
    library, new = folders
    before = {name: os.path.getsize(os.path.join(library, name)) for name in os.listdir(library)}
    se = _search(_build(new, reference=library), similarity="similar", same_dim=False)
    moved = se.move_to(str(tmp_path / "moved"))
    assert {os.path.basename(p) for p in moved["moved"]} == {
        "copy_t0.png",
        "big_t1.png",
        "reenc_t2.jpg",
        "twin_b.png",
    }
    assert {n: os.path.getsize(os.path.join(library, n)) for n in os.listdir(library)} == before


def test_a_result_edited_to_list_a_library_image_does_not_delete_it(folders):
    library, new = folders
    se = _search(_build(new, reference=library), similarity="similar", same_dim=False)
    key = next(k for k in se.result if "twin" not in k)
    library_member = os.path.join(library, "t5.png")
    se.result[key].append([library_member, 0.0])
    se.lower_quality.append(library_member)
    report = se.delete(silent_del=True)
    assert report["failed"][library_member] == (
        "a reference (library) image is never moved or deleted"
    )
    assert os.path.exists(library_member)


def test_a_file_in_both_is_a_library_image_only(folders):
    library, new = folders
    parent = os.path.dirname(library)
    dif = _build(parent, reference=library)  # the new folder holds the library
    assert dif.stats["process"]["build"]["reference"]["files_also_in_reference"] == 7
    assert not any(path.startswith(library) for path in dif.paths)
    se = _search(dif, similarity="similar", same_dim=False)
    assert not any(p.startswith(library) for p in se.lower_quality)
    # Given directly to search, the overlap is found the same way.
    se = _search(_build(parent), similarity="similar", same_dim=False, reference=dif.reference)
    assert se.stats["process"]["search"]["reference"]["files_also_in_reference"] == 7
    assert not any(p.startswith(library) for p in se.lower_quality)


def test_report_and_csv_mark_reference_images(folders):
    library, new = folders
    se = _search(_build(new, reference=library), similarity="similar", same_dim=False)
    rows = list(csv.DictReader(io.StringIO(to_csv(se))))
    marked = {os.path.basename(r["path"]) for r in rows if r["reference"] == "true"}
    assert marked == {"t0.png", "t1.png", "t2.png"}
    assert all(r["role"] == "key" for r in rows if r["reference"] == "true")
    for group in groups(se):
        for image in group["images"]:
            assert image["reference"] == image["path"].startswith(library)
            if image["reference"]:
                assert image["width"] == 320  # known from the library repository


def test_reference_parameters_are_checked(folders, tmp_path):
    library, new = folders
    with pytest.raises(ValueError, match='"reference" cannot be combined'):
        _build(new, reference=library, in_folder=True)
    with pytest.raises(TypeError, match='"reference" parameter'):
        _build(new, reference=3)
    with pytest.raises(ValueError, match="px"):
        _build(new, reference=_build(library, px_size=20))
    with pytest.raises(TypeError, match="within_new"):
        _search(_build(new), within_new="yes")
    arrays = fastdif.from_arrays(np.zeros((2, 50, 50, 3), np.uint8))
    with pytest.raises(TypeError, match='"reference" parameter'):
        _search(arrays, reference="library/")


def test_command_line_reference_and_within_new(folders, tmp_path, capsys):
    library, new = folders
    out = tmp_path / "out"
    out.mkdir()
    code = main([new, "--reference", library, "-s", "similar", "-dim", "false", "-Z", str(out),
                 "--format", "csv", "-p", "false"])  # fmt: skip
    assert code == 0
    (written,) = [p for p in out.iterdir() if p.name.endswith("_results.csv")]
    rows = list(csv.DictReader(io.StringIO(written.read_text())))
    assert {os.path.basename(r["path"]) for r in rows if r["reference"] == "true"} == {
        "t0.png",
        "t1.png",
        "t2.png",
    }
    saved = _build(library).save(tmp_path / "lib.fastdif")
    for f in out.iterdir():
        f.unlink()
    code = main([new, "--reference", saved, "-wn", "false", "-s", "similar", "-dim", "false",
                 "-Z", str(out), "--format", "csv", "-p", "false"])  # fmt: skip
    assert code == 0
    (written,) = [p for p in out.iterdir() if p.name.endswith("_results.csv")]
    names = {os.path.basename(r["path"]) for r in csv.DictReader(io.StringIO(written.read_text()))}
    assert "twin_a.png" not in names and "t0.png" in names
    assert main([new, "--reference", saved, "--reference", library, "-p", "false"]) == 2
    assert "saved repository must be the only library" in capsys.readouterr().err
