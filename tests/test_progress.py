"""fastdif.progress: the bar and the log lines of long runs."""

import sys

from fastdif import progress


def test_progress_lines_count_only_this_runs_rate(monkeypatch, capsys):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    with progress.progress_bar(1000, "Building", "files", True, done=400) as bar:
        assert isinstance(bar, progress.ProgressLines)
        clock[0] += 50
        bar.update(10)  # not a minute yet
        clock[0] += 10
        bar.update(50)  # 60 files in 60 s: 1 file/s, 540 left: 9 min, a 10-minute run
        clock[0] += 60
        bar.update(1)  # 61 in 120 s, 539 left
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "fastdif: Building 460/1,000 files (46%), 1 files/s, 9 min left",
        "fastdif: Building 461/1,000 files (46%), 1 files/s, 18 min left",
    ]


def test_the_bar_shows_the_rate_and_the_time_left(monkeypatch):
    class Terminal:
        text = ""

        def isatty(self):
            return True

        def write(self, text):
            Terminal.text += text

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress.progress_bar(100, "Building", "files", True, done=40) as bar:
        bar.update(10)
        bar.refresh()
    assert "50/100" in Terminal.text and "files/s]" in Terminal.text and "<" in Terminal.text
