"""See a search result: the HTML report and the CSV export.

The report is one self-contained HTML file: the data (paths, dimensions,
sizes, formats, MSEs and small JPEG thumbnails as data URIs) sits in one
JSON block, and plain JavaScript renders one page of groups at a time, so a
report of thousands of groups opens quickly and needs no network. A person
ticks the files to keep and downloads a JSON list or a shell script of the
files to move or delete; the page itself never touches a file.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from PIL import Image, ImageOps

from ._version import __version__
from .actions import create_temp
from .io import decisions
from .io.decode import to_rgb
from .io.files import open_regular
from .progress import progress_bar

#: Longest side of a report thumbnail in pixels, and its JPEG quality: about
#: 5 KB per image as a data URI for the benchmark's photo-like images (real
#: photos hold more detail), so 10,000 images make a report of 50 to 100 MB.
THUMBNAIL_SIZE = 160
THUMBNAIL_QUALITY = 75

#: Columns of the CSV export, one row per image.
CSV_COLUMNS = (
    "group",
    "role",
    "path",
    "mse",
    "width",
    "height",
    "bytes",
    "folder",
    "reference",
    "kept_because",
    "transform",
)

#: What every report starts with, and what its first :data:`_REPORT_HEAD`
#: bytes hold: a file at the report's path is replaced only when it has all
#: three (a report this module wrote), so a photo named by mistake survives.
_REPORT_START = b"<!DOCTYPE html>"
_REPORT_MARKS = (b"<title>fastdif report</title>", b'id="fastdif-data"')
_REPORT_HEAD = 64 * 1024


def groups(se) -> list[dict]:
    """The groups of a search result, key first, with what is known of each image.

    Parameters
    ----------
    se : SearchResult

    Returns
    -------
    list of dict
        One dict per group, in result order: ``{"id": int (from 1), "folder":
        str or None (the search group with ``in_folder``), "kept_because":
        why the key was kept (``stats["process"]["search"]["keep"]``, None
        when the stats hold no reason), "images": [...]}``.
        Each image is ``{"path", "role" ("key" or "member"), "mse" (to the
        key, 0..255 scale; 0 for the key), "width", "height", "bytes",
        "reference" (a library image: always a key, never dropped),
        "transform" (how a member matched its key where rotated or mirrored,
        e.g. "flipped horizontally", from ``stats["process"]["search"]
        ["transforms"]``; "" otherwise)}``; width, height and bytes are None
        when unknown.
    """
    repositories = [r for r in (se.repository, se.reference) if r is not None]
    # path -> (repository, index); a file in both is a library image.
    index = {path: (r, i) for r in repositories for i, path in enumerate(r.paths)}
    in_folder = se.in_folder
    sections = se.result.items() if in_folder else [(None, se.result)]
    reasons = se.stats.get("process", {}).get("search", {}).get("keep", {}).get("reasons", {})
    transforms = se.stats.get("process", {}).get("search", {}).get("transforms", {})
    out = []
    for folder, result in sections:
        for key, members in result.items():
            images = [_image(key, "key", 0.0, index, se.reference)]
            images += [_image(path, "member", mse, index, se.reference) for path, mse in members]
            for image in images[1:]:
                image["transform"] = transforms.get(image["path"], "")
            out.append(
                {
                    "id": len(out) + 1,
                    "folder": folder,
                    "kept_because": reasons.get(key),
                    "images": images,
                }
            )
    return out


def _image(path, role, mse, index, library) -> dict:
    repository, i = index.get(path, (None, None))
    if repository is None:
        size = _file_size(path)
        width = height = None
    else:
        width, height = (int(v) for v in repository.shapes[i])
        size = int(repository.file_sizes[i])
    return {
        "path": path,
        "role": role,
        "mse": float(mse),
        "width": width,
        "height": height,
        "bytes": size,
        "reference": library is not None and repository is library,
        "transform": "",
    }


def _file_size(path) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def to_csv(se) -> str:
    """The search result as CSV text, one row per image (see :data:`CSV_COLUMNS`).

    ``group`` numbers groups from 1 in result order; ``role`` is ``key`` or
    ``member``; ``mse`` is the MSE to the key (``repr`` of the float, so it
    reads back exactly; 0 for the key); ``folder`` is the search group with
    ``in_folder`` and empty otherwise; ``reference`` is ``true`` for a library
    image (``search(..., reference=...)``) and empty otherwise;
    ``kept_because`` is, on the key's row, why the key was kept (the
    search's ``keep`` rule, e.g. ``kept: larger (4032 x 3024 vs 2016 x
    1512)``) and empty on the others; ``transform`` is, on a member's row,
    how it matched its key where rotated or mirrored (e.g. ``flipped
    horizontally``) and empty otherwise; unknown numbers are empty. A cell
    that a spreadsheet would read as a formula (a name starting with ``=``,
    ``+``, ``-``, ``@``, a tab or a carriage return) starts with an added
    ``'``; the JSON results keep names exact.
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    # The csv module quotes a cell that holds the line end, "\n", but not one
    # that holds a "\r", which readers take for a line end too: a row with one
    # is written with every cell quoted.
    quoting = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for group in groups(se):
        for image in group["images"]:
            row = [
                str(group["id"]),
                image["role"],
                image["path"],
                repr(image["mse"]),
                _blank(image["width"]),
                _blank(image["height"]),
                _blank(image["bytes"]),
                _blank(group["folder"]),
                "true" if image["reference"] else "",
                (group["kept_because"] or "") if image["role"] == "key" else "",
                image["transform"],
            ]
            row = [_inert(cell) for cell in row]
            (quoting if any("\r" in cell for cell in row) else writer).writerow(row)
    return text.getvalue()


