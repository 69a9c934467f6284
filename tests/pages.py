"""The report in headless Chromium: hostile names, flags, and helpers to read a page.

The ``browser`` fixture (tests/conftest.py) needs Debian's chromium
(``apt-get install chromium``; .ci/run installs it) and the ``playwright``
package (test extra); Playwright's own browser download is not used. Without
a browser the tests skip, unless FASTDIF_REQUIRE_BROWSER is set (as in CI),
where they fail instead.
"""

import os
from contextlib import contextmanager

import pytest

HOSTILE = "<img src=x onerror=alert(1)>.jpg"
SCRIPT_DIR = "<script>alert(2)<"
QUOTED = 'it\'s "quoted" & $(touch pwned) `touch pwned`.jpg'
LATIN1 = b"caf\xe9 \xff.jpg"  # not UTF-8: os.fsdecode gives lone surrogates
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def unavailable(reason):
    """Skip (or, with FASTDIF_REQUIRE_BROWSER set, fail) for ``reason``."""
    if os.environ.get("FASTDIF_REQUIRE_BROWSER"):
        pytest.fail(f"FASTDIF_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


def shown(page):
    """(group ids, image paths) of the groups on the current page."""
    return page.evaluate(
        """() => [
          [...document.querySelectorAll("section.group")].map((s) => Number(s.dataset.group)),
          [...document.querySelectorAll(".image")].map((d) => d.dataset.path),
        ]"""
    )


def card(page, path):
    """The card of the image at ``path``, found by its visible path text."""
    return page.locator(".image").filter(has=page.get_by_text(path, exact=True))


def numbered_names(paths):
    """Base names made unique with move_to's rule: name.ext, name_1.ext, ..."""
    used = []
    for path in paths:
        stem, ext = os.path.splitext(os.path.basename(path))
        name, number = stem + ext, 0
        while name in used:
            number += 1
            name = f"{stem}_{number}{ext}"
        used.append(name)
    return used


def export(page, button):
    """Click an export button; return (file name, text) of the Blob it offers."""
    page.click(button)
    return tuple(
        page.evaluate(
            """async () => {
              const link = document.getElementById("export-link");
              const text = await (await fetch(link.href)).text();
              return [link.download, text];
            }"""
        )
    )


@contextmanager
def opened(browser, report):
    """A page of ``browser`` showing the report file ``report``, closed after."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"file://{report}")
        yield page
    finally:
        context.close()
