"""The command line's flag table (``cli.FLAGS``): argparse, ``--help`` and docs/cli.md
all come from it; and ``run``'s move and delete dispatch."""

import argparse
import os
import pathlib
import subprocess
import sys

import images
import pytest

from fastdif import cli
from fastdif.params import MOVE_AND_DELETE_EXCLUSIVE

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _options():
    """The parser's actions, less ``-h``, by their first name."""
    actions = [a for a in cli.make_parser()._actions if not isinstance(a, argparse._HelpAction)]
    return {(a.option_strings or [a.dest])[0]: a for a in actions}


def test_docs_flag_table_is_the_one_rendered_from_the_flags():
    text = DOCS.read_text(encoding="utf-8")
    start, end = text.index(cli.DOCS_START), text.index(cli.DOCS_END)
    assert text[start + len(cli.DOCS_START) : end] == "\n" + cli.flag_table_markdown(), (
        "docs/cli.md's flag table is stale: run python -m fastdif.cli --render-docs"
    )
    assert cli.with_flag_table(text) == text


def test_the_parser_has_exactly_the_flags_of_the_table():
    options = _options()
    assert list(options) == [flag.names[0] for flag in cli.FLAGS]
    table = cli.flag_table_markdown()
    for flag in cli.FLAGS:
        action = options[flag.names[0]]
        assert action.help == flag.help_text()
        if flag.names[0].startswith("-"):
            assert tuple(action.option_strings) == flag.names
            assert all(f"`{name}`" in table for name in flag.names)
    assert table.count("\n") == len(cli.FLAGS) + 2  # a header, a rule, a row per flag


def test_help_says_each_default_and_parsing_nothing_gives_it():
    parsed = vars(cli.make_parser().parse_args([]))
    shown = {flag.names[0]: flag.default_text() for flag in cli.FLAGS}
    assert shown["-r"] == "true" and shown["-px"] == "50" and shown["-s"] == "duplicates"
    assert shown["-Z"] == "the current folder" and shown["--keep"] == "resolution, then size"
    assert shown["-mv"] == shown["--permanent"] == shown["-la"] == shown["-D"] == ""
    for flag in cli.FLAGS:
        if flag.default_text():
            assert flag.help_text().endswith(f" (default: {flag.default_text()})")
        dest = _options()[flag.names[0]].dest
        if flag.default is not None:
            assert parsed[dest] == flag.default, flag.names


def test_the_table_escapes_markdown_in_its_cells():
    table = cli.flag_table_markdown()
    row = next(line for line in table.splitlines() if line.startswith("| `--keep`"))
    assert row.count(" | ") == 3  # "|" inside a cell does not split it
    assert "prefer:PATH\\[\\|PATH...\\]" in row
    assert "fastdif\\_moved\\_\\*.json" in table
    assert "`json\\|csv`" in table


def test_with_flag_table_replaces_only_the_text_between_the_markers():
    text = f"intro\n{cli.DOCS_START}\nstale\n{cli.DOCS_END}\nrest\n"
    rendered = cli.with_flag_table(text)
    assert rendered == f"intro\n{cli.DOCS_START}\n{cli.flag_table_markdown()}{cli.DOCS_END}\nrest\n"
    assert cli.with_flag_table(rendered) == rendered


def test_render_docs_rewrites_a_stale_table(tmp_path):
    docs = tmp_path / "cli.md"
    docs.write_text(f"# CLI\n{cli.DOCS_START}\n| old |\n{cli.DOCS_END}\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "fastdif.cli", "--render-docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert docs.read_text(encoding="utf-8") == cli.with_flag_table(docs.read_text("utf-8"))
    assert "| old |" not in docs.read_text(encoding="utf-8")


class _Result:
    """A stand-in for SearchResult that records what the command line asked of it."""

    def __init__(self):
        self.calls = []

    def move_to(self, folder):
        self.calls.append(("move_to", folder))
        return {"moved": {"/a/b.png": "/dest/b.png"}, "failed": {}, "manifest": "/dest/m.json"}

    def delete(self, **kwargs):
        self.calls.append(("delete", kwargs))
        return {
            "deleted": ["/a/b.png"],
            "would_delete": ["/a/b.png"],
            "would_trash": {"/a/b.png": "/trash"},
            "trashed": {"/a/b.png": "/trash"},
            "moved": [],
            "manifests": [],
            "failed": {"/a/c.png": "changed"},
        }


@pytest.mark.parametrize(
    ("flags", "call", "first_line"),
    [
        ([], None, None),
        (["-mv", "/dest"], ("move_to", "/dest"), "moved 1 files to /dest, 0 failed"),
        (["-d", "true"], ("delete", {"silent_del": False, "trash": True}),
         "trashed 1 files, 1 kept"),
        (["-d", "true", "-sd", "true", "--permanent"], ("delete", {"silent_del": True}),
         "deleted 1 files, 1 kept"),
        (["-d", "true", "--dry_run", "true"], ("delete", {"dry_run": True, "trash": True}),
         "dry run: would trash 1 files"),
        (["-d", "true", "--dry_run", "true", "--permanent"], ("delete", {"dry_run": True}),
         "dry run: would delete 1 files"),
        (["--dry_run", "true"], None, None),  # without -d it does nothing
    ],
)  # fmt: skip
def test_act_runs_the_one_action_the_flags_name(flags, call, first_line):
    args = cli.make_parser().parse_args(flags)
    se = _Result()
    lines = cli._act(args, se)
    assert se.calls == ([call] if call else [])
    assert (lines[0] if lines else None) == first_line
    if call and call[0] == "delete":  # the file kept is listed last, with its reason
        assert lines[-1].endswith(": /a/c.png: changed")


def test_move_to_with_delete_stops_with_difpys_message_from_params(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path), "-mv", str(tmp_path / "dest"), "-d", "true"])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert MOVE_AND_DELETE_EXCLUSIVE in line
    assert not os.path.exists(tmp_path / "dest")


def test_a_library_with_a_corrupt_meta_file_is_reported_not_searched(tmp_path, capsys):
    images.save_photo(1, tmp_path / "new" / "a.png")
    library = tmp_path / "lib"
    images.save_photo(1, library / "a.png")
    (library / "repository.json").write_text("{not json", encoding="utf-8")
    out = tmp_path / "out"
    status = cli.main([str(tmp_path / "new"), "--reference", str(library), "-Z", str(out),
                       "-p", "false", "--no-cache"])  # fmt: skip
    assert status == 2
    assert "repository.json is corrupt" in capsys.readouterr().err
    assert not [f for f in os.listdir(out) if f.startswith("fastdif_")]