#: A spreadsheet reads a cell that starts with one of these as a formula
#: (OWASP's list for CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: str) -> str:
    """``cell`` with a ``'`` in front when it starts with one of :data:`_FORMULA_STARTS`.

    Excel and LibreOffice then show the text as it is instead of evaluating
    a file name such as ``=HYPERLINK(...).png``; no column holds a negative
    number, so no number changes.
    """
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _blank(value) -> str:
    return "" if value is None else str(value)


def listing(se) -> str:
    """Plain text of the invalid files (with reasons) and every group, for ``--verbose``.

    Each group lists its key first, then every member with its MSE to the key;
    paths are printed with ``repr`` quoting only when they hold line breaks or
    other control characters, so one line is always one file.
    """
    lines = []
    invalid = se.stats["invalid_files"]["logs"]
    lines.append(f"invalid files: {len(invalid)}")
    lines += [f"  {printable(path)}: {reason}" for path, reason in invalid.items()]
    found = groups(se)
    lines.append(f"groups: {len(found)}")
    for group in found:
        where = f" in {printable(group['folder'])}" if group["folder"] else ""
        lines.append(f"group {group['id']}{where}: {len(group['images'])} images")
        for image in group["images"]:
            mse = "" if image["role"] == "key" else f"  mse {image['mse']:.4g}"
            lines.append(f"  {image['role']:<6} {printable(image['path'])}{mse}")
    return "\n".join(lines)


def printable(path: str) -> str:
    """``path`` as it is, or quoted by ``repr`` when it holds a line break or
    another character that is not printable (escape sequences, undecodable
    bytes), so one printed line is always one file and no name can move the
    terminal's cursor or change its colours."""
    return path if path.isprintable() else repr(path)


