"""What the command line tells the user when things go wrong (issue 24, items 18, 19,
21, 22): a full disk after acting, a signal while workers decode, no writable home,
and file names that a spreadsheet would run as formulas."""

import csv
import errno
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import images
import pytest

import fastdif
from fastdif import cli, kernel_cache
from fastdif.engine import warmup

pytestmark = [pytest.mark.slow]

TESTS = os.path.dirname(__file__)
PACKAGE = os.path.dirname(fastdif.__file__)


# -- 18: the output folder's disk fills after the files were trashed ----------


@pytest.mark.parametrize("failing", ["results", "stats"])
def test_a_full_disk_after_trashing_still_prints_what_went_where(
    tmp_path, monkeypatch, capsys, failing
):
    folder = tmp_path / "pics"
    images.save_photo(1, folder / "a.png", 40, 30)
    images.copy_bytes(folder / "a.png", folder / "b.png")
    out = tmp_path / "out"
    write_json = cli.write_json

    def full_disk(folder, name, data):
        if failing in name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_json(folder, name, data)

    monkeypatch.setattr(cli, "write_json", full_disk)
    args = [folder, "-Z", out, "-d", "true", "-sd", "true", "-p", "false", "--no-cache"]
    status = cli.main(list(map(str, args)))
    printed = capsys.readouterr()

    assert status == 2
    assert "trashed 1 files, 0 kept" in printed.out
    [undo] = [line for line in printed.out.splitlines() if "undo with:" in line]
    [error] = printed.err.splitlines()
    assert error.startswith("python -m fastdif: error: could not write ")
    assert f"_{failing}.json: No space left on device" in error
    assert sorted(os.listdir(folder)) == [".fastdif-trash", "a.png"]  # b.png in the trash
    written = [line for line in printed.out.splitlines() if line.startswith("wrote ")]
    assert len(written) == (0 if failing == "results" else 2)
    # The hint printed is the way back.
    manifest = undo.split("--undo_move ", 1)[1]
    assert cli.main(["--undo_move", manifest]) == 0
    assert sorted(os.listdir(folder)) == [".fastdif-trash", "a.png", "b.png"]


# -- 19: SIGTERM or SIGKILL while workers decode ------------------------------


def session_members(sid: int) -> list[int]:
    """Pids of live (not zombie) processes in session ``sid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc")
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "how", ["SIGTERM to the command", "SIGTERM to its group", "SIGKILL to the command"]
)
def test_a_signal_while_workers_decode_prints_no_traceback_and_leaves_no_worker(tmp_path, how):
    folder = tmp_path / "pics"
    for k in range(40):  # 0.3 s each (tests/faults.py): workers are mid-file when it lands
        images.save_photo(70 + k, folder / f"nap_{k:03d}.png", 40, 30)  # distinct: no copy
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        import faults
        import fastdif.io.decode
        from fastdif.cli import main
        fastdif.io.decode.decode_file = faults.decode
        sys.exit(main([{str(folder)!r}, "-Z", {str(out)!r}, "-p", "false", "-proc", "2",
                       "--no-cache"]))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # the workers' too: they inherit it
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 40
        while not glob.glob(str(folder / "*.started")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        if how == "SIGTERM to its group":  # a service manager, `timeout`
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.kill(proc.pid, getattr(signal, how.split()[0]))
        _, err = proc.communicate(timeout=30)  # until every worker closed stderr
        deadline = time.monotonic() + 10
        while session_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = session_members(proc.pid)
    finally:
        if proc.poll() is None or session_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in err and "Error" not in err, err
    assert left == []  # no worker outlives the command
    if how.startswith("SIGTERM"):
        assert proc.returncode == 128 + signal.SIGTERM
        assert err == "python -m fastdif: terminated\n"
    else:
        assert proc.returncode == -signal.SIGKILL and err == ""


def test_sigterm_stops_an_in_process_run_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    """The handler is installed only for the run, and put back after it."""

    def outside(signum, frame):  # stands in for the default, which would end pytest
        raise AssertionError("the command line left SIGTERM to the handler before it")

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(cli, "search", terminated)
    images.save_photo(1, tmp_path / "a.png", 40, 30)
    before = signal.signal(signal.SIGTERM, outside)
    try:
        status = cli.main([str(tmp_path), "-Z", str(tmp_path / "out"), "-p", "false"])
        assert signal.getsignal(signal.SIGTERM) is outside
    finally:
        signal.signal(signal.SIGTERM, before)
    assert status == 143
    assert capsys.readouterr().err == "python -m fastdif: terminated\n"


# -- 21: no writable home ------------------------------------------------------


def python_env(**changes) -> dict:
    """The environment of this process without the kernel cache variables, with ``changes``."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update({k: str(v) for k, v in changes.items()})
    return env


def kernel_files(folder) -> list[str]:
    return [
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
        if name.endswith((".nbi", ".nbc"))
    ]


# Compiles (or loads) one small kernel, with nothing else of a search.
ONE_KERNEL = "from fastdif.engine import kernels; kernels.symmetry_range(True, False)"


