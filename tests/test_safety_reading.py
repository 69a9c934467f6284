"""Reading users' files after the build (issue 24, items 11 to 13).

11. A group member replaced by a named pipe after the build: decisions, the
    report and keep rules get a per-file failure at once, never a wait
    (every such read goes through :func:`fastdif.io.files.open_regular`).
12. A file far larger than its image (a small PNG or JPEG and gigabytes of
    padding) is decoded in memory bounded by its image, not its size, and
    hashed for decisions in chunks.
13. A "not a duplicate" entry of thousands of files is applied in memory and
    time that grow with the files, not with the pairs of files.
"""

import errno
import hashlib
import os
import subprocess
import sys
import threading
import tracemalloc

import images
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import fastdif
from fastdif import actions
from fastdif.engine.grouping import connected_groups, drop_distinct
from fastdif.io import decisions, decode
from fastdif.io.files import NOT_REGULAR, open_regular
from fastdif.io.metadata import Metadata, read_metadata
from fastdif.report import report_data

PX = 32

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")


def _build(*paths):
    return fastdif.build(*paths, show_progress=False, processes=1)


def _search(dif, **kwargs):
    return fastdif.search(dif, show_progress=False, processes=1, **kwargs)


def _without_waiting(call, fifo, limit=30.0):
    """``call()``'s result; the test fails if it is still running after ``limit`` seconds.

    Then the pipe is given writers until the call returns (a waiting open
    returns, and reads an empty file), so a regression fails instead of hanging.
    """
    outcome = []

    def run():
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    waited = worker.is_alive()
    while worker.is_alive():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader at this instant
        worker.join(0.05)
    assert not waited, f"still waiting on the named pipe {fifo} after {limit:g} s"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


# ------------------------------------------------------------- 11: a named pipe after the build


@pytest.fixture
def piped(tmp_path):
    """A group (a.png, b.png, byte copies) and a lone c.png, built; then b.png
    becomes a named pipe. Returns (repository, a, b, c)."""
    folder = tmp_path / "pics"
    a = images.save_photo(1, folder / "a.png")
    b = images.copy_bytes(a, folder / "b.png")
    c = images.save_photo(2, folder / "c.png")
    dif = _build(folder)
    os.unlink(b)
    os.mkfifo(b)
    return dif, a, b, c


@needs_fifo
@pytest.mark.timeout(120)
def test_a_pipe_in_a_members_place_is_unidentified_by_decisions(piped):
    dif, a, b, c = piped
    document = decisions.mark(decisions.mark(decisions.empty(), "distinct", [a, c]), "done", [a])

    se = _without_waiting(lambda: _search(dif, decisions=document), b)

    # No hash for the pipe: no decision applies to it, and the group stays
    # (b's bytes were a's: before the pipe, the group was done and hidden).
    assert se.result == {a: [[b, 0.0]]}
    used = se.stats["process"]["search"]["decisions"]
    assert used["files_unreadable"] == 1 and used["groups_hidden"] == 0


@needs_fifo
@pytest.mark.timeout(120)
def test_a_pipe_in_a_members_place_gets_a_placeholder_in_the_report(piped, tmp_path):
    dif, a, b, _ = piped
    se = _search(dif)

    written = _without_waiting(lambda: se.report(tmp_path / "report.html"), b)
    data = _without_waiting(lambda: report_data(se), b)

    assert os.path.isfile(written)
    shown = {image["path"]: image for image in data["groups"][0]["images"]}
    assert shown[a]["thumbnail"] and shown[a]["error"] is None and shown[a]["sha256"]
    assert shown[b]["thumbnail"] is None and shown[b]["sha256"] is None
    assert NOT_REGULAR in shown[b]["error"]


@needs_fifo
@pytest.mark.timeout(120)
def test_a_pipe_in_a_members_place_has_unknown_facts_for_keep_rules(piped):
    dif, a, b, _ = piped

    se = _without_waiting(lambda: _search(dif, keep=["newest", "format:png"]), b)

    [(key, members)] = se.result.items()
    assert sorted([key, *(m for m, _ in members)]) == [a, b]
    assert _without_waiting(lambda: read_metadata(b), b) == Metadata(None, None)


@needs_fifo
@pytest.mark.timeout(120)
def test_a_pipe_is_a_failure_of_the_system_when_decoded_again(tmp_path):
    # As verify.thumbnail decodes a member and its key just before a delete.
    fifo = str(tmp_path / "pipe.png")
    os.mkfifo(fifo)

    decoded = _without_waiting(lambda: decode.decode_file(fifo, PX), fifo)

    assert decoded.failure is decode.Failure.SYSTEM and NOT_REGULAR in decoded.reason
    assert _without_waiting(lambda: decisions.content_hash(fifo), fifo) is None