def check_report_path(path) -> str:
    """Return ``path`` as a string if a report may be written there.

    A report may take a free name or replace an earlier fastdif report,
    recognised by its content; it never replaces anything else.

    Raises
    ------
    TypeError
        ``path`` is not a string or ``os.PathLike``.
    ValueError
        ``path`` is empty.
    FileExistsError
        Something that is not a fastdif report is at ``path`` (a photo, any
        other file, a folder, a dangling link); it is left untouched.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(
            'Invalid value for "path" parameter: must be of type STRING or os.PathLike, '
            f"got {path!r}."
        )
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError('Invalid value for "path" parameter: must name a file, got "".')
    if os.path.lexists(path) and not is_report(path):
        raise FileExistsError(
            f'"{path}" exists and is not a fastdif report; not replacing it '
            "(choose a new file name for the report)"
        )
    return path


def is_report(path: str) -> bool:
    """Whether ``path`` is a regular file (or a link to one) holding a fastdif report."""
    try:
        with open_regular(path) as f:  # a folder, a dangling link, a pipe: not a report
            head = f.read(_REPORT_HEAD)
    except OSError:
        return False
    return head.lstrip().startswith(_REPORT_START) and all(m in head for m in _REPORT_MARKS)


def write_report(
    se,
    path,
    thumbnail_size: int = THUMBNAIL_SIZE,
    processes: int | None = None,
    show_progress: bool = False,
) -> str:
    """Write the HTML report of a search result to ``path``.

    Parameters
    ----------
    se : SearchResult
    path : str or os.PathLike
        The HTML file; written atomically. An earlier fastdif report of that
        name is replaced; anything else there is an error (see
        :func:`check_report_path`). Created like any other file, honouring
        the umask.
    thumbnail_size : int, default 160
        Longest side of the embedded thumbnails in pixels (16..1024).
    processes : int, optional
        CPU cores to use: here the threads reading thumbnails (Pillow
        decodes without the GIL). None uses all cores.
    show_progress : bool, default False
        Show a progress bar on stderr (only when it is a terminal).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    ValueError, TypeError
        For a ``thumbnail_size`` or ``processes`` out of range, or an empty ``path``.
    FileExistsError
        Something that is not a fastdif report is at ``path``; checked
        before any image is read, and again just before the file is replaced.
    OSError
        When the file cannot be written. Images that cannot be read are shown
        in the report with the reason instead of a thumbnail.
    """
    path = check_report_path(path)
    if isinstance(thumbnail_size, bool) or not isinstance(thumbnail_size, int):
        raise TypeError(
            f'Invalid value for "thumbnail_size" parameter: must be of type INT, '
            f"got {thumbnail_size!r}."
        )
    if not 16 <= thumbnail_size <= 1024:
        raise ValueError(
            f'Invalid value for "thumbnail_size" parameter: must be between 16 and 1024, '
            f"got {thumbnail_size}."
        )
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int)):
        raise TypeError(
            f'Invalid value for "processes" parameter: must be of type INT, got {processes!r}.'
        )
    if processes is not None and processes < 1:
        raise ValueError(f'Invalid value for "processes" parameter: must be >= 1, got {processes}.')
    data = report_data(se, thumbnail_size, processes, show_progress)
    return _write_atomic(path, render_html(data))


def report_data(
    se,
    thumbnail_size: int = THUMBNAIL_SIZE,
    processes: int | None = None,
    show_progress: bool = False,
) -> dict:
    """Everything the HTML report shows, as JSON-serialisable data.

    Parameters
    ----------
    se : SearchResult
    thumbnail_size, processes, show_progress
        As in :func:`write_report` (not checked here).

    Returns
    -------
    dict
        ``{"generator", "generated", "cwd", "summary": {...}, "groups": [...]}``
        where each image of :func:`groups` also has ``"format"`` (Pillow's
        name, e.g. ``"JPEG"``), ``"thumbnail"`` (a ``data:image/jpeg`` URI)
        and ``"error"`` (why it could not be read, else None); for decisions
        (see :func:`_decision_data`) each image has ``"sha256"``, each group
        ``"done"``, and ``"decisions"`` holds the decision file the search read.
    """
    found = groups(se)
    paths = [image["path"] for group in found for image in group["images"]]
    workers = processes or os.cpu_count() or 1
    thumbs = {}
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress_bar(len(paths), "Report", "images", show_progress) as bar,
    ):
        made = pool.map(lambda p: _thumbnail(p, thumbnail_size), paths)
        for path, thumb in zip(paths, made, strict=True):
            thumbs[path] = thumb
            bar.update()
        identities = dict(zip(paths, pool.map(decisions.content_hash, paths), strict=True))
    for group in found:
        for image in group["images"]:
            uri, fmt, width, height, error = thumbs[image["path"]]
            image.update(thumbnail=uri, format=fmt, error=error)
            if image["width"] is None:
                image["width"], image["height"] = width, height
    marked = _decision_data(se, found, identities)
    stats = se.stats
    build = stats["process"]["build"]
    search = stats["process"]["search"]
    summary = {
        "directories": list(stats["directory"]),
        "files": stats["total_files"],
        "invalid": stats["invalid_files"]["logs"],
        "groups": len(found),
        "duplicates": search["matches_found"]["duplicates"],
        "similar": search["matches_found"]["similar"],
        "similarity_mse": search["parameters"]["similarity_mse"],
        "rotate": search["parameters"]["rotate"],
        "same_dim": search["parameters"]["same_dim"],
        "in_folder": build["parameters"]["in_folder"],
        "px_size": build["parameters"]["px_size"],
        "build_seconds": build["duration"]["seconds_elapsed"],
        "search_seconds": search["duration"]["seconds_elapsed"],
    }
    return {
        "generator": f"fastdif {__version__}",
        "generated": datetime.now().isoformat(timespec="seconds"),
        "cwd": os.getcwd(),
        "summary": summary,
        "groups": found,
        "decisions": marked,
    }


def _decision_data(se, found, identities: dict) -> dict:
    """Identities and done marks of ``found`` (set in place), and the decision file read.

    Each image gets ``"sha256"`` (of its bytes, None when unreadable), each
    group ``"done"`` (shown with ``show_done`` although marked done). Returns
    ``{"source": path or None, "document": the decision document the search
    read, or an empty one}``: the page adds its marks to that document.
    """
    applied = se.decisions
    done = set() if applied is None else set(applied.done_keys)
    for group in found:
        group["done"] = group["images"][0]["path"] in done
        for image in group["images"]:
            image["sha256"] = identities[image["path"]]
    if applied is None:
        return {"source": None, "document": decisions.empty()}
    return {"source": applied.source, "document": applied.document}


def _thumbnail(path: str, size: int):
    """(data URI, format, width, height, error) for one image file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_regular(path) as file, Image.open(file) as image:
                fmt = image.format
                width, height = image.size
                if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # turned by 90 degrees
                    width, height = height, width
                # Draft mode decodes a JPEG at a reduced scale still >= 2 x size.
                image.draft("RGB", (2 * size, 2 * size))
                image = to_rgb(ImageOps.exif_transpose(image))
                image.thumbnail((size, size), Image.Resampling.LANCZOS)
                out = io.BytesIO()
                image.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
        except Exception as exc:  # noqa: BLE001 - the report shows why, and goes on
            message = str(exc).splitlines()[0] if str(exc) else ""
            reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
            return None, None, None, None, reason
    uri = "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
    return uri, fmt, width, height, None


