"""Make docs/report.png: the HTML report of a small generated photo folder.

Run from the repository root with Debian's chromium installed:
``python docs/report_screenshot.py``. The images come from tests/images.py.
"""

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from images import copy_bytes, reencode, resized, rotated, save_photo  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

import fastdif  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def make_folder(root: str) -> str:
    """A small photo folder with copies, re-encodes, a resized and a rotated copy."""
    pics = os.path.join(root, "Pictures")
    beach = save_photo(1, f"{pics}/2024/holiday/beach.jpg", 1200, 800)
    copy_bytes(beach, f"{pics}/backup/beach.jpg")
    reencode(beach, f"{pics}/phone/IMG_0412.jpg", 70)
    resized(beach, f"{pics}/phone/beach_small.jpg", 0.25)
    sunset = save_photo(2, f"{pics}/2024/holiday/sunset.png", 900, 900)
    rotated(sunset, f"{pics}/2024/holiday/sunset_rotated.png", 90)
    cat = save_photo(3, f"{pics}/2023/cat.jpg", 800, 1000)
    copy_bytes(cat, f"{pics}/2023/cat (1).jpg")
    for seed in range(4, 8):
        save_photo(seed, f"{pics}/2023/photo_{seed}.jpg", 640, 480)
    with open(f"{pics}/2023/notes.txt", "w") as out:
        out.write("not an image")
    return pics


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        pics = make_folder(root)
        os.chdir(root)
        dif = fastdif.build("Pictures", show_progress=False)
        se = fastdif.search(dif, similarity="similar", same_dim=False, show_progress=False)
        report = os.path.abspath(se.report("report.html"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 860})
            page.goto(f"file://{report}")
            page.wait_for_timeout(300)
            page.screenshot(path=os.path.join(HERE, "report.png"))
            browser.close()
        print(f"searched {pics}; wrote {os.path.join(HERE, 'report.png')}")


if __name__ == "__main__":
    main()
