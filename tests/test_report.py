"""The report module: CSV and JSON round-trips, safe HTML, report data, CLI flags."""

import base64
import csv
import io
import json
import os
import re
from importlib import resources

import images
import numpy as np
import pytest
from commands import run_cli
from images import copy_bytes, reencode, resized, rotated, save_photo
from PIL import Image

import fastdif
from fastdif import report
from fastdif.cli import main

HOSTILE = "<img src=x onerror=alert(1)>.jpg"


@pytest.fixture
def pics(tmp_path):
    """Three groups (exact copies, similar copies, a rotated copy), a unique image,
    hostile file names and a broken file."""
    d = tmp_path / "pics"
    a = save_photo(1, d / "holiday" / "beach.jpg", 300, 200)
    copy_bytes(a, d / "backup" / "beach.jpg")
    reencode(a, d / "phone" / "IMG_0001.jpg", 70)
    resized(a, d / "phone" / "beach_small.jpg")
    b = save_photo(2, d / "sunset.png", 160, 160)
    rotated(b, d / "sunset_rotated.png", 90)
    c = save_photo(3, d / HOSTILE)
    copy_bytes(c, d / "<script>alert(2)<" / "script>.jpg")
    copy_bytes(c, d / 'it\'s "quoted" & $(echo no).jpg')
    save_photo(4, d / "unique.jpg")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff not a JPEG")
    return d


@pytest.fixture
def se(pics, find):
    return find(pics, similarity="similar", same_dim=False)


def rows_to_result(text, in_folder=False):
    """Read the CSV export back into difPy's result shape."""
    result = {}
    key = None
    for row in csv.DictReader(io.StringIO(text)):
        target = result.setdefault(row["folder"], {}) if in_folder else result
        if row["role"] == "key":
            key = row["path"]
            target[key] = []
        else:
            target[key].append([row["path"], float(row["mse"])])
    return result


def test_csv_round_trips_the_result_exactly(se, pics):
    text = report.to_csv(se)
    assert text.splitlines()[0] == ",".join(report.CSV_COLUMNS)
    assert rows_to_result(text) == se.result
    assert any(mse != 0 for members in se.result.values() for _, mse in members)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(se.result) + len(se.lower_quality)
    by_path = {row["path"]: row for row in rows}
    small = by_path[str(pics / "phone" / "beach_small.jpg")]
    assert (small["width"], small["height"]) == ("150", "100")
    assert small["bytes"] == str(os.path.getsize(pics / "phone" / "beach_small.jpg"))
    assert small["role"] == "member" and small["folder"] == ""
    hostile = by_path[str(pics / HOSTILE)]
    assert hostile["role"] == "key" and hostile["mse"] == "0.0"
    # Group ids number the groups from 1 in result order, key first.
    ids = [int(row["group"]) for row in rows]
    assert ids == sorted(ids) and ids[0] == 1 and ids[-1] == len(se.result)


@pytest.mark.parametrize("in_folder", [True, "subfolders"])
def test_csv_round_trips_an_in_folder_result(pics, find, in_folder):
    se = find(pics, similarity="similar", same_dim=False, in_folder=in_folder)
    assert se.result, "expected matches inside folders"
    text = report.to_csv(se)
    assert rows_to_result(text, in_folder=True) == se.result


def test_json_results_of_the_cli_round_trip(pics, tmp_path, find, capsys):
    out = tmp_path / "out"
    out.mkdir()
    args = [str(pics), "-Z", str(out), "-s", "similar", "-dim", "false", "-p", "false"]
    assert main([*args, "-proc", "1"]) == 0
    expected = find(pics, similarity="similar", same_dim=False)
    results = [f for f in os.listdir(out) if f.endswith("_results.json")]
    assert len(results) == 1
    assert json.loads((out / results[0]).read_text(encoding="utf-8")) == expected.result
    assert "wrote" in capsys.readouterr().out


def test_cli_format_csv_replaces_the_results_json(pics, tmp_path, se):
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        [str(pics), "-Z", str(out), "-s", "similar", "-dim", "false", "-p", "false", "-q"]
        + ["--format", "csv", "-proc", "1"]
    )
    assert code == 0
    names = sorted(os.listdir(out))
    assert [n.split("_", 2)[2] for n in names] == [
        "lower_quality.json",
        "results.csv",
        "stats.json",
    ]
    text = (out / names[1]).read_text(encoding="utf-8")
    assert rows_to_result(text) == se.result
    assert text == report.to_csv(se)


def test_script_json_cannot_end_the_script_element():
    data = {"path": "</script><script>alert(1)</script>&amp;\u2028\u2029", "n": [1.5, None]}
    text = report.script_json(data)
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == data