@pytest.mark.timeout(240)
def test_without_a_writable_home_kernels_cache_in_a_private_temporary_folder(tmp_path):
    # A copy of the package, so that Numba cannot write beside its source
    # either: a file stands where engine/__pycache__ would be (as root, only
    # a file in the way stops a write).
    copy = tmp_path / "site"
    shutil.copytree(PACKAGE, copy / "fastdif", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "fastdif" / "engine" / "__pycache__").write_text("")
    (tmp_path / "file").write_text("")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = python_env(
        HOME=tmp_path / "file" / "home",  # like /nonexistent, even for root
        TMPDIR=temporary,
        PYTHONPATH=copy,
    )
    pics = tmp_path / "pics"
    images.save_photo(1, pics / "a.png", 40, 30)
    images.copy_bytes(pics / "a.png", pics / "b.png")

    def run(*args, notes=0):
        done = subprocess.run(
            [sys.executable, *args],
            env=env,
            cwd=tmp_path,  # not a folder holding the package itself
            capture_output=True,
            text=True,
            timeout=200,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(done.stderr.splitlines()) <= notes, done.stderr[-3000:]
        return done.stdout

    assert run("-m", "fastdif", "--version") == f"fastdif {fastdif.__version__}\n"
    # Numba imported before fastdif still caches there.
    where = "import numba, fastdif; print(fastdif.__file__); print(numba.config.CACHE_DIR)"
    package, folder = run("-c", where).split()
    assert package == str(copy / "fastdif" / "__init__.py")
    assert os.path.dirname(folder) == str(temporary)
    assert os.stat(folder).st_mode & 0o077 == 0
    # The thumbnail cache, in the home too, may say in one line that it is not used.
    out = run("-m", "fastdif", pics, "-Z", tmp_path / "out", "-p", "false", notes=1)
    assert "1 groups, 1 duplicates" in out
    # A first run searches in NumPy and compiles the kernels in the background.
    assert warmup.wait_for_background(folder, timeout=180)
    assert kernel_files(folder)


@pytest.mark.timeout(120)
def test_with_no_writable_cache_folder_kernels_compile_uncached_after_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    unwritable = tmp_path / "file" / "numba"
    env = python_env(NUMBA_CACHE_DIR=unwritable)
    done = subprocess.run(
        [sys.executable, "-c", ONE_KERNEL + "; print('ran')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0 and done.stdout == "ran\n", done.stderr[-3000:]
    assert done.stderr == (
        f"fastdif: note: cannot write NUMBA_CACHE_DIR={str(unwritable)!r}; "
        "each run compiles the kernels again\n"
    )


@pytest.mark.timeout(120)
def test_kernels_are_cached_in_the_user_cache_folder_not_in_the_package(tmp_path):
    started = time.time()
    env = python_env(XDG_CACHE_HOME=tmp_path / "cache")
    subprocess.run([sys.executable, "-c", ONE_KERNEL], env=env, check=True, timeout=100)
    found = kernel_files(tmp_path / "cache" / "fastdif" / "numba")
    assert any(name.endswith(".nbi") for name in found)
    assert any(name.endswith(".nbc") for name in found)
    in_package = glob.glob(os.path.join(PACKAGE, "**", "*.nb[ic]"), recursive=True)
    assert not [path for path in in_package if os.stat(path).st_mtime >= started]


@pytest.mark.timeout(120)
def test_a_numba_cache_dir_set_by_the_user_is_honoured(tmp_path):
    mine = tmp_path / "mine"
    env = python_env(XDG_CACHE_HOME=tmp_path / "cache", NUMBA_CACHE_DIR=mine)
    subprocess.run([sys.executable, "-c", ONE_KERNEL], env=env, check=True, timeout=100)
    assert kernel_files(mine)
    assert not (tmp_path / "cache" / "fastdif").exists()


def test_with_neither_home_nor_temporary_folder_writable_no_folder_is_chosen(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "file" / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "file" / "tmp"))
    folder, note = kernel_cache.choose()
    assert folder is None
    home_folder = os.path.join(tmp_path, "file", "home", ".cache", "fastdif", "numba")
    assert note == (
        f"fastdif: note: cannot write {home_folder!r} nor a private temporary folder; "
        "each run compiles the kernels again"
    )


def test_a_temporary_folder_another_user_can_write_is_never_used(tmp_path, monkeypatch):
    if not hasattr(os, "getuid"):
        pytest.skip("POSIX owners and modes")
    monkeypatch.setenv("HOME", str(tmp_path / "file" / "home"))
    (tmp_path / "file").write_text("")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"fastdif-numba-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)  # anyone could put an index file there for Numba to unpickle
    folder, note = kernel_cache.choose()
    assert folder is None
    assert note.startswith("fastdif: note: cannot write ") and "\n" not in note
    planted.chmod(0o700)
    assert kernel_cache.choose() == (str(planted), "")
    planted.rmdir()
    planted.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    assert kernel_cache.choose()[0] is None


# -- 22: names that a spreadsheet would run as formulas ------------------------

FORMULA_NAMES = ["=1+2.png", "+1.png", "-1.png", "@SUM(A1).png", "\t1.png", "\r1.png"]


def test_csv_cells_never_start_a_formula_and_json_keeps_names_exact(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # files given by relative names: the path cells start with them
    images.save_photo(5, tmp_path / "a.png", 40, 30)
    for name in FORMULA_NAMES:
        images.copy_bytes(tmp_path / "a.png", tmp_path / name)
    args = ["--format", "csv", "-Z", "out", "-p", "false", "--no-cache", "--"]
    assert cli.main([*args, "a.png", *FORMULA_NAMES]) == 0
    capsys.readouterr()
    [results] = glob.glob("out/*_results.csv")
    with open(results, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    paths = {row[2] for row in rows[1:]}
    assert paths == {"a.png"} | {"'" + name for name in FORMULA_NAMES}
    [lower] = glob.glob("out/*_lower_quality.json")
    with open(lower, encoding="utf-8") as f:
        lower = json.load(f)
    assert len(lower) == len(FORMULA_NAMES) and set(lower) < {"a.png", *FORMULA_NAMES}
