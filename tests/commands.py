"""Running the command line in a new interpreter, for the tests that need a whole process."""

import subprocess
import sys


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "fastdif", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
