"""The command line: flags, output files, exit codes."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
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


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "fastdif", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


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
    proc = run_cli(str(folder), "-Z", str(tmp_path), "-d", "true", "-p", "false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "img0.png").exists()
    proc = run_cli(
        str(folder), "-Z", str(tmp_path), "-d", "true", "-sd", "true", "-p", "false", cwd=tmp_path
    )
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
        ([".", "-Z", "no-such-output"], 'Output directory "no-such-output" does not exist'),
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