@needs_fifo
def test_a_pipe_in_a_manifests_place_is_refused_by_undo_without_waiting(tmp_path):
    # undo_move checks the path is a file, then reads it: a pipe put there between
    # the two must not hang it.
    fifo = str(tmp_path / "fastdif_moved_1.json")
    os.mkfifo(fifo)

    with pytest.raises(OSError, match="Not a regular file"):
        _without_waiting(lambda: actions._read_manifest(fifo), fifo)


@needs_fifo
def test_open_regular_follows_links_to_files_only(tmp_path):
    photo = images.save_photo(3, tmp_path / "photo.png")
    os.symlink(photo, tmp_path / "link.png")
    os.mkfifo(tmp_path / "pipe")
    os.symlink(tmp_path / "pipe", tmp_path / "link_to_pipe.png")

    with open_regular(tmp_path / "link.png") as f:  # a link to a photo is a photo
        assert f.read() == open(photo, "rb").read()
    for path in ("pipe", "link_to_pipe.png", "."):
        with pytest.raises(OSError) as raised:
            open_regular(tmp_path / path)
        assert raised.value.errno == errno.EINVAL and NOT_REGULAR in str(raised.value)
    with pytest.raises(OSError):
        open_regular(os.devnull)  # a device: refused before it is opened
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing.png")


# ------------------------------------------------------------- 12: a file far larger than its image

GIGABYTES = 1.5

