"""The report's decision controls in headless Chromium: mark, download, search again.

Uses the browser fixture (tests/conftest.py) and the helpers of tests/pages.py
(which say what is needed, and when the tests skip).
"""

import hashlib
import json
import os

import pytest
from images import copy_bytes, reencode, save_photo
from pages import HOSTILE, LATIN1, export

import fastdif
from fastdif.io import decisions

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _search(dif, **kwargs):
    return fastdif.search(dif, similarity="similar", show_progress=False, processes=1, **kwargs)


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def pics(tmp_path):
    """Three groups: twins (byte copies), a photo and its re-encode, and hostile names."""
    pics = tmp_path / "pics"
    twin = save_photo(1, pics / "twin.png", 64, 48)
    copy_bytes(twin, pics / "twin_copy.png")
    beach = save_photo(2, pics / "beach.jpg", 240, 160)
    reencode(beach, pics / "beach_reencoded.jpg", 60)
    hostile = save_photo(3, pics / HOSTILE, 64, 48)
    copy_bytes(hostile, os.path.join(os.fsencode(pics), LATIN1))
    save_photo(4, pics / "unique.png", 64, 48)
    return pics


@pytest.fixture
def open_report(browser):  # noqa: F811 - the imported fixture
    contexts = []

    def opened(se, path):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.dialogs = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.goto(f"file://{se.report(path)}")
        return page

    yield opened
    for context in contexts:
        context.close()


def group_of(page, path):
    """The section of the group that shows ``path``."""
    return page.locator("section.group").filter(has=page.get_by_text(path, exact=True))


def test_marks_download_and_search_again(pics, tmp_path, open_report):
    twin, beach = str(pics / "twin.png"), str(pics / "beach.jpg")
    dif = fastdif.build(pics, show_progress=False, processes=1)
    se = _search(dif)
    assert len(se.result) == 3
    page = open_report(se, tmp_path / "report.html")
    group_of(page, beach).locator("button.mark-distinct").click()
    group_of(page, twin).locator("button.mark-done").click()
    # The page is drawn again: the new buttons show the marks.
    assert group_of(page, beach).locator("button.mark-distinct").get_attribute("aria-pressed") == (
        "true"
    )
    assert group_of(page, twin).locator("button.mark-done").get_attribute("aria-pressed") == "true"
    assert group_of(page, twin).locator("button.mark-distinct").get_attribute("aria-pressed") == (
        "false"
    )
    # "Not a duplicate": none of the group's files is exported for removal.
    _, removed = export(page, "#export-json")
    assert str(pics / "beach_reencoded.jpg") not in json.loads(removed)
    assert str(pics / "twin_copy.png") in json.loads(removed)

    name, text = export(page, "#export-decisions")
    assert name == "fastdif-decisions.json"
    document = decisions.validate(json.loads(text))
    assert document["format"] == "fastdif-decisions" and document["version"] == 1
    (distinct,) = document["distinct"]
    assert sorted((f["path"], f["sha256"]) for f in distinct["files"]) == sorted(
        (p, _sha256(p)) for p in (beach, str(pics / "beach_reencoded.jpg"))
    )
    (done,) = document["done"]
    assert {f["sha256"] for f in done["files"]} == {_sha256(twin)}
    downloaded = tmp_path / "decisions.json"
    downloaded.write_text(text, encoding="utf-8")

    again = _search(dif, decisions=downloaded)
    assert len(again.result) == 1 and beach not in again.result and twin not in again.result
    used = again.stats["process"]["search"]["decisions"]
    assert used["pairs_dropped"] == 1 and used["groups_hidden"] == 1

    # Shown on request, the done group is marked done; unmarked, the download
    # keeps the other decisions and drops the done entry.
    shown = _search(dif, decisions=downloaded, show_done=True)
    assert twin in shown.result
    page = open_report(shown, tmp_path / "report_shown.html")
    button = group_of(page, twin).locator("button.mark-done")
    assert button.get_attribute("aria-pressed") == "true"
    button.click()
    _, text = export(page, "#export-decisions")
    updated = decisions.validate(json.loads(text))
    assert updated["done"] == [] and updated["distinct"] == document["distinct"]
    downloaded.write_text(text, encoding="utf-8")
    assert sorted(_search(dif, decisions=downloaded).result) == sorted(
        k for k in se.result if k != beach
    )
    assert page.errors == []


def test_hostile_names_stay_text_and_come_back_exactly(pics, tmp_path, open_report):
    dif = fastdif.build(pics, show_progress=False, processes=1)
    se = _search(dif)
    hostile = str(pics / HOSTILE)
    latin1 = os.fsdecode(os.path.join(os.fsencode(pics), LATIN1))
    assert {hostile, latin1} <= {*se.result, *se.lower_quality}
    page = open_report(se, tmp_path / "report.html")
    group = group_of(page, hostile)
    assert group.locator("button.mark-distinct").text_content() == "not a duplicate"
    group.locator("button.mark-distinct").click()
    _, text = export(page, "#export-decisions")
    (entry,) = json.loads(text)["distinct"]
    assert sorted(f["path"] for f in entry["files"]) == sorted([hostile, latin1])
    assert page.query_selector("img[src=x]") is None and page.dialogs == []
    assert page.errors == []
    path = tmp_path / "decisions.json"
    path.write_text(text, encoding="utf-8")
    again = _search(dif, decisions=path)
    assert not {hostile, latin1} & {*again.result, *again.lower_quality}
    assert len(again.result) == 2
