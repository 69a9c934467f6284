"""Progress bars on stderr that turn themselves off when not wanted."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(total: int, description: str, unit: str, show: bool):
    """A tqdm bar shown only when ``show`` is true and stderr is a terminal."""
    enabled = show and total > 0 and sys.stderr.isatty()
    with tqdm(total=total, desc=description, unit=unit, disable=not enabled, leave=False) as bar:
        yield bar