_MEASURE = """
import resource, sys
from fastdif.io import decode
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
decoded = decode.decode_file(sys.argv[1], 32)
assert decoded.reason is None, decoded.reason
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _padded(path, size: int) -> str:
    """``path`` (a small image) extended to ``size`` bytes with zeros, sparse where possible."""
    with open(path, "r+b") as f:
        f.truncate(size)
    blocks = getattr(os.stat(path), "st_blocks", None)
    if size > 64 << 20 and (blocks is None or blocks * 512 > 64 << 20):
        os.truncate(path, 0)
        pytest.skip("no sparse files here: a large padded file would fill the disk")
    return str(path)


@pytest.mark.skipif(sys.platform == "win32", reason="ru_maxrss is Unix only")
@pytest.mark.parametrize("ext", [".png", ".jpg"])
@pytest.mark.timeout(120)
def test_a_padded_file_is_decoded_in_memory_bounded_by_its_image(tmp_path, ext):
    size = int(GIGABYTES * (1 << 30))
    path = _padded(images.save_photo(4, tmp_path / f"padded{ext}"), size)

    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, path], capture_output=True, text=True, timeout=100
    )

    assert run.returncode == 0, run.stderr
    grown = int(run.stdout) * (1 if sys.platform == "darwin" else 1024)  # bytes
    assert grown < 300 << 20, f"decoding a {GIGABYTES} GB file took {grown >> 20} MB more"


def test_the_decisions_hash_reads_a_large_file_in_chunks(tmp_path):
    path = _padded(images.save_photo(4, tmp_path / "padded.png"), 64 << 20)

    tracemalloc.start()
    try:
        digest = decisions.content_hash(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert digest == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert peak < 8 << 20, f"hashing a 64 MB file took {peak >> 20} MB"


@pytest.mark.parametrize("ext", [".png", ".jpg", ".gray.png"])
def test_large_files_decoded_by_pillow_give_the_fast_decoders_thumbnail(tmp_path, monkeypatch, ext):
    image = images.photo_image(5, 120, 90)
    if ext == ".gray.png":
        image = image.convert("L")
    path = images.save(image, tmp_path / f"photo{ext}")
    fast = decode.load_thumbnail(path, PX)
    padded = _padded(images.copy_bytes(path, tmp_path / f"padded{ext}"), 1 << 20)

    monkeypatch.setattr(decode, "FAST_DECODE_BYTES", 1 << 19)  # both go to Pillow
    for streamed in (decode.load_thumbnail(path, PX), decode.load_thumbnail(padded, PX)):
        assert np.array_equal(streamed[0], fast[0]) and streamed[1:] == fast[1:]


def test_a_png_orientation_after_the_image_data_holds_when_streamed(tmp_path, monkeypatch):
    upright = images.photo_image(6, 120, 90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    path = images.save(stored, tmp_path / "late.png", exif=exif.tobytes())
    data = open(path, "rb").read()
    start = data.index(b"eXIf") - 4  # move the eXIf chunk behind the image data
    end = start + 12 + int.from_bytes(data[start : start + 4], "big")
    chunk, rest = data[start:end], data[:start] + data[end:]
    iend = rest.index(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(rest[:iend] + chunk + rest[iend:])

    monkeypatch.setattr(decode, "FAST_DECODE_BYTES", 0)  # Pillow reads it from the file
    thumb, width, height = decode.load_thumbnail(path, PX)

    assert (width, height) == (120, 90)
    assert np.array_equal(thumb, images.thumbnail(upright, PX).astype(np.uint8))


# ------------------------------------------------------------- 13: one entry of many files


def _pairwise(entries):
    """The marks of ``entries`` (lists of identity numbers) as the pairs they stand for:
    ``{x: {y, ...}}``, as decisions were applied before issue 24."""
    conflicts = {}
    for ids in entries:
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                conflicts.setdefault(ids[a], set()).add(ids[b])
                conflicts.setdefault(ids[b], set()).add(ids[a])
    return conflicts


def _pairwise_drop_distinct(n, i, j, labels, conflicts, mse):
    """drop_distinct as it was before issue 24 (marks as pairs), the reference."""
    keep = np.ones(i.size, dtype=bool)
    if not conflicts or not i.size:
        return keep

    def holds_marked(members):
        seen = set()
        for x in members:
            if x >= 0 and conflicts.get(x, set()) & seen:
                return True
            seen.add(x)
        return False

    component = np.full(n, -1, dtype=np.int64)
    marked = []
    for c, members in enumerate(connected_groups(n, i, j)):
        component[members] = c
        if holds_marked(labels[members].tolist()):
            marked.append(c)
    if not marked:
        return keep
    edges = np.flatnonzero(np.isin(component[i], marked))
    left, right = i[edges], j[edges]
    order = np.lexsort((np.maximum(left, right), np.minimum(left, right), mse(left, right)))
    parent, ids = {}, {}

    def root(a):
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for e in order.tolist():
        a, b = root(int(left[e])), root(int(right[e]))
        if a == b:
            continue
        ids_a = ids.setdefault(a, {int(labels[a])} - {-1})
        ids_b = ids.setdefault(b, {int(labels[b])} - {-1})
        if any(conflicts.get(x, set()) & ids_b for x in ids_a):
            keep[edges[e]] = False
            continue
        parent[max(a, b)] = min(a, b)
        ids[min(a, b)] = ids_a | ids_b
    return keep


@pytest.fixture(scope="module")
def contents(tmp_path_factory):
    """Seven files of different bytes, ``{k: path}``: identities 0 to 6."""
    folder = tmp_path_factory.mktemp("contents")
    paths = {k: folder / f"{k}.jpg" for k in range(7)}
    for k, path in paths.items():
        path.write_bytes(b"%d" % k)
    return {k: str(path) for k, path in paths.items()}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 5), min_size=2, max_size=5), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=30),
    st.lists(st.integers(0, 7), min_size=12, max_size=12),
    st.randoms(use_true_random=False),
)
def test_entries_drop_exactly_the_pairs_their_pairs_dropped(contents, entries, edges, files, rng):
    edges = sorted({(min(a, b), max(a, b)) for a, b in edges if a != b})
    i = np.array([a for a, _ in edges], dtype=np.int64)
    j = np.array([b for _, b in edges], dtype=np.int64)
    values = {e: float(rng.choice([0.0, 1.0, 2.5])) for e in edges}

    def mse(left, right):
        return np.array([values[(min(a, b), max(a, b))] for a, b in zip(left, right, strict=True)])

    document = decisions.empty()
    document["distinct"] = [{"files": decisions.files(contents[k] for k in e)} for e in entries]
    marks = decisions.Decisions(decisions.validate(document))
    # Image m is a copy of file files[m] (6: in no entry; 7: unreadable).
    missing = os.path.join(os.path.dirname(contents[0]), "missing.jpg")
    labels = np.array([marks.label(contents.get(k, missing)) for k in files], dtype=np.int64)
    numbers = {k: marks.label(path) for k, path in contents.items()}

    keep = drop_distinct(12, i, j, labels, marks.distinct, mse)

    pairs = _pairwise([[numbers[k] for k in e] for e in entries])
    assert keep.tolist() == _pairwise_drop_distinct(12, i, j, labels, pairs, mse).tolist()


def test_one_entry_of_8000_files_applies_in_bounded_memory(tmp_path):
    n = 8000
    paths = []
    for k in range(n):
        path = tmp_path / f"{k}.jpg"
        path.write_bytes(b"%d" % k)
        paths.append(str(path))
    entry = {"files": [{"sha256": decisions.content_hash(p), "path": p} for p in paths]}
    # One more image, a byte copy of the first: the entry does not hold it twice.
    copy = images.copy_bytes(paths[0], tmp_path / "copy.jpg")
    document = decisions.validate({**decisions.empty(), "distinct": [entry]})
    # Every file matches the next (a chain of pairs, all marked distinct), and the copy.
    i = np.array([*range(n - 1), 0], dtype=np.int64)
    j = np.array([*range(1, n), n], dtype=np.int64)

    tracemalloc.start()
    try:
        marks = decisions.Decisions(document)
        labels = np.array([marks.label(p) for p in [*paths, copy]], dtype=np.int64)
        keep = drop_distinct(n + 1, i, j, labels, marks.distinct, lambda a, b: np.zeros(a.size))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert labels[0] == labels[n] and len(set(labels.tolist())) == n
    # Each pair of two files of the entry goes; the copy stays with its original.
    assert keep.tolist() == [False] * (n - 1) + [True]
    assert peak < 100 << 20, f"applying one entry of {n} files took {peak >> 20} MB"