def script_json(data) -> str:
    """JSON that is safe inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` are escaped (``\\u003c`` ...) so a file name such as
    ``</script><script>alert(1)</script>.jpg`` cannot close the element, and
    U+2028/U+2029 are escaped for older JavaScript parsers. The undecodable
    bytes of a non-UTF-8 file name (lone surrogates, as ``os.fsdecode`` gives
    them) become ``\\udcXX`` escapes, so the page stays valid UTF-8 and a
    JSON export gives back the exact name through ``os.fsencode``.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def render_html(data: dict) -> str:
    """The report page for :func:`report_data`'s ``data``."""
    return _TEMPLATE.replace("/*DATA*/", script_json(data))


def _write_atomic(path: str, text: str) -> str:
    fd, tmp = create_temp(os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        # Checked again: the build and the thumbnails took a while.
        check_report_path(path)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data: blob:; style-src 'unsafe-inline';
 script-src 'unsafe-inline'; connect-src blob:">
<title>fastdif report</title>
<style>
:root { --key: #1a7f37; --drop: #c62828; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1f2328; background: #f6f8fa; }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 12px 20px; }
h1 { font-size: 20px; margin: 0 0 8px; }
.summary { display: flex; flex-wrap: wrap; gap: 8px 24px; }
.summary div b { display: block; font-size: 18px; }
.summary div span { color: var(--muted); font-size: 12px; }
details { margin-top: 8px; } details li { word-break: break-all; }
.controls, .export { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center;
  padding: 10px 20px; background: #fff; border-bottom: 1px solid var(--line); }
.export { position: sticky; top: 0; z-index: 2; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
label { white-space: nowrap; }
input[type=number] { width: 6em; }
button { cursor: pointer; }
main { padding: 12px 20px; }
.group { background: #fff; border: 1px solid var(--line); border-radius: 6px;
  margin-bottom: 14px; padding: 10px 12px; }
.group h2 { font-size: 14px; margin: 0 0 8px; font-weight: 600; }
.group h2 .muted { font-weight: normal; }
.group h2 .reason { display: block; font-weight: normal; font-size: 12px;
  color: var(--key); }
.group.nokeep { border-color: var(--drop); }
.images { display: flex; flex-wrap: wrap; gap: 10px; }
.image { width: 200px; border: 2px solid var(--line); border-radius: 6px; padding: 6px;
  background: #fff; }
.image.kept { border-color: var(--key); }
.image.dropped { border-color: var(--drop); background: #fff5f5; }
.image.dropped img { opacity: .55; }
.thumb { width: 184px; height: 160px; display: flex; align-items: center;
  justify-content: center; background: #eaeef2; border-radius: 4px; overflow: hidden; }
.thumb img { max-width: 184px; max-height: 160px; }
.thumb .error { color: var(--drop); font-size: 12px; padding: 6px; word-break: break-all; }
.badge { display: inline-block; font-size: 11px; font-weight: 600; padding: 1px 6px;
  border-radius: 10px; color: #fff; background: var(--muted); }
.badge.key { background: var(--key); }
.path { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all;
  margin: 4px 0; }
.meta, .muted { color: var(--muted); font-size: 12px; }
.warning { color: var(--drop); font-weight: 600; }
.pager { display: flex; gap: 10px; align-items: center; margin: 8px 0 14px; }
textarea { width: 100%; height: 8em; font-family: ui-monospace, monospace; font-size: 12px; }
.hidden { display: none; }
.marks button[aria-pressed="true"] { background: var(--key); color: #fff;
  border-color: var(--key); }
</style>
</head>
<body>
<header>
  <h1>fastdif report</h1>
  <div class="summary" id="summary"></div>
  <div class="muted" id="about"></div>
  <details id="invalid"><summary></summary><ul></ul></details>
</header>
<div class="controls">
  <label>Sort <select id="sort">
    <option value="size-desc">largest groups first</option>
    <option value="size-asc">smallest groups first</option>
    <option value="mse-desc">highest MSE first</option>
    <option value="mse-asc">lowest MSE first</option>
    <option value="path">key path</option>
  </select></label>
  <label>Show <select id="kind">
    <option value="all">all groups</option>
    <option value="duplicates">exact duplicates only (MSE 0)</option>
    <option value="similar">groups with similar images (MSE &gt; 0)</option>
  </select></label>
  <label>At least <input type="number" id="min-size" min="2" value="2"> images</label>
  <label>MSE at most <input type="number" id="max-mse" min="0" step="any" placeholder="any"></label>
  <label>Path contains <input type="search" id="text"></label>
  <label>Per page <select id="page-size">
    <option>10</option><option selected>25</option><option>50</option><option>100</option>
  </select></label>
</div>
<div class="export">
  <span id="choice"></span>
  <label><select id="action">
    <option value="move">move the others to</option>
    <option value="delete">delete the others</option>
  </select></label>
  <input type="text" id="destination" value="fastdif-duplicates" aria-label="destination folder">
  <button id="export-json">Download JSON list</button>
  <button id="export-sh">Download shell script</button>
  <button id="export-decisions">Download decisions</button>
  <button id="reset">Keep keys only</button>
  <a id="export-link" class="hidden">download</a>
</div>
<main>
  <div class="pager" id="pager-top"></div>
  <div id="groups"></div>
  <div class="pager" id="pager-bottom"></div>
  <details id="export-details"><summary>Last export</summary>
    <textarea id="export-preview" readonly></textarea></details>
</main>
<script type="application/json" id="fastdif-data">/*DATA*/</script>
<script>
"use strict";
// Every value from the data is shown with textContent or attributes, never
// innerHTML: file names are data, not markup.
const DATA = JSON.parse(document.getElementById("fastdif-data").textContent);
const GROUPS = DATA.groups;
const $ = (id) => document.getElementById(id);
// keep[g][i]: image i of group g is kept; the key starts kept, the others not.
const keep = GROUPS.map((g) => g.images.map((im) => im.role === "key"));
let page = 0;
// Decisions (docs/curate.md): marks[g] says whether group g is marked "not a
// duplicate" (then none of its files is exported) or "done"; the download
// adds the marks to the decision file the search read.
const marks = GROUPS.map((g) => ({distinct: false, done: Boolean(g.done)}));

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "? bytes";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function maxMse(g) { return Math.max(...g.images.map((im) => im.mse)); }

function summary() {
  const s = DATA.summary;
  const items = [
    [s.files, "files scanned"], [Object.keys(s.invalid).length, "invalid files"],
    [s.groups, "groups"], [s.duplicates, "duplicates"], [s.similar, "similar"],
    [s.build_seconds.toFixed(2) + " s", "build"], [s.search_seconds.toFixed(2) + " s", "search"],
  ];
  for (const [value, name] of items) {
    $("summary").append(el("div", {}, el("b", {}, value), el("span", {}, name)));
  }
  $("about").textContent = "Searched " + s.directories.join(", ") + " · MSE threshold " +
    s.similarity_mse + " · rotate " + s.rotate + " · same dimensions " + s.same_dim +
    (s.in_folder === "subfolders" ? " · each folder on its own" :
     s.in_folder ? " · each input on its own" : "") + " · " + DATA.generator + ", " +
    DATA.generated;
  const invalid = Object.entries(s.invalid);
  $("invalid").querySelector("summary").textContent = "Invalid files (" + invalid.length + ")";
  if (!invalid.length) $("invalid").classList.add("hidden");
  for (const [path, reason] of invalid) {
    const item = el("li", {}, el("span", {class: "path"}, path), ": " + reason);
    $("invalid").querySelector("ul").append(item);
  }
}

function visible() {
  const kind = $("kind").value;
  const minSize = Number($("min-size").value) || 2;
  const maxText = $("max-mse").value.trim();
  const limit = maxText === "" ? Infinity : Number(maxText);
  const text = $("text").value;
  const order = GROUPS.map((g, index) => index).filter((index) => {
    const g = GROUPS[index], m = maxMse(g);
    if (g.images.length < minSize || m > limit) return false;
    if (kind === "duplicates" && m !== 0) return false;
    if (kind === "similar" && m === 0) return false;
    return !text || g.images.some((im) => im.path.includes(text));
  });
  const by = {
    "size-desc": (a, b) => GROUPS[b].images.length - GROUPS[a].images.length,
    "size-asc": (a, b) => GROUPS[a].images.length - GROUPS[b].images.length,
    "mse-desc": (a, b) => maxMse(GROUPS[b]) - maxMse(GROUPS[a]),
    "mse-asc": (a, b) => maxMse(GROUPS[a]) - maxMse(GROUPS[b]),
    "path": () => 0,
  }[$("sort").value];
  return order.sort((a, b) => by(a, b) || a - b);
}

function badge(im) {
  if (im.reference) return "library";
  return im.role === "key" ? "key" : im.mse === 0 ? "duplicate" : "similar";
}

function imageCard(g, i) {
  const im = GROUPS[g].images[i];
  const thumb = im.thumbnail
    ? el("img", {src: im.thumbnail, loading: "lazy", alt: im.path})
    : el("div", {class: "error"}, "no thumbnail: " + (im.error || "unknown"));
  const box = el("input", {type: "checkbox", "data-group": g, "data-image": i});
  box.checked = keep[g][i];
  box.disabled = im.reference;  // a library image is always kept
  box.addEventListener("change", () => { keep[g][i] = box.checked; render(false); });
  const dims = im.width ? im.width + " × " + im.height : "? × ?";
  const state = keep[g][i] ? "kept" : "dropped";
  const card = el("div", {class: "image " + state, "data-path": im.path},
    el("div", {class: "thumb"}, thumb),
    el("div", {},
      el("span", {class: "badge" + (im.role === "key" ? " key" : "")}, badge(im)), " ",
      el("label", {}, box, " keep")),
    el("div", {class: "path"}, im.path),
    el("div", {class: "meta"}, dims + " · " + (im.format || "?") + " · " + bytes(im.bytes) +
      (im.role === "key" ? " · best copy" : " · MSE to key " + im.mse.toFixed(2)) +
      (im.transform ? " · " + im.transform : "")));
  return card;
}

// The "not a duplicate" and "done" buttons of group g.
function markButtons(g) {
  const box = el("span", {class: "marks"});
  for (const [kind, label] of [["distinct", "not a duplicate"], ["done", "done"]]) {
    const button = el("button", {class: "mark-" + kind, "aria-pressed": String(marks[g][kind])},
      label);
    button.addEventListener("click", () => { marks[g][kind] = !marks[g][kind]; render(false); });
    box.append(" ", button);
  }
  return box;
}

// The decision file: the one the search read plus the marks made here. A
// group shown as done and unmarked here drops the done entries that hid it.
function decisionFile() {
  const doc = JSON.parse(JSON.stringify(DATA.decisions.document));
  GROUPS.forEach((group, g) => {
    const files = group.images.filter((im) => im.sha256)
      .map((im) => ({sha256: im.sha256, path: im.path}));
    const holds = (entry) => files.every((f) => entry.files.some((e) => e.sha256 === f.sha256));
    if (group.done && !marks[g].done) doc.done = doc.done.filter((entry) => !holds(entry));
    if (marks[g].done && !group.done && files.length) doc.done.push({files});
    if (marks[g].distinct && files.length > 1) doc.distinct.push({files});
  });
  return doc;
}

// Why the key was kept (the search's keep rule), one line of the group's header.
function keptBecause(group) {
  return group.kept_because ? el("span", {class: "reason"}, group.kept_because) : "";
}

function groupCard(g) {
  const group = GROUPS[g];
  const kept = keep[g].filter(Boolean).length;
  const title = el("h2", {}, "Group " + group.id + " ",
    el("span", {class: "muted"}, "· " + group.images.length + " images · max MSE " +
      maxMse(group).toFixed(2) + (group.folder ? " · " + group.folder : "")));
  if (!kept) title.append(el("span", {class: "warning"}, " · keeps no file: left out of exports"));
  title.append(markButtons(g));
  title.append(keptBecause(group));
  const images = el("div", {class: "images"});
  group.images.forEach((im, i) => images.append(imageCard(g, i)));
  const attrs = {class: "group" + (kept ? "" : " nokeep"), "data-group": group.id};
  return el("section", attrs, title, images);
}

function pager(target, pages, shown) {
  const node = $(target);
  node.replaceChildren();
  const prev = el("button", {class: "prev"}, "‹ previous");
  const next = el("button", {class: "next"}, "next ›");
  prev.disabled = page === 0;
  next.disabled = page >= pages - 1;
  prev.addEventListener("click", () => { page--; render(true); });
  next.addEventListener("click", () => { page++; render(true); });
  const info = "page " + (pages ? page + 1 : 0) + " of " + pages + " · " + shown + " of " +
    GROUPS.length + " groups shown";
  node.append(prev, el("span", {class: "page-info"}, info), next);
}

function render(scroll) {
  const order = visible();
  const size = Number($("page-size").value);
  const pages = Math.ceil(order.length / size);
  page = Math.max(0, Math.min(page, pages - 1));
  const list = $("groups");
  list.replaceChildren(...order.slice(page * size, (page + 1) * size).map(groupCard));
  pager("pager-top", pages, order.length);
  pager("pager-bottom", pages, order.length);
  const choice = plan();
  const skipped = choice.skipped
    ? "; " + choice.skipped + " groups keep no file and are left out" : "";
  $("choice").textContent = "Keeping " + choice.kept + " files; " + choice.remove.length +
    " to remove" + skipped + ":";
  if (scroll) window.scrollTo(0, 0);
}

// The files to remove: every unticked image of a group that keeps at least
// one file. A group with nothing ticked is left out, so an export never
// removes every copy of a picture.
function plan() {
  const remove = [], guards = [];
  let kept = 0, skipped = 0;
  GROUPS.forEach((group, g) => {
    if (marks[g].distinct) { kept += group.images.length; return; }  // not duplicates
    const keeps = group.images.filter((im, i) => keep[g][i]);
    kept += keeps.length;
    if (!keeps.length) { skipped++; return; }
    group.images.forEach((im, i) => {
      if (!keep[g][i] && !im.reference) { remove.push(im.path); guards.push(keeps[0].path); }
    });
  });
  return {remove, guards, kept, skipped};
}

// Shell words for the script, for any POSIX sh (dash, bash, zsh). A name of
// printable UTF-8 goes in single quotes. Any other name (its undecodable
// bytes arrive as lone surrogates U+DC80..U+DCFF, as Python's os.fsdecode
// makes them; or it holds a line break or another control character) is
// rebuilt byte for byte by printf into a variable of its own (p1, p2, ...)
// on the line before, so every command stays on one line. printf writes a
// sentinel "x" after the last byte, cut off next: command substitution
// strips trailing line breaks, which belong to the name.
const PLAIN = /^[^\u0000-\u001f\u007f\udc80-\udcff]*$/u;

function quoted(text) { return "'" + text.replace(/'/g, "'\\''") + "'"; }

// "variable=..." that sets variable to exactly text.
function assign(variable, text) {
  if (PLAIN.test(text)) return variable + "=" + quoted(text);
  const bytes = [];
  for (const char of text) {
    const code = char.codePointAt(0);
    if (code >= 0xdc80 && code <= 0xdcff) bytes.push(code - 0xdc00);
    else bytes.push(...new TextEncoder().encode(char));
  }
  const octal = bytes.map((b) => "\\" + b.toString(8).padStart(3, "0")).join("");
  return variable + "=\"$(printf '" + octal + "x')\" && " + variable + '="${' + variable +
    '%x}"';
}

function script(choice) {
  const move = $("action").value === "move";
  const lines = [
    "#!/bin/sh",
    "# Generated by the " + DATA.generator + " report of " + DATA.generated + ".",
    "# " + (move ? "Moves " : "Deletes ") + choice.remove.length + " files; keeps " +
      choice.kept + ".",
    "# A file is " + (move ? "moved" : "deleted") +
      " only while a kept file of its group still exists.",
  ];
  if (move) {
    lines.push("# mv -n never overwrites: a file whose name is taken in the folder stays put.");
  }
  // set -u: a variable left unset stops the script, never names another file.
  lines.push("set -u");
  let count = 0;
  const word = (text) => {
    if (PLAIN.test(text)) return quoted(text);
    const variable = "p" + ++count;
    lines.push(assign(variable, text));
    return '"$' + variable + '"';
  };
  const folder = word(DATA.cwd);
  lines.push("cd -- " + folder + " || exit 1");
  if (move) {
    lines.push(assign("dest", $("destination").value || "fastdif-duplicates"),
      'mkdir -p -- "$dest" || exit 1');
  }
  // Files of the same name from different folders get numbered names
  // (name_1.ext), as move_to gives them.
  const used = new Set();
  choice.remove.forEach((path, k) => {
    const kept = word(choice.guards[k]), file = word(path);
    let action = "rm -- " + file;
    if (move) {
      const base = path.split("/").pop();
      const dot = base.lastIndexOf(".");
      const stem = dot > 0 ? base.slice(0, dot) : base, ext = dot > 0 ? base.slice(dot) : "";
      let name = base;
      for (let n = 1; used.has(name); n++) name = stem + "_" + n + ext;
      used.add(name);
      action = "mv -n -- " + file + ' "$dest"/' + word(name);
    }
    lines.push("[ -e " + kept + " ] && " + action);
  });
  return lines.join("\n") + "\n";
}

function download(name, type, text) {
  $("export-preview").value = text;
  const link = $("export-link");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([text], {type}));
  link.download = name;
  link.textContent = name;
  link.click();
}

$("export-json").addEventListener("click", () => {
  const text = JSON.stringify(plan().remove, null, 2) + "\n";
  download("fastdif-remove.json", "application/json", text);
});
$("export-decisions").addEventListener("click", () => {
  const text = JSON.stringify(decisionFile(), null, 2) + "\n";
  download("fastdif-decisions.json", "application/json", text);
});
$("export-sh").addEventListener("click", () => {
  download("fastdif-remove.sh", "text/x-shellscript", script(plan()));
});
$("reset").addEventListener("click", () => {
  GROUPS.forEach((group, g) => {
    group.images.forEach((im, i) => { keep[g][i] = im.role === "key"; });
  });
  render(false);
});
$("action").addEventListener("change", () => {
  $("destination").classList.toggle("hidden", $("action").value !== "move");
});
for (const id of ["sort", "kind", "min-size", "max-mse", "text", "page-size"]) {
  $(id).addEventListener("input", () => { page = 0; render(false); });
}
summary();
render(false);
</script>
</body>
</html>
"""
