"""fastdif.params: every "Invalid value for" message users see is written there."""

import pathlib
import re

import numpy as np
import pytest

import fastdif
from fastdif import actions, params, report
from fastdif.io import cache, decisions

PACKAGE = pathlib.Path(fastdif.__file__).parent


def message(call, *args, **kwargs) -> tuple[type, str]:
    with pytest.raises((TypeError, ValueError, OSError)) as raised:
        call(*args, **kwargs)
    return type(raised.value), str(raised.value)


def test_no_module_but_params_writes_the_message():
    writers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "Invalid value for" in path.read_text(encoding="utf-8")
    }
    assert writers == {"params.py"}


def test_invalid_names_the_parameter_and_the_problem():
    error = params.invalid("px_size", "must be even.", TypeError)
    assert isinstance(error, TypeError)
    assert str(error) == 'Invalid value for "px_size" parameter: must be even.'


def test_check_type_shows_the_value_or_its_type():
    assert params.check_type("dest", "a", str, "of type STRING") == "a"
    assert message(params.check_type, "dest", 3, str, "of type STRING") == (
        TypeError,
        'Invalid value for "dest" parameter: must be of type STRING, got 3.',
    )
    assert message(params.check_type, "dif", 3, str, "a Repository", show_type=True) == (
        TypeError,
        'Invalid value for "dif" parameter: must be a Repository, got int.',
    )


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (True, TypeError, "must be of type INT, got True."),
        (1.0, TypeError, "must be of type INT, got 1.0."),
        (0, ValueError, "must be >= 1, got 0."),
    ],
)
def test_check_int_from(value, error, text):
    assert message(params.check_int_from, "n", value, 1) == (
        error,
        f'Invalid value for "n" parameter: {text}',
    )


def test_check_path_takes_paths_and_refuses_empty_ones(tmp_path):
    assert params.check_path("path", tmp_path / "a") == str(tmp_path / "a")
    assert params.check_path("path", b"a", (str, bytes)) == "a"
    assert message(params.check_path, "path", b"a") == (
        TypeError,
        "Invalid value for \"path\" parameter: must be of type STRING or os.PathLike, got b'a'.",
    )
    assert message(params.check_path, "path", "") == (
        ValueError,
        'Invalid value for "path" parameter: must name a file, got "".',
    )


# The same text as before the messages moved here (issue 26), from the modules that raise them.


def test_the_report_parameters(tmp_path):
    assert message(report.write_report, None, tmp_path / "r.html", thumbnail_size=8) == (
        ValueError,
        'Invalid value for "thumbnail_size" parameter: must be between 16 and 1024, got 8.',
    )
    assert message(report.write_report, None, tmp_path / "r.html", processes="2") == (
        TypeError,
        "Invalid value for \"processes\" parameter: must be of type INT, got '2'.",
    )
    assert message(report.check_report_path, 3) == (
        TypeError,
        'Invalid value for "path" parameter: must be of type STRING or os.PathLike, got 3.',
    )


def test_the_move_and_undo_parameters(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    assert message(actions.move_files, [], 3) == (
        TypeError,
        'Invalid value for "destination_path" parameter: must be of type STRING, got 3.',
    )
    assert message(actions.move_files, [], str(tmp_path / "file")) == (
        actions.NotAFolderError,
        f'Invalid value for "destination_path" parameter: "{tmp_path / "file"}" is not a folder.',
    )
    assert message(actions.undo_move, str(tmp_path / "file")) == (
        ValueError,
        f'Invalid value for "manifest" parameter: "{tmp_path / "file"}" is not a move manifest',
    )


def test_the_repository_decision_and_cache_parameters():
    assert message(fastdif.from_arrays, np.zeros((2, 4, 4, 3), np.uint8), paths=["a"]) == (
        ValueError,
        'Invalid value for "paths" parameter: need 2 paths, got 1.',
    )
    assert message(fastdif.from_arrays, [1]) == (
        TypeError,
        'Invalid value for "tensors" parameter: must be a uint8 or float32 array.',
    )
    assert message(decisions.mark, decisions.empty(), "seen", []) == (
        ValueError,
        "Invalid value for \"kind\" parameter: must be one of ('distinct', 'done'), got 'seen'.",
    )
    assert message(cache.resolve_cache, 3) == (
        TypeError,
        'Invalid value for "cache" parameter: must be None, a BOOL, a STRING or os.PathLike, '
        "got int.",
    )


def test_every_message_starts_the_same_way():
    # Each parameter check of params raises through invalid().
    for call, args in [
        (params.check_bool, ("b", 1)),
        (params.check_int_range, ("px_size", 5, 10, 20)),
        (params.check_in_folder, ("x",)),
        (params.check_similarity, (-1,)),
        (params.check_chunksize, (0, 10)),
        (params.check_keep, (["size", "size"],)),
        (params.check_choice, ("kind", "x", ("a",))),
    ]:
        _, text = message(call, *args)
        assert re.match(r'Invalid value for "\w+" parameter: \S', text), text
