"""fastdif side by side with difPy 4.2.1 on the same generated photo sets.

    python -m benchmarks.scripts.compare_difpy --images 1000 6000

For each size, the set made by :func:`benchmarks.data.photos.dataset` (n files,
n / 2 of them duplicates; generated into the cache folder if missing) is read
once to warm the page cache, then each run goes in its own fresh interpreter:

1. ``difpy``: ``difPy.build`` + ``difPy.search``;
2. ``fastdif-cold``: fastdif with an empty ``NUMBA_CACHE_DIR`` (kernels are
   compiled in the search phase, as on a first run);
3. ``fastdif-warm``: the same again, the kernels now loaded from that cache.

Same settings for both tools: similarity "similar" (MSE 5; ``--similarity
duplicates`` for difPy's default, MSE 0), rotate on,
same_dim on, px_size 50, all cores, show_progress off (and no thumbnail cache
for fastdif). Per run it reports:

- build, search, and their sum (seconds, timed in the child around each
  call); end to end: the child process from start to exit (interpreter
  start, imports, build, search), timed by this process; for fastdif also
  "search again": a second identical search in the same process, which
  shows the search without loading or compiling the kernels (it runs after
  the figures above and is taken out of the end-to-end and CPU figures);
- ratios fastdif/difPy of each (below 1: fastdif is faster);
- CPU seconds of the child and all its workers (user + system), which other
  programs' load on the machine does not inflate as it does wall times;
- ``peak_rss_max_process``: the ``ru_maxrss`` that ``os.wait4`` reports for
  the child, the same figure ``resource.getrusage(RUSAGE_CHILDREN)`` gives
  after it exits: the largest peak RSS of any one process in its tree (the
  child or one of its pool workers, all of which it waits for), not a sum;
- ``peak_pss_tree``: the largest sum of PSS (proportional set size, so pages
  that forked workers share are counted once) over the child and all its
  descendants, sampled every 0.1 s from ``/proc``, overall and per phase;
  short peaks between samples can be missed;
- truth pairs found (an original and its copy in one group: a key and its
  members), per duplicate kind, and false pairs (two files grouped together
  that are not copies of one picture by the truth).

Prints a Markdown table and writes the figures to
``<cache folder>/compare_difpy.json`` (``--json`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

SETTINGS = {
    "similarity": "similar",
    "rotate": True,
    "same_dim": True,
    "px_size": 50,
    "show_progress": False,
}

RUNS = ("difpy", "fastdif-cold", "fastdif-warm")

SAMPLE_INTERVAL_S = 0.1


# --- the child: one tool, one build and one search -------------------------


def child(tool: str, folder: str, processes: int, out: str, similarity: str) -> None:
    """Build and search ``folder`` with ``tool``; write timings and groups to ``out``.

    Runs in a fresh interpreter; the tool is imported here, so its import
    time falls in the end-to-end figure and not in build or search.
    """
    import resource

    marks = {"start": time.time()}
    begin = time.perf_counter()
    if tool == "difpy":
        import difPy as module
    else:
        import fastdif as module
    imported = time.perf_counter()
    marks["build"] = time.time()
    dif = module.build(
        folder,
        px_size=SETTINGS["px_size"],
        show_progress=SETTINGS["show_progress"],
        processes=processes,
    )
    built = time.perf_counter()
    marks["search"] = time.time()
    options = {key: SETTINGS[key] for key in ("rotate", "same_dim", "show_progress")}
    se = module.search(dif, similarity=similarity, processes=processes, **options)
    searched = time.perf_counter()
    marks["end"] = time.time()
    again = cpu_again = None
    if tool == "fastdif":
        cpu = _cpu_seconds(resource.RUSAGE_SELF)
        # The first search in a process also loads (or compiles) the kernels;
        # a second one shows the search alone. Not done for difPy: its first
        # search has nothing to load, and a repeat would double its long run.
        module.search(dif, similarity=similarity, processes=processes, **options)
        again = time.perf_counter() - searched
        cpu_again = _cpu_seconds(resource.RUSAGE_SELF) - cpu
    from benchmarks.data.truth import group_names  # after the timings: not in the figures

    record = {
        "import_s": imported - begin,
        "build_s": built - imported,
        "search_s": searched - built,
        "search_again_s": again,
        "search_again_cpu_s": cpu_again,
        "marks": marks,
        "version": _version(tool),
        "invalid_files": int(dif.stats["invalid_files"]["count"]),
        "total_files": int(dif.stats["total_files"]),
        "groups": group_names(se.result),
        "maxrss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    with open(out, "w") as f:
        json.dump(record, f)


def _cpu_seconds(who: int) -> float:
    import resource

    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _version(tool: str) -> str:
    from importlib.metadata import version

    return version("difPy" if tool == "difpy" else "fastdif")


# --- the parent: run children, sample memory, score, report -----------------


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, from a scan of ``/proc``."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, ()))
    return tree


def _pss_bytes(pid: int) -> int:
    """Proportional set size of ``pid`` (RSS where smaps_rollup is missing); 0 if gone."""
    for path, field in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(field):
                        return int(line.split()[1]) * 1024
        except OSError:
            continue
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed PSS of a process tree until stopped."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = sum(_pss_bytes(pid) for pid in _descendants(self.root))
            self.samples.append((time.time(), total))
            self.done.wait(SAMPLE_INTERVAL_S)

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        """Largest sample taken between ``start`` and ``end`` (seconds since the epoch)."""
        return max((total for t, total in self.samples if start <= t <= end), default=0)


def run_child(
    tool: str, folder: str, processes: int, env: dict, workdir: str, similarity: str = "similar"
) -> dict:
    """Run one tool in a fresh interpreter; return its figures (times, memory, groups)."""
    out = os.path.join(workdir, f"{tool}.json")
    command = [sys.executable, "-m", "benchmarks.scripts.compare_difpy", "--child", tool, folder]
    command += ["--processes", str(processes), "--json", out, "--similarity", similarity]
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))  # the repository
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=root)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    # wait4 gives this child's own resource usage (with its waited-for
    # workers'), where getrusage(RUSAGE_CHILDREN) would mix in earlier runs.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed with exit status {proc.returncode}")
    with open(out) as f:
        record = json.load(f)
    marks = record.pop("marks")
    # The repeated search (fastdif only) is not part of the end-to-end run.
    record.update(
        end_to_end_s=seconds - (record["search_again_s"] or 0.0),
        cpu_s=usage.ru_utime + usage.ru_stime - (record["search_again_cpu_s"] or 0.0),
        peak_rss_max_process=usage.ru_maxrss * 1024,
        peak_pss_tree=sampler.peak(0.0, marks["end"]),
        peak_pss_tree_build=sampler.peak(marks["build"], marks["search"]),
        peak_pss_tree_search=sampler.peak(marks["search"], marks["end"]),
    )
    record["total_s"] = record["build_s"] + record["search_s"]
    return record


def compare(n: int, processes: int, runs: tuple[str, ...], similarity: str = "similar") -> dict:
    """All runs on the set of ``n`` images; return their figures, scored against the truth."""
    from benchmarks.data.photos import dataset
    from benchmarks.data.truth import image_files, load_truth, score
    from benchmarks.timing import warm_page_cache

    folder = dataset(n)
    truth = load_truth(folder)
    warm_page_cache(image_files(folder))
    figures: dict = {"images": n, "folder": folder, "similarity": similarity, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="fastdif-compare-") as workdir:
        numba_cache = os.path.join(workdir, "numba-cache")
        env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache}
        for name in runs:
            tool = "difpy" if name == "difpy" else "fastdif"
            print(f"[{n} images] {name} ...", file=sys.stderr, flush=True)
            record = run_child(tool, folder, processes, env, workdir, similarity)
            groups = record.pop("groups")
            record.update(score(groups, truth))
            figures["runs"][name] = record
            print(
                f"[{n} images] {name}: build {record['build_s']:.2f} s, "
                f"search {record['search_s']:.2f} s, end to end {record['end_to_end_s']:.2f} s, "
                f"{record['pairs_found']}/{record['pairs_total']} truth pairs",
                file=sys.stderr,
                flush=True,
            )
    difpy = figures["runs"].get("difpy")
    if difpy:
        for name, record in figures["runs"].items():
            if name != "difpy":
                ratios = {
                    key: record[key] / difpy[key] if difpy[key] else None
                    for key in ("build_s", "search_s", "total_s", "end_to_end_s", "cpu_s")
                }
                if record.get("search_again_s") is not None and difpy["search_s"]:
                    # against difPy's one search: it has no kernels to load
                    ratios["search_again_s"] = record["search_again_s"] / difpy["search_s"]
                record["ratio_to_difpy"] = ratios
    return figures


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _mib(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def _ratio(record: dict, key: str) -> str:
    ratio = record.get("ratio_to_difpy", {}).get(key)
    if ratio is None:
        return ""
    if ratio <= 1:
        return f" ({ratio:.3g}; {1 / ratio:,.3g}x faster)"
    return f" ({ratio:.3g}; {ratio:,.3g}x slower)"


def markdown(results: list[dict]) -> str:
    """The figures as a Markdown table (ratios fastdif/difPy in brackets)."""
    lines = [
        "| images | run | build s | search s | search again s | build + search s "
        "| end to end s | CPU s "
        "| peak RSS, largest process MiB | peak PSS, process tree MiB (build / search) "
        "| truth pairs found | false pairs |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for figures in results:
        for name, r in figures["runs"].items():
            lines.append(
                f"| {figures['images']:,} | {name} "
                f"| {r['build_s']:.2f}{_ratio(r, 'build_s')} "
                f"| {r['search_s']:.3f}{_ratio(r, 'search_s')} "
                f"| {_seconds(r.get('search_again_s'))}{_ratio(r, 'search_again_s')} "
                f"| {r['total_s']:.2f}{_ratio(r, 'total_s')} "
                f"| {r['end_to_end_s']:.2f}{_ratio(r, 'end_to_end_s')} "
                f"| {r['cpu_s']:.1f}{_ratio(r, 'cpu_s')} "
                f"| {_mib(r['peak_rss_max_process'])} "
                f"| {_mib(r['peak_pss_tree'])} ({_mib(r['peak_pss_tree_build'])} / "
                f"{_mib(r['peak_pss_tree_search'])}) "
                f"| {r['pairs_found']:,} / {r['pairs_total']:,} | {r['false_pairs']:,} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; run the comparison (or, with ``--child``, one tool)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 6000])
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument(
        "--similarity",
        choices=("duplicates", "similar"),
        default=SETTINGS["similarity"],
        help='both tools\' similarity (default "similar"; difPy\'s own default is "duplicates")',
    )
    parser.add_argument("--json", help="output file (default: in the cache folder)")
    parser.add_argument("--table", metavar="JSON", help="print the table of an earlier run")
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.processes, args.json, args.similarity)
        return
    if args.table:
        with open(args.table) as f:
            print(markdown(json.load(f)["results"]))
        return

    from benchmarks.data.cache import cache_folder

    started = time.time()
    load_before = os.getloadavg()
    results = [compare(n, args.processes, tuple(args.runs), args.similarity) for n in args.images]
    report = {
        "settings": {**SETTINGS, "similarity": args.similarity, "processes": args.processes},
        "machine": {
            "cpu_count": os.cpu_count(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "python": sys.version.split()[0],
        "seconds": time.time() - started,
        "results": results,
    }
    path = args.json or os.path.join(cache_folder(), "compare_difpy.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(markdown(results))
    print(f"\nFigures written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