def test_report_html_holds_file_names_only_as_escaped_data(se, tmp_path, pics):
    path = se.report(tmp_path / "report.html", processes=1)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert path == str(tmp_path / "report.html")
    # The only markup is the template's own: two script elements and no
    # hostile name anywhere in raw form.
    assert html.count("<script") == 2
    assert "onerror=alert" not in html.replace("onerror=alert(1)\\u003e", "")
    assert "alert(2)</script>" not in html
    assert "<img" not in html
    data = json.loads(re.search(r'id="fastdif-data">(.*?)</script>', html, re.S).group(1))
    paths = [im["path"] for g in data["groups"] for im in g["images"]]
    assert str(pics / HOSTILE) in paths
    assert str(pics / "<script>alert(2)<" / "script>.jpg") in paths


def test_report_and_csv_take_non_utf8_file_names(tmp_path, find):
    original = save_photo(6, tmp_path / "a.png")
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9 \xff.png")  # Latin-1, not UTF-8
    copy_bytes(original, raw)
    se = find(tmp_path)
    odd = os.fsdecode(raw)
    assert se.result == {original: [[odd, 0.0]]}
    se.report(tmp_path / "r.html", processes=1)
    html = (tmp_path / "r.html").read_bytes().decode("utf-8")  # valid UTF-8
    data = json.loads(re.search(r'id="fastdif-data">(.*?)</script>', html, re.S).group(1))
    image = data["groups"][0]["images"][1]
    assert os.fsencode(image["path"]) == raw
    assert image["thumbnail"] and image["format"] == "PNG"
    assert rows_to_result(report.to_csv(se)) == se.result
    assert repr(odd) in report.listing(se)


def test_report_data_describes_every_image(se, pics):
    data = report.report_data(se, thumbnail_size=64, processes=2)
    summary = data["summary"]
    assert summary["files"] == 11
    assert list(summary["invalid"]) == [str(pics / "broken.jpg")]
    assert summary["invalid"][str(pics / "broken.jpg")].startswith("UnidentifiedImageError")
    assert summary["groups"] == len(se.result) == len(data["groups"]) == 3
    assert summary["duplicates"] + summary["similar"] == len(se.lower_quality)
    images = {im["path"]: im for g in data["groups"] for im in g["images"]}
    assert set(images) == set(se.result) | set(se.lower_quality)
    beach = images[str(pics / "phone" / "beach_small.jpg")]
    assert beach["format"] == "JPEG" and (beach["width"], beach["height"]) == (150, 100)
    assert images[str(pics / "sunset.png")]["format"] == "PNG"
    for image in images.values():
        assert image["error"] is None
        head, payload = image["thumbnail"].split(",", 1)
        assert head == "data:image/jpeg;base64"
        with Image.open(io.BytesIO(base64.b64decode(payload))) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) == 64
    for group in data["groups"]:
        key = group["images"][0]
        assert key["role"] == "key" and key["path"] in se.result
        members = [[im["path"], im["mse"]] for im in group["images"][1:]]
        assert members == se.result[key["path"]]


def test_report_shows_why_an_image_is_gone(se, pics, tmp_path):
    gone = str(pics / "phone" / "IMG_0001.jpg")
    os.remove(gone)
    data = report.report_data(se, processes=1)
    image = next(im for g in data["groups"] for im in g["images"] if im["path"] == gone)
    assert image["thumbnail"] is None and image["format"] is None
    assert image["error"].startswith("FileNotFoundError")
    # Dimensions and size still come from the repository, read at build time.
    assert image["width"] == 300 and image["bytes"] > 0
    assert os.path.exists(se.report(tmp_path / "r.html"))


