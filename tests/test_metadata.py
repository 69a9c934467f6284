"""fastdif.io.metadata: dates and formats read from headers only."""

from datetime import datetime

import images
import pytest

from fastdif import params
from fastdif.io.metadata import Metadata, exif_date, read_metadata

save = images.dated_photo
DATE_2021 = images.DATE_2021


@pytest.mark.parametrize("extension", [".jpg", ".png", ".webp", ".heic"])
def test_read_metadata_takes_the_exif_date_and_format_from_the_header(tmp_path, extension):
    path = save(tmp_path / f"a{extension}", date=DATE_2021)
    expected = params.canonical_format(extension[1:])
    assert read_metadata(path) == Metadata(expected, datetime(2021, 6, 1, 10, 22))
    assert read_metadata(path, format=False) == Metadata(None, datetime(2021, 6, 1, 10, 22))
    assert read_metadata(path, taken=False) == Metadata(expected, None)
    plain = save(tmp_path / f"b{extension}")
    assert read_metadata(plain) == Metadata(expected, None)


def test_unreadable_files_and_malformed_dates_are_unknown(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a JPEG")
    assert read_metadata(str(broken)) == Metadata(None, None)
    assert read_metadata(str(tmp_path / "missing.png")) == Metadata(None, None)
    assert exif_date("0000:00:00 00:00:00") is None
    assert exif_date("    :  :     :  :  ") is None
    assert exif_date(b"2021:06:01 10:22:00\x00") == datetime(2021, 6, 1, 10, 22)
    assert exif_date(20210601) is None
