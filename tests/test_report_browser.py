"""The HTML report in a real headless Chromium, driven by Playwright.

Needs Debian's chromium (``apt-get install chromium``; .ci/run installs it)
and the ``playwright`` package (test extra). Playwright's own browser download
is not used. Without a browser the tests skip, unless FASTDIF_REQUIRE_BROWSER
is set (as in CI), where they fail instead.
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from images import copy_bytes, reencode, save_photo
from pages import (
    HOSTILE,
    LATIN1,
    QUOTED,
    SCRIPT_DIR,
    card,
    export,
    numbered_names,
    opened,
    shown,
)
from PIL import Image

import fastdif

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    """24 groups of exact copies (2 to 4 images), one similar group, one group of
    hostile file names, a unique image; the search result and its report."""
    root = tmp_path_factory.mktemp("browser")
    pics = root / "pics"
    for k in range(24):
        first = save_photo(10 + k, pics / f"set{k:02d}" / "a.png", 64, 48)
        for copy in range(1 + k % 3):
            copy_bytes(first, pics / f"set{k:02d}" / f"copy{copy}.png")
    beach = save_photo(1, pics / "beach.jpg", 240, 160)
    reencode(beach, pics / "beach_reencoded.jpg", 60)
    hostile = save_photo(3, pics / HOSTILE, 64, 48)
    copy_bytes(hostile, pics / SCRIPT_DIR / "script>.jpg")
    copy_bytes(hostile, pics / QUOTED)
    copy_bytes(hostile, os.path.join(os.fsencode(pics), LATIN1))
    save_photo(4, pics / "unique.jpg", 64, 48)
    dif = fastdif.build(pics, show_progress=False, processes=1)
    se = fastdif.search(dif, similarity="similar", show_progress=False, processes=1)
    assert len(se.result) == 26
    report = se.report(root / "report.html")
    return {"root": root, "pics": pics, "se": se, "url": f"file://{report}"}


@pytest.fixture
def page(browser, found):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(found["url"])
    yield page
    assert page.errors == []
    context.close()


def test_every_group_and_thumbnail_renders(page, found):
    se = found["se"]
    page.select_option("#page-size", "10")
    assert "26 of 26 groups shown" in page.text_content("#pager-top .page-info")
    ids, paths = [], []
    while True:
        page_ids, page_paths = shown(page)
        assert 0 < len(page_ids) <= 10
        ids += page_ids
        paths += page_paths
        # Lazy images load once scrolled into view; each must decode to pixels.
        widths = page.evaluate(
            """async () => {
              const out = [];
              for (const img of document.querySelectorAll(".thumb img")) {
                img.scrollIntoView();
                await img.decode();
                out.push(img.naturalWidth);
              }
              return out;
            }"""
        )
        assert len(widths) == len(page_paths) and all(w > 0 for w in widths)
        if page.is_disabled("#pager-top .next"):
            break
        page.click("#pager-top .next")
    assert sorted(ids) == list(range(1, 27))
    assert sorted(paths) == sorted([*se.result, *se.lower_quality])
    keys = page.evaluate(
        "() => [...document.querySelectorAll('.badge.key')].length"
    )  # last page only
    assert keys == len(page_ids)
    summary = page.text_content("#summary")
    assert "files scanned" in summary and "26groups" in summary.replace(" ", "")


def test_hostile_file_names_stay_text(page, found):
    pics = found["pics"]
    page.fill("#text", "alert")
    ids, paths = shown(page)
    assert len(ids) == 1
    assert set(paths) == {
        str(pics / HOSTILE),
        str(pics / SCRIPT_DIR / "script>.jpg"),
        str(pics / QUOTED),
        os.fsdecode(os.path.join(os.fsencode(pics), LATIN1)),
    }
    texts = page.eval_on_selector_all(".image .path", "nodes => nodes.map((n) => n.textContent)")
    assert set(texts) == set(paths)
    assert page.query_selector("img[src=x]") is None
    assert page.query_selector("main script") is None
    assert page.dialogs == []
    # The listener does see dialogs: an alert from the page itself is caught.
    page.evaluate("() => alert('control')")
    assert page.dialogs == ["control"]


def test_sort_and_filter(page, found):
    page.select_option("#page-size", "100")
    page.select_option("#sort", "size-desc")
    sizes = page.eval_on_selector_all(
        "section.group", "nodes => nodes.map((n) => n.querySelectorAll('.image').length)"
    )
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 26
    page.select_option("#kind", "similar")
    _, paths = shown(page)
    assert sorted(paths) == [
        str(found["pics"] / "beach.jpg"),
        str(found["pics"] / "beach_reencoded.jpg"),
    ]
    page.select_option("#kind", "duplicates")
    ids, _ = shown(page)
    assert len(ids) == 25
    page.fill("#min-size", "4")
    ids, paths = shown(page)
    assert len(ids) == 9 and len(paths) == 36


def test_export_lists_the_files_not_kept_and_the_script_moves_them(page, found, tmp_path):
    se, pics = found["se"], found["pics"]
    page.select_option("#page-size", "100")
    # Hostile group: also keep the quoted copy.
    card(page, str(pics / QUOTED)).get_by_role("checkbox").check()
    # set00 group: keep nothing, so the export leaves the whole group out.
    set00_key = str(pics / "set00" / "a.png")
    assert se.result[set00_key] == [[str(pics / "set00" / "copy0.png"), 0.0]]
    card(page, set00_key).get_by_role("checkbox").uncheck()
    assert "1 groups keep no file" in page.text_content("#choice")
    expected = [
        path
        for key, members in se.result.items()
        if key != set00_key
        for path, _ in members
        if path != str(pics / QUOTED)
    ]
    name, text = export(page, "#export-json")
    assert name == "fastdif-remove.json"
    assert json.loads(text) == expected
    assert page.input_value("#export-preview") == text

    moved = tmp_path / "moved here"
    page.select_option("#action", "move")
    page.fill("#destination", str(moved))
    name, script = export(page, "#export-sh")
    assert name == "fastdif-remove.sh" and script.startswith("#!/bin/sh\n")
    before = {p: os.path.getsize(p) for p in [*se.result, *se.lower_quality]}
    run = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    try:
        assert sorted(os.listdir(moved)) == sorted(numbered_names(expected))
        for path in before:
            assert os.path.exists(path) == (path not in expected), path
        assert not (tmp_path / "pwned").exists() and not (found["root"] / "pwned").exists()
    finally:
        # Put the files back for the other tests of this module.
        for path, name in zip(expected, numbered_names(expected), strict=True):
            target = moved / name
            if target.exists() and not os.path.exists(path):
                shutil.move(target, path)


def test_delete_script_quotes_paths_and_guards_on_the_kept_file(page, found):
    se, pics = found["se"], found["pics"]
    page.select_option("#action", "delete")
    assert page.is_hidden("#destination")
    _, script = export(page, "#export-sh")
    lines = script.splitlines()
    quoted = str(pics / QUOTED).replace("'", "'\\''")
    key = next(k for k, members in se.result.items() if str(pics / QUOTED) in dict(members))
    assert f"[ -e '{key}' ] && rm -- '{quoted}'" in lines
    assert sum(line.startswith("[ -e ") for line in lines) == len(se.lower_quality)
    assert not any(line.startswith(("mv", "mkdir")) for line in lines)


def test_library_images_are_marked_kept_and_never_exported(browser, tmp_path):
    library, new = tmp_path / "library", tmp_path / "new"
    original = save_photo(5, library / "a.png", 64, 48)
    copy_bytes(original, new / "a_copy.png")
    dif = fastdif.build(str(new), reference=str(library), show_progress=False, processes=1)
    se = fastdif.search(dif, show_progress=False, processes=1)
    assert se.result == {original: [[str(new / "a_copy.png"), 0.0]]}
    report = se.report(tmp_path / "report.html")
    with opened(browser, report) as page:
        library_card = card(page, original)
        assert library_card.locator(".badge").text_content() == "library"
        box = library_card.locator("input[type=checkbox]")
        assert box.is_checked() and box.is_disabled()
        assert card(page, str(new / "a_copy.png")).locator(".badge").text_content() == "duplicate"
        _, text = export(page, "#export-json")
        assert json.loads(text) == [str(new / "a_copy.png")]
        # Even with its keep flag cleared by a script, a library image is never exported.
        page.evaluate("() => { keep[0][0] = false; keep[0][1] = true; }")
        _, text = export(page, "#export-json")
        assert json.loads(text) == []


def test_a_chained_file_starts_kept_and_is_not_exported(browser, tmp_path):
    """A file linked to the key only through another member is shown, kept, never exported."""
    base = np.asarray(Image.open(save_photo(43, tmp_path / "src.png", 64, 48)), dtype=np.uint8)
    pics = tmp_path / "pics"
    pics.mkdir()
    a, b, c = (str(pics / name) for name in ("a.png", "b.png", "c.png"))
    Image.fromarray(base).save(a, compress_level=0)  # largest file: the key
    Image.fromarray(base + np.uint8(2)).save(b, compress_level=9)
    Image.fromarray(base + np.uint8(4)).save(c, compress_level=9)
    dif = fastdif.build(str(pics), show_progress=False, processes=1)
    se = fastdif.search(dif, similarity="similar", rotate=False, show_progress=False, processes=1)
    assert se.result == {a: [[b, 4.0]]} and list(se.stats["process"]["search"]["chained"]) == [c]
    report = se.report(tmp_path / "report.html")
    with opened(browser, report) as page:
        chained = card(page, c)
        assert chained.locator(".badge").text_content() == "chained"
        assert chained.locator("input[type=checkbox]").is_checked()
        assert f"matched through {b}" in chained.text_content()
        _, text = export(page, "#export-json")
        assert json.loads(text) == [b]
