"""fastdif installed as users install it, its kernels cached outside the package (issue 25).

Numba once wrote the compiled kernels beside their source, into the installed
package: ``pip install .``, one run, then ``pip install -e .`` left
``fastdif/engine/__pycache__`` behind in site-packages, a namespace package
that shadowed the editable install (``No module named
'fastdif.engine.kernels'``), and a read-only install could never cache.
:mod:`fastdif.kernel_cache` points Numba at the user's cache folder instead.

Each test installs a copy of the source tree into a virtual environment of its
own, offline: no build isolation (the build backend is the test
environment's setuptools) and no dependencies (the environment reaches this
one's site-packages through a ``.pth`` file; ``--system-site-packages`` would
give the base interpreter's packages, not this environment's). The command
line with no writable home is tested in
``tests/test_safety_cli.py::test_without_a_writable_home_kernels_cache_in_a_private_temporary_folder``.
"""

import os
import shutil
import site
import subprocess
import sys

import images
import pytest

from fastdif.engine import warmup

pytestmark = [pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The build backend reads pyproject.toml's SPDX ``license`` string from setuptools 77 on.
pytest.importorskip("setuptools", minversion="77", reason="building fastdif needs setuptools>=77")
if not os.path.isfile(os.path.join(ROOT, "pyproject.toml")):
    pytest.skip("needs the source tree", allow_module_level=True)

# The environment the installed package runs in: no kernel cache, user cache
# folder, import path or Numba debugging of the caller's.
CALLER = ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH", "NUMBA_DEBUG_CACHE")


def kernel_files(folder) -> list[str]:
    """Numba's index and data files under ``folder``, relative to it."""
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
        if name.endswith((".nbi", ".nbc"))
    )


class Environment:
    """A virtual environment in ``tmp_path`` that sees this one's packages, and a copy
    of the source tree to install into it."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.work = tmp_path / "work"  # the current folder: not one that holds a package
        self.work.mkdir()
        self.cache = tmp_path / "cache"
        self.kernels = self.cache / "fastdif" / "numba"  # Numba's cache folder
        self.env = {k: v for k, v in os.environ.items() if k not in CALLER}
        self.env.update(
            XDG_CACHE_HOME=str(self.cache),
            HOME=str(tmp_path / "home"),
            PIP_NO_INDEX="1",
            PIP_NO_CACHE_DIR="1",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        self.source = tmp_path / "source"
        shutil.copytree(
            os.path.join(ROOT, "fastdif"),
            self.source / "fastdif",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        for name in ("pyproject.toml", "README.md"):  # README.md: the package's description
            shutil.copy(os.path.join(ROOT, name), self.source / name)
        venv = tmp_path / "venv"
        self.output(sys.executable, "-m", "venv", "--without-pip", venv)
        scripts = venv / ("Scripts" if os.name == "nt" else "bin")
        self.python = str(scripts / "python")
        self.command = str(scripts / "fastdif")
        purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
        self.site = self.output(self.python, "-c", purelib).strip()
        parents = site.getsitepackages()
        if site.ENABLE_USER_SITE:
            parents.append(site.getusersitepackages())
        with open(os.path.join(self.site, "_test_environment.pth"), "w") as pth:
            pth.write("\n".join(parents) + "\n")  # after the venv's own site-packages
        self.pics = tmp_path / "pics"
        for seed in range(3):
            images.save_photo(seed, self.pics / f"p{seed}.png", 40, 30)
        images.copy_bytes(self.pics / "p0.png", self.pics / "p0 copy.png")

    def output(self, *command, wrapper=(), timeout=200, **env) -> str:
        """What ``command`` prints; it must succeed."""
        done = subprocess.run(
            [*wrapper, *map(str, command)],
            env={**self.env, **env},
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
        return done.stdout

    def install(self, *options) -> None:
        """``pip install`` the source copy, without build isolation or dependencies."""
        self.output(
            self.python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            *options,
            self.source,
        )

    def package(self) -> str:
        """The ``__init__.py`` that ``import fastdif`` runs in the environment ("None": a
        namespace package, such as a folder of kernels that an uninstall left behind)."""
        return self.output(self.python, "-c", "import fastdif; print(fastdif.__file__)").strip()

    def search(self, wrapper=(), **env) -> str:
        """The installed command line on the four pictures (one pair of duplicates), once the
        compile it left running in the background (a first run's) has ended."""
        out = self.tmp_path / "out"
        args = (self.command, self.pics, "-Z", out, "-p", "false", "--no-cache")
        printed = self.output(*args, wrapper=wrapper, **env)
        assert "4 files, 0 invalid, 1 groups, 1 duplicates" in printed
        assert warmup.wait_for_background(str(self.kernels), timeout=200)
        return printed


@pytest.mark.timeout(280)
def test_installed_then_reinstalled_editable_both_run_and_no_kernel_lands_in_the_package(
    tmp_path,
):
    setup = Environment(tmp_path)
    setup.install()
    installed = os.path.join(setup.site, "fastdif")
    assert setup.package() == os.path.join(installed, "__init__.py")
    setup.search()
    assert kernel_files(setup.kernels)
    assert kernel_files(installed) == []

    # The README's second command, in the same environment.
    setup.install("--editable")
    assert setup.package() == str(setup.source / "fastdif" / "__init__.py")
    assert not os.path.exists(installed)  # nothing of the first install left to shadow it
    setup.search()
    assert kernel_files(setup.source / "fastdif") == []


def read_only_runner(setup, package) -> tuple[str, ...]:
    """The command prefix under which ``package`` cannot be written; skips where none can.

    Root writes through permission bits. In a new user namespace that maps no
    user, its capabilities cover no file (they apply to files whose owner the
    namespace maps), so the bits hold; it still owns its files, and writes
    where their owner bits allow (the user cache folder).
    """
    wrapper = ()
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.skip("as root, needs unshare(1) to be refused writing the package")
        wrapper = (unshare, "--user")
    probe = os.path.join(package, "probe")
    code = f"import sys\ntry: open({probe!r}, 'w')\nexcept PermissionError: sys.exit(3)"
    done = subprocess.run(
        [*wrapper, setup.python, "-c", code], env=setup.env, capture_output=True, timeout=60
    )
    if done.returncode != 3:
        pytest.skip(f"cannot make the installed package read-only: {done.stderr[-500:]!r}")
    return wrapper


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.timeout(280)
def test_a_read_only_install_caches_its_kernels_in_the_user_cache_folder(tmp_path):
    setup = Environment(tmp_path)
    setup.install()
    installed = os.path.join(setup.site, "fastdif")
    subprocess.run(["chmod", "-R", "a-w", installed], check=True, timeout=60)
    try:
        wrapper = read_only_runner(setup, installed)
        setup.search(wrapper)
        assert any(name.endswith(".nbi") for name in kernel_files(setup.kernels))
        # A second process loads every kernel it calls from there, and compiles none.
        printed = setup.search(wrapper, NUMBA_DEBUG_CACHE="1")
    finally:
        subprocess.run(["chmod", "-R", "u+w", installed], check=True, timeout=60)
    loaded = [line for line in printed.splitlines() if line.startswith("[cache] data loaded")]
    assert loaded
    assert all(f"from '{setup.kernels}{os.sep}" in line for line in loaded), loaded
    assert "[cache] data saved" not in printed
    assert kernel_files(installed) == []
