"""Fuzzing: random and mutated image bytes through build never crash or hang.

Every file written must come back either decoded (in ``paths``, with a finite
0..255 thumbnail) or in ``invalid_files`` with a one-line reason; never both,
never neither. The CI budget is small; for a long run:

    FASTDIF_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py
"""

import io
import os
import random
import tempfile
from functools import cache

import images
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, features

import fastdif
from fastdif.backends import pool
from fastdif.io import decode

EXAMPLES = int(os.environ.get("FASTDIF_FUZZ_EXAMPLES", "30"))

#: Seconds per file while fuzzing: a hang shows up as a "Timed out" reason
#: (and fails the deadline below) instead of stalling the suite.
FUZZ_TIME_LIMIT = 5.0

FORMATS = ["JPEG", "PNG", "GIF", "TIFF", "BMP"] + (["WEBP"] if features.check("webp") else [])
EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "TIFF": "tif",
    "BMP": "bmp",
    "WEBP": "webp",
}


@cache
def seed_bytes(fmt: str) -> bytes:
    """A small valid image of ``fmt`` (with EXIF in JPEG, a palette in GIF)."""
    image = images.photo_image(1, 24, 16)
    kwargs = {}
    if fmt == "JPEG":
        exif = Image.Exif()
        exif[0x0112] = 6
        kwargs = {"quality": 90, "exif": exif.tobytes()}
    elif fmt == "GIF":
        image = image.quantize(32)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("set"), st.floats(0, 1), st.sampled_from([0, 0xFF, 0x7F, 0x80])),
)


def mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, where, arg in mutations:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[at] ^= arg
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = arg
        elif kind == "delete":
            del out[at : at + arg]
        elif kind == "set" and out:
            out[at] = arg
    return bytes(out)


fuzzed_file = st.one_of(
    st.tuples(st.sampled_from(FORMATS), st.lists(mutation, min_size=1, max_size=6)).map(
        lambda t: (t[0], mutate(seed_bytes(t[0]), t[1]))
    ),
    # Random bytes behind a real signature, so Pillow gets past identification.
    st.tuples(st.sampled_from(FORMATS), st.binary(max_size=512)).map(
        lambda t: (t[0], seed_bytes(t[0])[:16] + t[1])
    ),
    st.tuples(st.sampled_from(FORMATS), st.binary(max_size=256)),
)


def check_build(folder: str, names: list[str], processes: int = 1):
    """Build ``folder`` and assert every file is decoded or invalid, exactly once."""
    dif = fastdif.build(folder, show_progress=False, processes=processes)
    written = {os.path.join(folder, name) for name in names}
    logs = dif.stats["invalid_files"]["logs"]
    assert set(dif.paths) | set(logs) == written
    assert not set(dif.paths) & set(logs)
    assert dif.stats["total_files"] == len(written)
    for reason in logs.values():
        assert isinstance(reason, str) and reason and "\n" not in reason
        assert not reason.startswith("Timed out"), reason  # a hang, found
    assert np.isfinite(dif.tensors).all()
    assert dif.tensors.min(initial=0) >= 0 and dif.tensors.max(initial=0) <= 255
    assert (dif.shapes > 0).all()
    return dif


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # FUZZ_TIME_LIMIT bounds each file instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=st.lists(fuzzed_file, min_size=1, max_size=4))
def test_mutated_images_are_decoded_or_reported(files):
    previous = decode.FILE_TIME_LIMIT
    decode.FILE_TIME_LIMIT = FUZZ_TIME_LIMIT
    try:
        with tempfile.TemporaryDirectory() as folder:
            names = []
            for k, (fmt, data) in enumerate(files):
                names.append(f"f{k}.{EXTENSIONS[fmt]}")
                with open(os.path.join(folder, names[-1]), "wb") as out:
                    out.write(data)
            check_build(folder, names)
    finally:
        decode.FILE_TIME_LIMIT = previous


def test_seed_images_are_valid(tmp_path):
    # The fuzzer starts from files that decode: the mutations make them bad.
    names = []
    for fmt in FORMATS:
        names.append(f"seed.{EXTENSIONS[fmt]}")
        (tmp_path / names[-1]).write_bytes(seed_bytes(fmt))
    dif = check_build(str(tmp_path), names)
    assert len(dif.paths) == len(FORMATS)


def test_mutated_images_through_worker_processes(tmp_path, monkeypatch):
    # The same property with the files spread over worker processes; the
    # results equal an in-process build.
    rng = random.Random(5)
    names = []
    for k in range(24):
        fmt = FORMATS[k % len(FORMATS)]
        data = bytearray(seed_bytes(fmt))
        for _ in range(rng.randint(0, 4)):
            data[rng.randrange(len(data))] ^= rng.randint(1, 255)
        if k % 5 == 0:
            del data[rng.randrange(len(data)) :]
        names.append(f"m{k:02d}.{EXTENSIONS[fmt]}")
        (tmp_path / names[-1]).write_bytes(bytes(data))
    monkeypatch.setattr(pool, "MIN_FILES_FOR_POOL", 2)
    monkeypatch.setattr(decode, "FILE_TIME_LIMIT", FUZZ_TIME_LIMIT)

    pooled = check_build(str(tmp_path), names, processes=2)
    serial = check_build(str(tmp_path), names, processes=1)

    assert pooled.paths == serial.paths
    assert np.array_equal(pooled.tensors, serial.tensors)
    assert pooled.stats["invalid_files"] == serial.stats["invalid_files"]
    assert 0 < len(pooled.paths) < len(names)  # both outcomes really occur


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_truncation_of_a_seed_is_handled(tmp_path, fmt):
    data = seed_bytes(fmt)
    names = []
    for cut in sorted({0, 1, 2, 8, 16, *range(32, len(data), max(1, len(data) // 12))}):
        names.append(f"cut{cut:05d}.{EXTENSIONS[fmt]}")
        (tmp_path / names[-1]).write_bytes(data[:cut])
    check_build(str(tmp_path), names)
