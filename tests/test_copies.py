"""fastdif.io.copies: byte-identical files are decoded once."""

import os

import faults
import images
import numpy as np

from fastdif.io import copies, decode


def test_byte_identical_files_are_decoded_once_and_keep_their_own_entries(
    tmp_path, build, monkeypatch
):
    images.save_photo(1, tmp_path / "a.jpg")
    images.copy_bytes(tmp_path / "a.jpg", tmp_path / "b.jpg")
    images.save_photo(2, tmp_path / "c.bmp")
    images.save_photo(3, tmp_path / "d.bmp")  # c's size, other bytes
    images.copy_bytes(tmp_path / "a.jpg", tmp_path / "e.jpg")
    (tmp_path / "f.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    images.copy_bytes(tmp_path / "f.png", tmp_path / "g.png")
    # x's bytes but its top rows, which a BMP stores last: past the first 64 KiB.
    pixels = images.photo(4)
    images.save(pixels, tmp_path / "x.bmp")
    pixels[:20] = 0
    images.save(pixels, tmp_path / "y.bmp")
    x, y = (tmp_path / "x.bmp").read_bytes(), (tmp_path / "y.bmp").read_bytes()
    assert len(x) == len(y) and x[: 64 << 10] == y[: 64 << 10] and x != y
    assert (tmp_path / "c.bmp").stat().st_size == (tmp_path / "d.bmp").stat().st_size
    seen = faults.counting_decoder(monkeypatch)
    dif = build(tmp_path)
    decoded = ["a.jpg", "c.bmp", "d.bmp", "f.png", "x.bmp", "y.bmp"]
    assert [os.path.basename(p) for p in seen] == decoded
    row = {os.path.basename(p): k for k, p in enumerate(dif.paths)}
    assert sorted(row) == ["a.jpg", "b.jpg", "c.bmp", "d.bmp", "e.jpg", "x.bmp", "y.bmp"]
    for copy in ("b.jpg", "e.jpg"):
        assert np.array_equal(dif.tensors[row[copy]], dif.tensors[row["a.jpg"]])
        assert np.array_equal(dif.shapes[row[copy]], dif.shapes[row["a.jpg"]])
    for one, other in (("c.bmp", "d.bmp"), ("x.bmp", "y.bmp")):
        assert not np.array_equal(dif.tensors[row[one]], dif.tensors[row[other]])
    assert len({tuple(identity) for identity in dif.inodes}) == len(dif)  # each its own file
    logs = dif.stats["invalid_files"]["logs"]
    assert sorted(os.path.basename(p) for p in logs) == ["f.png", "g.png"]
    for path, reason in logs.items():
        assert path in reason, reason  # each reason names its own file


def test_a_copy_counts_as_a_file_decoded_for_progress(tmp_path):
    paths = [str(images.save_photo(1, tmp_path / "a.png"))]
    paths.append(str(images.copy_bytes(paths[0], tmp_path / "b.png")))
    ticks = []
    calls = []

    def decode_files(paths, progress):
        calls.append(paths)
        for path in paths:
            progress()
            yield decode.decode_file(path, 8)

    once = copies.decoding_copies_once(decode_files, threads=1)
    results = list(once(paths, lambda: ticks.append(1)))
    assert calls == [paths[:1]]
    assert len(ticks) == 2
    assert results[0] is results[1]
