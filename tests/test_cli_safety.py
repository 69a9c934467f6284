"""Paths the command line is given or prints: the report, the cache, the report's
shell script, output file modes, empty paths, device links and console lines."""

import os
import shutil
import sqlite3
import stat
import subprocess

import images
import pytest

import fastdif
from fastdif import report as report_module
from fastdif.backends.local import LocalDecoder
from fastdif.cli import main
from fastdif.io import cache as cache_module
from fastdif.io.discover import NOT_A_FILE


@pytest.fixture
def pics(tmp_path):
    """a.png and its exact copy b.png; c.png and d.png, unique."""
    folder = tmp_path / "pics"
    images.save_photo(1, folder / "a.png")
    images.copy_bytes(folder / "a.png", folder / "b.png")
    images.save_photo(2, folder / "c.png")
    images.save_photo(3, folder / "d.png")
    return folder


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def contents(folder):
    """{relative path: bytes} of every file under ``folder``."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def cli(*args, capsys):
    status = main([*map(str, args), "-p", "false", "-proc", "1"])
    return status, capsys.readouterr()


def one_error_line(printed):
    [line] = printed.err.splitlines()
    assert line.startswith("python -m fastdif: error: ")
    return line


# ------------------------------------------------------------- 5: --report


def test_report_never_replaces_a_photo(pics, tmp_path):
    se = fastdif.search(fastdif.build(pics, show_progress=False, processes=1), show_progress=False)
    before = contents(pics)
    for target in (pics / "a.png", pics):
        with pytest.raises(FileExistsError, match="not a fastdif report"):
            se.report(target, processes=1)
    (tmp_path / "link.html").symlink_to(pics / "c.png")
    with pytest.raises(FileExistsError, match="not a fastdif report"):
        se.report(tmp_path / "link.html", processes=1)
    assert contents(pics) == before
    with pytest.raises(ValueError, match="must name a file"):
        se.report("", processes=1)


def test_report_replaces_an_earlier_report(pics, tmp_path):
    se = fastdif.search(fastdif.build(pics, show_progress=False, processes=1), show_progress=False)
    target = tmp_path / "r.html"
    se.report(target, processes=1)
    with open(target, "a", encoding="utf-8") as f:
        f.write("<!-- old -->")
    assert report_module.is_report(str(target))
    se.report(target, processes=1)
    assert "<!-- old -->" not in target.read_text(encoding="utf-8")


def test_cli_report_on_a_photo_with_silent_delete_touches_nothing(pics, out, capsys):
    before = contents(pics)
    status, printed = cli(
        pics, "-Z", out, "-d", "true", "-sd", "true", "--report", pics / "a.png", capsys=capsys
    )
    assert status == 2
    assert "is not a fastdif report" in one_error_line(printed)
    assert contents(pics) == before
    assert os.listdir(out) == []


# ------------------------------------------------------------- 6: --cache


def test_clear_cache_never_removes_a_photo(pics, capsys):
    before = contents(pics)
    status, printed = cli("--clear-cache", "--cache", pics / "b.png", capsys=capsys)
    assert status == 2
    assert "not a fastdif cache" in one_error_line(printed)
    assert contents(pics) == before


def test_cache_on_a_photo_is_an_error_and_the_photo_stays(pics, out, capsys):
    before = contents(pics)
    status, printed = cli(pics, "-Z", out, "--cache", pics / "c.png", capsys=capsys)
    assert status == 2
    assert "not a fastdif cache" in one_error_line(printed)
    assert contents(pics) == before  # no c.png.bad-..., no -wal or -shm file
    assert os.listdir(out) == []


def other_database(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('owner', 'another program')")
    db.close()
    return path.read_bytes()


def test_another_programs_database_is_never_used_cleared_or_moved(pics, tmp_path):
    path = tmp_path / "theirs.sqlite3"
    data = other_database(path)
    assert cache_module.cache_file_kind(str(path)) is cache_module.CacheFile.OTHER
    with pytest.raises(ValueError, match='"cache" parameter: .* is not a fastdif cache'):
        fastdif.build(pics, show_progress=False, processes=1, cache=path)
    with pytest.raises(ValueError, match="not a fastdif cache"):
        cache_module.clear_cache(path)
    # Named after the check (a race): the build warns, uses no cache, moves nothing.
    decoder = cache_module.CachedDecoder(str(path), 50, LocalDecoder(50, 1).decode)
    with pytest.warns(cache_module.CacheWarning, match="not a fastdif cache"):
        found = list(decoder.decode([str(pics / "a.png")]))
    assert found[0].decoded.reason is None
    assert sorted(os.listdir(tmp_path)) == ["pics", "theirs.sqlite3"]
    assert path.read_bytes() == data


def test_empty_and_fastdif_cache_files_are_recognised(pics, tmp_path):
    path = tmp_path / "cache.sqlite3"
    kind = cache_module.cache_file_kind
    assert kind(str(path)) is cache_module.CacheFile.MISSING
    path.write_bytes(b"")
    assert kind(str(path)) is cache_module.CacheFile.EMPTY
    with pytest.raises(ValueError, match="is empty"):
        cache_module.clear_cache(path)
    fastdif.build(pics, show_progress=False, processes=1, cache=path)  # an empty file is filled
    assert kind(str(path)) is cache_module.CacheFile.FASTDIF
    assert cache_module.clear_cache(path) == [str(path)]
    # A database without tables (as one that another build is creating) holds nothing.
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.close()
    assert path.stat().st_size > 0 and kind(str(path)) is cache_module.CacheFile.EMPTY


def test_a_damaged_fastdif_cache_is_still_recognised_and_moved_aside(pics, tmp_path):
    path = tmp_path / "cache.sqlite3"
    fastdif.build(pics, show_progress=False, processes=1, cache=path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)  # every page but the schema's
    path.write_bytes(bytes(data))
    assert cache_module.cache_file_kind(str(path)) is cache_module.CacheFile.FASTDIF

    with pytest.warns(cache_module.CacheWarning, match="corrupt"):
        fastdif.build(pics, show_progress=False, processes=1, cache=path)

    [aside] = [p for p in os.listdir(tmp_path) if p.startswith("cache.sqlite3.bad-")]
    assert (tmp_path / aside).read_bytes() == bytes(data)


def test_a_cache_still_in_its_write_ahead_log_is_recognised(tmp_path):
    path = tmp_path / "cache.sqlite3"
    db = cache_module._connect(str(path))  # open, as in a process killed mid-build
    try:
        copy = tmp_path / "copy"
        copy.mkdir()
        for suffix in ("", "-wal"):
            shutil.copyfile(str(path) + suffix, str(copy / "cache.sqlite3") + suffix)
    finally:
        db.close()
    kind = cache_module.cache_file_kind(str(copy / "cache.sqlite3"))
    assert kind is cache_module.CacheFile.FASTDIF


# ------------------------------------------------------------- 7: the report's shell script


def node():
    found = shutil.which("node")
    if found:
        return found
    try:
        import playwright
    except ImportError:
        return None
    bundled = os.path.join(os.path.dirname(playwright.__file__), "driver", "node")
    return bundled if os.access(bundled, os.X_OK) else None


def report_script(data, choice, action="delete", destination=""):
    """The shell script the report page downloads, made by its own JavaScript."""
    executable = node()
    if executable is None:
        pytest.skip("no node (nor playwright's) to run the report's JavaScript")
    template = report_module.template()
    start = template.index("return {remove, guards, kept, skipped};\n}\n")
    start = template.index("\n}\n", start) + 3
    code = template[start : template.index("function download(")]
    inputs = {"action": {"value": action}, "destination": {"value": destination}}
    driver = (
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "const DATA = input.data, $ = (id) => input.inputs[id];\n"
        f"{code}\n"
        "process.stdout.write(script(input.choice));\n"
    )
    payload = {"data": data, "choice": choice, "inputs": inputs}
    run = subprocess.run(
        [executable, "-e", driver],
        input=report_module.script_json(payload).encode(),
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    return run.stdout


def shells():
    found = [shell for shell in ("bash", "dash", "zsh") if shutil.which(shell)]
    return found or ["sh"]


# Names as bytes: not UTF-8 and ending in a line break, line breaks, quotes,
# $, backticks, printf's % and \, an escape sequence.
HOSTILE = [
    b"dup\xff\n",
    b"a\nb\n",
    b'it\'s "q" $(touch pwned) `touch pwned` $HOME; x.png',
    b"%s%d\\n \xfe%b\\.png",
    b"tab\t\x1b[31mred\xc3.png",
    b"\n",
]
# Names a wrong quoting would reach instead: each hostile name less its last byte.
DECOYS = [name[:-1] for name in HOSTILE if len(name) > 1]


def script_folder(tmp_path):
    """A working folder whose name is not UTF-8 and ends in a line break, a decoy
    folder of the name without it; the same files in both."""
    root = os.fsencode(tmp_path)
    folders = [os.path.join(root, b"work\xfe\n"), os.path.join(root, b"work\xfe")]
    for folder in folders:
        os.makedirs(os.path.join(folder, b"sub"))
        for name in [b"kept.png", b"sub/kept\xff\n", b"guarded.png", *HOSTILE, *DECOYS]:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(name)
    return folders


@pytest.mark.parametrize("shell", shells())
def test_report_script_deletes_exactly_the_named_files(tmp_path, shell):
    work, decoy = script_folder(tmp_path)
    # guarded.png stays: its group's kept file is gone.
    remove = ["guarded.png"] + [os.fsdecode(name) for name in HOSTILE]
    guards = [os.fsdecode(b"sub/missing\n")] + ["kept.png", os.fsdecode(b"sub/kept\xff\n")] * 3
    data = {"generator": "fastdif", "generated": "now", "cwd": os.fsdecode(work)}
    choice = {"remove": remove, "guards": guards, "kept": 2, "skipped": 0}
    script = report_script(data, choice)
    (tmp_path / "remove.sh").write_bytes(script)

    before = {folder: sorted(os.listdir(folder)) for folder in (work, decoy)}
    run = subprocess.run([shell, str(tmp_path / "remove.sh")], cwd=tmp_path, capture_output=True)

    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(work)) == sorted(set(before[work]) - set(HOSTILE))
    assert sorted(os.listdir(decoy)) == before[decoy]
    for folder in (work, decoy):
        for name in os.listdir(folder):
            if name != b"sub":
                with open(os.path.join(folder, name), "rb") as f:
                    assert f.read() == name
    assert not any(b"pwned" in os.listdir(d) for d in (os.fsencode(tmp_path), work, decoy))


@pytest.mark.parametrize("shell", shells())
def test_report_script_moves_files_under_their_exact_names(tmp_path, shell):
    work, decoy = script_folder(tmp_path)
    remove = [os.fsdecode(name) for name in HOSTILE] + [os.fsdecode(b"sub/kept\xff\n")]
    data = {"generator": "fastdif", "generated": "now", "cwd": os.fsdecode(work)}
    choice = {"remove": remove, "guards": ["kept.png"] * len(remove), "kept": 1, "skipped": 0}
    destination = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"moved \xff\n"))
    script = report_script(data, choice, "move", destination)
    (tmp_path / "move.sh").write_bytes(script)
    decoy_before = sorted(os.listdir(decoy))

    run = subprocess.run([shell, str(tmp_path / "move.sh")], cwd=tmp_path, capture_output=True)

    assert run.returncode == 0, run.stderr
    moved = os.fsencode(destination)
    assert sorted(os.listdir(moved)) == sorted([*HOSTILE, b"kept\xff\n"])
    for name in os.listdir(moved):
        with open(os.path.join(moved, name), "rb") as f:
            assert f.read() == (name if name != b"kept\xff\n" else b"sub/kept\xff\n")
    assert not set(HOSTILE) & set(os.listdir(work))
    assert sorted(os.listdir(decoy)) == decoy_before


# ------------------------------------------------------------- 13: file modes


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_output_files_honour_the_umask(pics, out, tmp_path, capsys, umask, mask, mode):
    umask(mask)
    report = tmp_path / "report.html"
    args = ("--no-cache", "--report", report, "-mv", tmp_path / "dupes")
    assert cli(pics, "-Z", out, *args, capsys=capsys)[0] == 0
    assert cli(pics, "-Z", out, "--format", "csv", "--no-cache", capsys=capsys)[0] == 0
    written = [out / name for name in os.listdir(out)] + [report]
    written += [p for p in (tmp_path / "dupes").iterdir() if p.name.endswith(".json")]
    assert len(written) == 8  # results (json, csv), 2 x (lower_quality, stats), report, manifest
    assert {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in written} == {
        p.name: mode for p in written
    }


# ------------------------------------------------------------- 14: smaller items


@pytest.mark.parametrize("flag", ["-mv", "--report", "-Z", "--cache", "--undo_move"])
def test_an_empty_path_is_an_error(pics, out, capsys, flag):
    before = contents(pics)
    with pytest.raises(SystemExit) as exit_info:
        main([str(pics), "-Z", str(out), "-d", "true", "-sd", "true", flag, ""])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "expected a path, got an empty string" in line
    assert contents(pics) == before and os.listdir(out) == []


def test_a_link_to_a_device_is_not_a_regular_file(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    folder = tmp_path / "pics"
    images.save_photo(1, folder / "a.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "gone.png").symlink_to(tmp_path / "nowhere")
    logs = fastdif.build(folder, show_progress=False).stats["invalid_files"]["logs"]
    assert logs == {
        str(folder / "zero.png"): NOT_A_FILE,
        str(folder / "gone.png"): "Dangling symbolic link",
    }


def test_console_lines_escape_file_names(tmp_path, out, capsys):
    folder = tmp_path / "pics"
    images.save_photo(1, folder / "a.png")
    weird = str(folder / "z\n\x1b[2Jwould delete: fake.png")
    images.copy_bytes(folder / "a.png", weird)
    images.copy_bytes(folder / "a.png", os.path.join(os.fsencode(folder), b"z\xff\r.png"))

    args = ("-d", "true", "--permanent", "--dry_run", "true")
    status, printed = cli(folder, "-Z", out, *args, capsys=capsys)

    assert status == 0
    assert "\x1b" not in printed.out and "\r" not in printed.out
    lines = printed.out.splitlines()
    deleted = [line for line in lines if "would delete:" in line]
    latin = os.fsdecode(os.path.join(os.fsencode(folder), b"z\xff\r.png"))
    assert sorted(deleted) == sorted(
        f"  would delete: {report_module.printable(path)}" for path in (weird, latin)
    )
    assert f"  would delete: {weird!r}" in lines


def test_bad_arguments_print_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["-s", "bogus"])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m fastdif: error: argument -s/--similarity: ")
    assert line.endswith("(see python -m fastdif --help)")


def test_errors_escape_the_names_they_quote(tmp_path, capsys):
    missing = str(tmp_path / "no\nsuch\x1b[31m")
    assert main([missing, "-p", "false"]) == 2
    line = one_error_line(capsys.readouterr())
    assert "no\\nsuch\\x1b[31m" in line
