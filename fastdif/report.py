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
import functools
import io
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib import resources

from PIL import Image, ImageOps

from . import params
from ._version import __version__
from .io import decisions
from .io.decode import to_rgb
from .io.files import open_regular, write_atomic
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
        Each image is ``{"path", "role" ("key", "member", or "chained": a file
        linked to the key only through another member, from
        ``stats["process"]["search"]["chained"]``, never lower quality), "mse"
        (to the key, 0..255 scale; 0 for the key), "width", "height", "bytes",
        "reference" (a library image: always a key, never dropped),
        "transform" (how a member matched its key where rotated or mirrored,
        e.g. "flipped horizontally", from ``stats["process"]["search"]
        ["transforms"]``; for a chained file "matched through PATH"; ""
        otherwise)}``; width, height and bytes are None when unknown.
    """
    repositories = [r for r in (se.repository, se.reference) if r is not None]
    # path -> (repository, index); a file in both is a library image.
    index = {path: (r, i) for r in repositories for i, path in enumerate(r.paths)}
    in_folder = se.in_folder
    sections = se.result.items() if in_folder else [(None, se.result)]
    reasons = se.stats.get("process", {}).get("search", {}).get("keep", {}).get("reasons", {})
    transforms = se.stats.get("process", {}).get("search", {}).get("transforms", {})
    chained: dict[str, list] = {}
    for path, link in se.stats.get("process", {}).get("search", {}).get("chained", {}).items():
        chained.setdefault(link["key"], []).append((path, link))
    out = []
    for folder, result in sections:
        for key, members in result.items():
            images = [_image(key, "key", 0.0, index, se.reference)]
            images += [_image(path, "member", mse, index, se.reference) for path, mse in members]
            for image in images[1:]:
                image["transform"] = transforms.get(image["path"], "")
            for path, link in chained.get(key, []):
                image = _image(path, "chained", link["mse"], index, se.reference)
                image["transform"] = f"matched through {link['through']}"
                images.append(image)
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
    ``member`` (or ``chained``: linked to the key only through another
    member, never lower quality); ``mse`` is the MSE to the key (``repr`` of the float, so it
    reads back exactly; 0 for the key); ``folder`` is the search group with
    ``in_folder`` and empty otherwise; ``reference`` is ``true`` for a library
    image (``search(..., reference=...)``) and empty otherwise;
    ``kept_because`` is, on the key's row, why the key was kept (the
    search's ``keep`` rule, e.g. ``kept: larger (4032 x 3024 vs 2016 x
    1512)``) and empty on the others; ``transform`` is, on a member's row,
    how it matched its key where rotated or mirrored (e.g. ``flipped
    horizontally``; on a chained row ``matched through PATH``) and empty
    otherwise; unknown numbers are empty. A cell
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
            through = ""
            if image["role"] == "chained":
                through = f"  ({printable(image['transform'])})"
            lines.append(f"  {image['role']:<6} {printable(image['path'])}{mse}{through}")
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
    path = params.check_path("path", path, (str, bytes, os.PathLike))
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
    params.check_int_range("thumbnail_size", thumbnail_size, 16, 1024)
    if processes is not None:
        params.check_int_from("processes", processes, 1)
    data = report_data(se, thumbnail_size, processes, show_progress)
    page = render_html(data).encode("utf-8")
    # Checked again just before the replace: the thumbnails took a while.
    return write_atomic(
        path, lambda out: out.write(page), replace=True, ready=lambda _: check_report_path(path)
    )


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
    return template().replace("/*DATA*/", script_json(data))


@functools.cache
def template() -> str:
    """The report page's HTML, CSS and JavaScript, ``/*DATA*/`` where the data goes.

    Package data, ``fastdif/templates/report.html``: read on first use.
    """
    page = resources.files(__package__).joinpath("templates").joinpath("report.html")
    return page.read_text(encoding="utf-8")