def test_report_without_a_repository_reads_the_files(se, pics):
    se.repository = None
    data = report.report_data(se, processes=1)
    beach = next(
        im
        for g in data["groups"]
        for im in g["images"]
        if im["path"] == str(pics / "phone" / "beach_small.jpg")
    )
    assert (beach["width"], beach["height"]) == (150, 100)
    assert beach["bytes"] == os.path.getsize(beach["path"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"thumbnail_size": 8}, ValueError, '"thumbnail_size" parameter: must be between 16'),
        ({"thumbnail_size": 64.0}, TypeError, '"thumbnail_size" parameter: must be of type INT'),
        ({"processes": 0}, ValueError, '"processes" parameter: must be >= 1'),
        ({"processes": True}, TypeError, '"processes" parameter: must be of type INT'),
    ],
)
def test_report_parameters_are_checked(se, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        se.report(tmp_path / "r.html", **kwargs)
    assert not (tmp_path / "r.html").exists()


def test_report_replaces_an_old_report_atomically(se, tmp_path):
    target = tmp_path / "r.html"
    se.report(target, processes=1)
    with open(target, "a", encoding="utf-8") as f:
        f.write("<!-- old -->")
    se.report(target, processes=1)
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<!-- old -->" not in text
    assert sorted(os.listdir(tmp_path)) == ["pics", "r.html"]  # no temporary file left


def test_listing_names_invalid_files_and_every_group(se, pics):
    text = report.listing(se)
    lines = text.splitlines()
    assert lines[0] == "invalid files: 1"
    assert lines[1].startswith(f"  {pics / 'broken.jpg'}: ")
    assert "groups: 3" in lines
    for key, members in se.result.items():
        assert f"  key    {key}" in lines
        for path, mse in members:
            assert f"  member {path}  mse {mse:.4g}" in lines


def test_listing_quotes_names_with_line_breaks(tmp_path, find):
    a = save_photo(5, tmp_path / "two\nlines.png")
    copy_bytes(a, tmp_path / "copy.png")
    text = report.listing(find(tmp_path))
    assert repr(str(tmp_path / "two\nlines.png")) in text
    assert len(text.splitlines()) == 5


def test_cli_quiet_prints_nothing_and_still_writes(pics, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(str(pics), "-Z", str(out), "-q", "--report", "r.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert len(os.listdir(out)) == 3
    assert (tmp_path / "r.html").exists()


def test_cli_verbose_lists_then_summarises(pics, tmp_path):
    proc = run_cli(str(pics), "-Z", str(tmp_path), "-v", "-p", "false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "invalid files: 1"
    assert any(line.startswith(f"  {pics / 'broken.jpg'}: ") for line in lines)
    assert f"  key    {pics / 'backup' / 'beach.jpg'}" in lines
    summary = next(i for i, line in enumerate(lines) if line.startswith("fastdif: "))
    assert all(line.startswith("wrote ") for line in lines[summary + 1 :] if "cache" not in line)
    # Byte copies, and the lossless rotation (exact under the area filter).
    assert summary > lines.index("groups: 3")
    assert "\x1b[" not in proc.stdout  # colour-free


def test_cli_quiet_and_verbose_exclude_each_other(pics, tmp_path):
    proc = run_cli(str(pics), "-q", "-v", cwd=tmp_path)
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr


def test_cli_report_is_written_before_files_move(pics, tmp_path):
    dest = tmp_path / "dupes"
    dest.mkdir()
    proc = run_cli(
        str(pics),
        "-Z",
        str(tmp_path),
        "-mv",
        str(dest),
        "-p",
        "false",
        "--report",
        "r.html",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {os.path.join('r.html')}" in proc.stdout.splitlines()
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="fastdif-data">(.*?)</script>', html, re.S).group(1))
    moved = str(pics / "holiday" / "beach.jpg")
    image = next(im for g in data["groups"] for im in g["images"] if im["path"] == moved)
    assert image["thumbnail"] and image["error"] is None
    assert not os.path.exists(moved) and (dest / "beach.jpg").exists()


def test_the_page_is_package_data_and_the_report_holds_its_parts():
    packaged = resources.files("fastdif").joinpath("templates").joinpath("report.html")
    page = report.template()
    assert page == packaged.read_text(encoding="utf-8") and page.count("/*DATA*/") == 1

    html = report.render_html({"groups": [], "note": "</script>"})
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert all(mark.decode() in html for mark in report._REPORT_MARKS)
    assert '{"groups":[],"note":"\\u003c/script\\u003e"}' in html and "/*DATA*/" not in html


def test_the_wheel_takes_the_page():
    tomllib = pytest.importorskip("tomllib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(report.__file__)))
    pyproject = os.path.join(root, "pyproject.toml")
    if not os.path.exists(pyproject):
        pytest.skip("fastdif is installed, not run from its source")
    with open(pyproject, "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["fastdif"]
    assert "templates/*.html" in package_data


def test_a_chained_file_is_shown_apart_and_kept_everywhere(tmp_path, capsys):
    """MSE(a, b) = MSE(b, c) = 4 but MSE(a, c) = 16: c is listed apart, never dropped."""
    base = images.photo(43)
    folder = tmp_path / "pics"
    a = images.save(base, folder / "a.png", compress_level=0)  # largest file: the key
    b = images.save(base + np.uint8(2), folder / "b.png", compress_level=9)
    c = images.save(base + np.uint8(4), folder / "c.png", compress_level=9)
    dif = fastdif.build(str(folder), show_progress=False, processes=1)
    se = fastdif.search(dif, similarity="similar", rotate=False, show_progress=False, processes=1)
    (group,) = report.groups(se)
    assert [(im["path"], im["role"]) for im in group["images"]] == [
        (a, "key"),
        (b, "member"),
        (c, "chained"),
    ]
    assert group["images"][2]["transform"] == f"matched through {b}"
    rows = list(csv.DictReader(io.StringIO(report.to_csv(se))))
    assert [(r["path"], r["role"], r["transform"]) for r in rows][2] == (
        c,
        "chained",
        f"matched through {b}",
    )
    assert f"  chained {c}  mse 16  (matched through {b})" in report.listing(se).splitlines()
    out = tmp_path / "out"
    args = [str(folder), "-Z", str(out), "-s", "similar", "-ro", "false", "-p", "false"]
    assert main([*args, "-mv", str(tmp_path / "moved")]) == 0
    printed = capsys.readouterr().out
    assert "1 more files match a group member but not its key within the threshold" in printed
    assert "moved 1 files" in printed and "0 failed" in printed
    assert os.path.exists(a) and os.path.exists(c) and not os.path.exists(b)
