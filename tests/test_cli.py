"""The command line: flags, output files, exit codes."""

import json
import os
import shutil

import numpy as np
import pytest
from commands import run_cli
from PIL import Image

from fastdif.cli import main, make_parser


def photo(seed, size=(160, 120)):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    scene = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), np.int16)
    noise = rng.normal(0, 6, scene.shape)
    return Image.fromarray(np.clip(scene + noise, 0, 255).astype(np.uint8))


@pytest.fixture
def folder(tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    for seed in range(3):
        photo(seed).save(pics / f"img{seed}.png")
    shutil.copyfile(pics / "img0.png", pics / "copy0.png")
    photo(1).save(pics / "img1_reencoded.jpg", quality=95)
    photo(1).save(pics / "img1.jpg", quality=80)
    (pics / "notes.txt").write_text("not an image")
    return pics


def outputs(folder):
    files = sorted(os.listdir(folder))
    found = {
        part: [f for f in files if f.endswith(f"_{part}.json")]
        for part in ("results", "lower_quality", "stats")
    }
    return {
        part: json.loads((folder / names[0]).read_text())
        for part, names in found.items()
        if len(names) == 1
    }


def test_cli_end_to_end_writes_json_and_summary(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(str(folder), "-Z", str(out), "-s", "duplicates", "-p", "false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = outputs(out)
    assert set(data) == {"results", "lower_quality", "stats"}
    assert data["results"] == {str(folder / "copy0.png"): [[str(folder / "img0.png"), 0.0]]}
    assert data["lower_quality"] == [str(folder / "img0.png")]
    stats = data["stats"]
    assert stats["total_files"] == 7
    assert stats["invalid_files"]["logs"] == {str(folder / "notes.txt"): "Unsupported file type"}
    assert "7 files, 1 invalid, 1 groups, 1 duplicates, 0 similar" in proc.stdout
    assert all(f.startswith("fastdif_") for f in os.listdir(out))


def test_cli_similar_with_difpy_flags(folder, tmp_path):
    proc = run_cli(
        "-D",
        str(folder),
        "-Z",
        str(tmp_path),
        "-s",
        "similar",
        "-r",
        "false",
        "-proc",
        "1",
        "-p",
        "false",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = outputs(tmp_path)["results"]
    groups = sorted(sorted([key] + [p for p, _ in members]) for key, members in result.items())
    assert groups == sorted(
        [
            sorted([str(folder / "copy0.png"), str(folder / "img0.png")]),
            sorted(
                [
                    str(folder / "img1.jpg"),
                    str(folder / "img1.png"),
                    str(folder / "img1_reencoded.jpg"),
                ]
            ),
        ]
    )


def test_cli_searches_current_folder_by_default(folder):
    proc = run_cli("-p", "false", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert outputs(folder)["lower_quality"] == [str(folder / "img0.png")]


def test_cli_move_to_never_overwrites(folder, tmp_path):
    dest = tmp_path / "dupes"
    dest.mkdir()
    (dest / "img0.png").write_bytes(b"someone else's file")
    proc = run_cli(str(folder), "-Z", str(tmp_path), "-mv", str(dest), "-p", "false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "img0.png").read_bytes() == b"someone else's file"
    assert (dest / "img0_1.png").exists()
    assert not (folder / "img0.png").exists()
    assert (folder / "copy0.png").exists()
    assert outputs(tmp_path)["lower_quality"] == [str(dest / "img0_1.png")]
    assert "moved 1 files" in proc.stdout


def test_cli_delete_asks_and_no_answer_keeps_files(folder, tmp_path):
    common = [str(folder), "-Z", str(tmp_path), "-d", "true", "--permanent", "-p", "false"]
    proc = run_cli(*common, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "img0.png").exists()
    proc = run_cli(*common, "-sd", "true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (folder / "img0.png").exists()
    assert (folder / "copy0.png").exists()
    assert "deleted 1 files" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["does-not-exist"], 'Directory "does-not-exist" does not exist'),
        (["-px", "5", "."], '"px_size" parameter: must be between 10 and 5000'),
        (["-proc", "0", "."], '"processes" parameter: must be between 1 and'),
        (["-s", "high", "."], "argument -s/--similarity"),
        (["-s", "-3", "."], "argument -s/--similarity"),
        (["-r", "maybe", "."], "argument -r/--recursive: expected true or false"),
        (["-ch", "0", "."], '"chunksize" parameter: must be >= 1'),
        ([".", "-Z", "img0.png"], 'Output directory "img0.png" is not a directory'),
        (["-mv", "dupes", "-d", "true", "."], '"move_to" and "delete" parameter are mutually'),
        ([".", "."], "invalid attempt to compare a directory with itself"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(folder, args, message):
    proc = run_cli(*args, "-p", "false", cwd=folder)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not [f for f in os.listdir(folder) if f.startswith("fastdif_")]


def test_help_documents_every_difpy_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "-D",
        "-Z",
        "-r",
        "-i",
        "-le",
        "-px",
        "-s",
        "-ro",
        "-dim",
        "-mv",
        "-d",
        "-sd",
        "-p",
        "-proc",
        "-ch",
        "-la",
        "--lazy",
        "--report",
        "--format",
        "-q",
        "--quiet",
        "-v",
        "--verbose",
        "--version",
    ):
        assert f" {flag} " in text or f" {flag}," in text, flag
    documented = {a.dest for a in make_parser()._actions if a.help}
    assert {"directory", "chunksize", "silent_del", "folders"} <= documented
    assert [a.dest for a in make_parser()._actions if not a.help] == []


def test_main_in_process_returns_status(folder, tmp_path, capsys):
    assert main([str(folder), "-Z", str(tmp_path), "-p", "false", "-proc", "1"]) == 0
    assert main([str(folder / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_output_directory_is_created_with_its_parents(folder, tmp_path):
    out = tmp_path / "new" / "results"
    proc = run_cli(str(folder), "-Z", str(out), "-p", "false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert set(outputs(out)) == {"results", "lower_quality", "stats"}
    # A missing input creates nothing.
    proc = run_cli("missing", "-Z", str(tmp_path / "other"), "-p", "false", cwd=tmp_path)
    assert proc.returncode == 2 and 'Directory "missing" does not exist' in proc.stderr
    assert not (tmp_path / "other").exists()


# difPy 4.2.1's messages for its renamed and removed flags (dif.py, _validate_param).
LAZY = (
    'Parameter "-la" / "lazy" was renamed to "-dim" / "same_dim" with difPy v4.2. '
    "Please update your script."
)
LEVELS = (
    'Since difPy v3.0.8, "similarity" parameter only accepts "duplicates" and "similar" '
    "as input options."
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-la", "true"], LAZY),
        (["-la", "false"], LAZY),
        (["--lazy", "True"], LAZY),
        (["-la"], LAZY),
        (["-s", "low"], LEVELS),
        (["-s", "normal"], LEVELS),
        (["--similarity", "high"], LEVELS),
    ],
)
def test_cli_renamed_difpy_flags_get_difpy_message(folder, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), "-Z", str(tmp_path), *args])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m fastdif: error: ") and message in line
    assert not [f for f in os.listdir(tmp_path) if f.startswith("fastdif_")]


@pytest.mark.slow
def test_cli_in_folder_modes(tmp_path):
    pics = tmp_path / "pics"
    (pics / "sub").mkdir(parents=True)
    photo(5).save(pics / "a.png")
    shutil.copyfile(pics / "a.png", pics / "sub" / "a_copy.png")
    photo(6).save(pics / "sub" / "b.png")
    shutil.copyfile(pics / "sub" / "b.png", pics / "sub" / "b_copy.png")
    keys = {}
    for mode in ("true", "subfolders", "false", "TRUE"):
        out = tmp_path / f"out-{mode}"
        proc = run_cli(str(pics), "-i", mode, "-Z", str(out), "-p", "false", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        data = outputs(out)
        keys[mode] = sorted(data["results"])
        assert "2 groups, 2 duplicates" in proc.stdout or mode == "subfolders", proc.stdout
        assert (
            data["stats"]["process"]["build"]["parameters"]["in_folder"]
            == {
                "true": True,
                "TRUE": True,
                "subfolders": "subfolders",
                "false": False,
            }[mode]
        )
    # true: the input with its sub-folders, as difPy; subfolders: each folder on its own.
    assert keys["true"] == keys["TRUE"] == [str(pics)]
    assert keys["subfolders"] == [str(pics / "sub")]
    assert len(keys["false"]) == 2  # keyed by image, not by folder
    proc = run_cli(str(pics), "-i", "sub", "-p", "false", cwd=tmp_path)
    assert proc.returncode == 2
    assert "argument -i/--in_folder: expected true, false or subfolders, got 'sub'" in proc.stderr


@pytest.mark.parametrize("permanent", [[], ["--permanent"]])
def test_no_at_the_delete_prompt_says_cancelled(folder, tmp_path, monkeypatch, capsys, permanent):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    before = sorted(os.listdir(folder))
    args = [str(folder), "-Z", str(tmp_path), "-p", "false", "-d", "true", *permanent]
    assert main(args) == 0
    out = capsys.readouterr().out
    verb = "deleted" if permanent else "trashed"
    assert f"cancelled: no file {verb}" in out
    assert f"{verb} 0 files" not in out
    assert sorted(os.listdir(folder)) == before


def test_a_second_report_says_it_replaced_the_first(folder, tmp_path, capsys):
    report = tmp_path / "report.html"
    args = [str(folder), "-Z", str(tmp_path), "-p", "false", "--report", str(report)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert f"wrote {report}\n" in first
    assert main(args) == 0
    assert f"wrote {report} (replaced the earlier report)" in capsys.readouterr().out
