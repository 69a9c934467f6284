"""Progress on stderr: a bar on a terminal, occasional lines in a log, nothing when not wanted."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from tqdm import tqdm

#: When stderr is not a terminal, a run expected (elapsed + time left) to
#: take longer than this many seconds writes one progress line ...
LOG_AFTER = 600.0
#: ... at most every this many seconds.
LOG_EVERY = 60.0


@contextmanager
def progress_bar(total: int, description: str, unit: str, show: bool, done: int = 0):
    """Progress of ``total`` items, ``done`` of them already done; yields an object with ``update``.

    On a terminal (stderr), a tqdm bar with the rate (``unit``/s) and the
    time left; elsewhere (a log file, a pipe), for long runs only, a line
    such as ``fastdif: Building 120,000/1,000,000 files (12%), 410 files/s,
    36 min left`` every :data:`LOG_EVERY` seconds; nothing unless ``show``.
    The rate counts only the items done in this run.
    """
    if show and total > 0 and not sys.stderr.isatty():
        yield ProgressLines(total, description, unit, done)
        return
    enabled = show and total > 0
    with tqdm(
        total=total, initial=done, desc=description, unit=unit, disable=not enabled, leave=False
    ) as bar:
        yield bar


class ProgressLines:
    """Progress as one line a while on stderr, for runs long enough to want it in a log."""

    def __init__(self, total: int, description: str, unit: str, done: int = 0):
        self.total, self.description, self.unit = total, description, unit
        self.n = self.first = done
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done; write a line if one is due."""
        self.n += n
        now = time.monotonic()
        if now - self.last < LOG_EVERY:
            return
        elapsed = now - self.start
        rate = (self.n - self.first) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.n) / rate if rate > 0 else float("inf")
        if elapsed + left < LOG_AFTER:
            return
        self.last = now
        print(
            f"fastdif: {self.description} {self.n:,}/{self.total:,} {self.unit} "
            f"({self.n / self.total:.0%}), {rate:,.0f} {self.unit}/s, {_duration(left)} left",
            file=sys.stderr,
            flush=True,
        )


def _duration(seconds: float) -> str:
    """``seconds`` as people read it: "45 s", "36 min", "2 h 05 min", "unknown"."""
    if seconds == float("inf"):
        return "unknown time"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"
