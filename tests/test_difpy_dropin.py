"""fastdif as a drop-in for difPy 4.2.1: a difPy user's script, unchanged, runs on
fastdif; and the difPy behaviours it relies on (in_folder, stats after search)."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import images
import pytest

import fastdif
from fastdif.io.store import RepositoryFormatError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A difPy 4.2.1 user's script, written from difPy's README; it runs unchanged
# on both. Only what it writes to OUT (JSON) is compared, never its printing.
USER_SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import sys

    import difPy


    def main(data, out):
        report = {"module": difPy.__name__}

        # Find exact duplicates, then move the lower quality copies away.
        dif = difPy.build(os.path.join(data, "move"))
        search = difPy.search(dif, similarity="duplicates")
        report["result"] = search.result
        report["lower_quality"] = list(search.lower_quality)
        report["stats"] = search.stats
        report["dif_stats"] = dif.stats
        search.move_to(os.path.join(data, "moved"))
        report["lower_quality_after_move"] = list(search.lower_quality)

        # Find similar images and delete the lower quality ones without asking.
        dif = difPy.build(os.path.join(data, "delete"))
        search = difPy.search(dif, similarity="similar")
        report["similar_result"] = search.result
        report["similar_lower_quality"] = list(search.lower_quality)
        search.delete(silent_del=True)

        # Search each folder (with its sub-folders) on its own.
        x, y = os.path.join(data, "split", "x"), os.path.join(data, "split", "y")
        dif = difPy.build(x, y, in_folder=True)
        search = difPy.search(dif)
        report["in_folder_result"] = search.result
        report["in_folder_lower_quality"] = list(search.lower_quality)

        with open(out, "w") as file:
            json.dump(report, file)


    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2])
    """
)

# The keys of difPy 4.2.1's search.stats (read from its _generate_stats):
# None marks a leaf.
DIFPY_STATS_KEYS = {
    "directory": None,
    "total_files": None,
    "invalid_files": {"count": None, "logs": None},
    "process": {
        "build": {
            "duration": {"start": None, "end": None, "seconds_elapsed": None},
            "parameters": {
                "recursive": None,
                "in_folder": None,
                "limit_extensions": None,
                "px_size": None,
                "processes": None,
            },
        },
        "search": {
            "duration": {"start": None, "end": None, "seconds_elapsed": None},
            "parameters": {
                "similarity_mse": None,
                "rotate": None,
                "same_dim": None,
                "processes": None,
                "chunksize": None,
            },
            "files_searched": None,
            "matches_found": {"duplicates": None, "similar": None},
        },
    },
}


def make_data(root):
    """The folders the script works on; returns the groups it should find."""
    p = {}
    p["a"] = images.save_photo(1, root / "move" / "a.png")
    p["a_copy"] = images.copy_bytes(p["a"], root / "move" / "a_copy.png")
    p["b"] = images.save_photo(2, root / "move" / "b.png")
    p["b_copy"] = images.copy_bytes(p["b"], root / "move" / "b_copy.png")
    p["c"] = images.save_photo(3, root / "move" / "c.png")
    (root / "move" / "notes.txt").write_text("not an image")
    p["d"] = images.save_photo(4, root / "delete" / "d.png")
    p["d_jpg"] = images.reencode(p["d"], root / "delete" / "d.jpg", quality=95)
    p["e"] = images.save_photo(5, root / "delete" / "e.png")
    p["f"] = images.save_photo(6, root / "split" / "x" / "f.png")
    p["f_sub"] = images.copy_bytes(p["f"], root / "split" / "x" / "sub" / "f.png")
    p["f_y"] = images.copy_bytes(p["f"], root / "split" / "y" / "f.png")  # other input
    p["g"] = images.save_photo(7, root / "split" / "y" / "g.png")
    return p


def difpy_python() -> str | None:
    """A Python that imports the real difPy 4.2.1, or None.

    ``$FASTDIF_DIFPY_PYTHON`` (CI installs difPy in a virtual environment of
    its own, so it never changes what fastdif is tested with), else this Python
    if it has difPy.
    """
    python = os.environ.get("FASTDIF_DIFPY_PYTHON")
    if python:
        return python
    return sys.executable if importlib.util.find_spec("difPy") is not None else None


def run_script(tmp, shim: bool, python: str = sys.executable) -> tuple[dict, dict, str]:
    """Run USER_SCRIPT on fresh data in ``tmp`` with ``python``: with a ``difPy``
    module that is fastdif (``shim``), or with the real difPy. Returns (report,
    paths, data)."""
    data = tmp / "data"
    paths = make_data(data)
    script = tmp / "user_script.py"
    script.write_text(USER_SCRIPT)
    pythonpath = [REPO]
    if shim:
        # "import difPy" gives fastdif itself: import fastdif as difPy.
        (tmp / "shim").mkdir()
        (tmp / "shim" / "difPy.py").write_text(
            "import sys\n\nimport fastdif\n\nsys.modules[__name__] = fastdif\n"
        )
        pythonpath.insert(0, str(tmp / "shim"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")
    out = tmp / "report.json"
    proc = subprocess.run(
        [python, str(script), str(data), str(out)],
        cwd=tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), paths, str(data)


@pytest.fixture(scope="module")
def fastdif_run(tmp_path_factory):
    return run_script(tmp_path_factory.mktemp("fastdif-run"), shim=True)


def groups_of(result) -> set:
    """A result's groups as frozensets of paths (checking the pairs' shape)."""
    assert isinstance(result, dict)
    out = set()
    for key, members in result.items():
        assert isinstance(key, str) and isinstance(members, list) and members
        for pair in members:
            assert isinstance(pair, list) and len(pair) == 2
            assert isinstance(pair[0], str)
            assert isinstance(pair[1], (int, float)) and not isinstance(pair[1], bool)
        out.add(frozenset([key, *(path for path, _ in members)]))
    return out


def key_tree(stats):
    """``stats``' nested keys as DIFPY_STATS_KEYS writes them (``logs``, keyed by path: a leaf)."""
    return {
        k: key_tree(v) if isinstance(v, dict) and k != "logs" else None for k, v in stats.items()
    }


def restricted(tree, keys):
    """``tree`` with only the keys ``keys`` has, recursively."""
    return {
        k: restricted(tree[k], sub) if sub is not None and tree[k] is not None else None
        for k, sub in keys.items()
        if k in tree
    }


def relative_groups(result, root) -> set:
    """The groups of ``result`` with paths relative to ``root``."""
    return {frozenset(os.path.relpath(p, root) for p in g) for g in groups_of(result)}


def kinds(value, keys):
    """The JSON kind of each leaf of ``value`` under ``keys``: numbers are one kind."""
    if keys is not None:
        return {k: kinds(value[k], sub) for k, sub in keys.items()}
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def check_report(report, paths, data):
    """What the script must have seen and done, on difPy or on fastdif."""
    p = paths
    # Duplicates, moved away.
    assert groups_of(report["result"]) == {
        frozenset([p["a"], p["a_copy"]]),
        frozenset([p["b"], p["b_copy"]]),
    }
    lower = report["lower_quality"]
    assert len(lower) == 2 and all(isinstance(path, str) for path in lower)
    for pair in ({p["a"], p["a_copy"]}, {p["b"], p["b_copy"]}):
        assert len(pair & set(lower)) == 1
    moved_dir = os.path.join(data, "moved")
    moved = sorted(f for f in os.listdir(moved_dir) if f.endswith(".png"))
    assert moved == sorted(os.path.basename(path) for path in lower)
    assert sorted(report["lower_quality_after_move"]) == [os.path.join(moved_dir, f) for f in moved]
    left = sorted(f for f in os.listdir(os.path.join(data, "move")) if f.endswith(".png"))
    assert len(left) == 3 and "c.png" in left  # one of each pair, and the unique image
    # Stats: difPy's keys, in search.stats and (after the search) in dif.stats.
    for stats in (report["stats"], report["dif_stats"]):
        assert restricted(key_tree(stats), DIFPY_STATS_KEYS) == DIFPY_STATS_KEYS
    stats = report["stats"]
    assert stats["total_files"] == 6 and stats["invalid_files"]["count"] == 1
    assert stats["invalid_files"]["logs"] == {
        os.path.join(data, "move", "notes.txt"): "Unsupported file type"
    }
    search = stats["process"]["search"]
    assert search["files_searched"] == 5
    assert search["matches_found"] == {"duplicates": 2, "similar": 0}
    assert search["parameters"]["similarity_mse"] == 0
    assert report["dif_stats"]["process"]["search"] == search
    # Similar images, deleted without asking.
    assert groups_of(report["similar_result"]) == {frozenset([p["d"], p["d_jpg"]])}
    assert len(report["similar_lower_quality"]) == 1
    left = sorted(os.listdir(os.path.join(data, "delete")))
    assert len(left) == 2 and "e.png" in left
    # in_folder: each input with its sub-folders, keyed by the input.
    x = os.path.join(data, "split", "x")
    result = report["in_folder_result"]
    assert list(result) == [x]
    assert groups_of(result[x]) == {frozenset([p["f"], p["f_sub"]])}
    assert len(report["in_folder_lower_quality"]) == 1


def test_a_difpy_script_runs_unchanged_on_fastdif(fastdif_run):
    report, paths, data = fastdif_run
    assert report["module"] == "fastdif"
    check_report(report, paths, data)
    # fastdif's own promises on top of difPy's: keys are never lower quality.
    assert not set(report["lower_quality"]) & set(report["result"])
    assert report["stats"]["process"]["search"]["parameters"]["chunksize"] is None


def test_the_same_script_on_difpy_gives_the_same_shapes(fastdif_run, tmp_path):
    python = difpy_python()
    if python is None:
        if os.environ.get("FASTDIF_REQUIRE_DIFPY"):
            pytest.fail("FASTDIF_REQUIRE_DIFPY is set, and no Python with difPy was found")
        pytest.skip("difPy is not installed: nothing to compare fastdif with (pip install difPy)")
    theirs, paths, data = run_script(tmp_path, shim=False, python=python)
    assert theirs["module"] == "difPy"
    check_report(theirs, paths, data)  # the expectations above are difPy's own
    ours = fastdif_run[0]
    assert key_tree(theirs["stats"]) == DIFPY_STATS_KEYS
    assert kinds(theirs["stats"], DIFPY_STATS_KEYS) == kinds(ours["stats"], DIFPY_STATS_KEYS)
    assert kinds(theirs["dif_stats"], DIFPY_STATS_KEYS) == kinds(
        ours["dif_stats"], DIFPY_STATS_KEYS
    )
    # The same groups, paths relative to each run's data folder.
    for name in ("result", "similar_result"):
        assert relative_groups(theirs[name], data) == relative_groups(ours[name], fastdif_run[2])
    assert [os.path.relpath(k, data) for k in theirs["in_folder_result"]] == [
        os.path.relpath(k, fastdif_run[2]) for k in ours["in_folder_result"]
    ]


# --------------------------------------------------------------------------- in_folder


@pytest.fixture
def tree(tmp_path):
    """x/a.png with a copy in x/sub/, another in y/; y/b.png with a copy in y/deep/sub/."""
    p = {}
    p["xa"] = images.save_photo(30, tmp_path / "x" / "a.png")
    p["x_sub_a"] = images.copy_bytes(p["xa"], tmp_path / "x" / "sub" / "a.png")
    p["ya"] = images.copy_bytes(p["xa"], tmp_path / "y" / "a.png")
    p["yb"] = images.save_photo(31, tmp_path / "y" / "b.png")
    p["y_deep_b"] = images.copy_bytes(p["yb"], tmp_path / "y" / "deep" / "sub" / "b.png")
    return p


def test_in_folder_true_searches_each_input_with_its_sub_folders(tmp_path, tree, find, groups):
    x, y = str(tmp_path / "x"), str(tmp_path / "y")
    se = find(x, y + os.sep, in_folder=True)  # a trailing separator does not show in the key

    assert list(se.result) == [x, y]
    assert groups(se.result[x]) == {frozenset([tree["xa"], tree["x_sub_a"]])}
    assert groups(se.result[y]) == {frozenset([tree["yb"], tree["y_deep_b"]])}
    assert se.in_folder is True and se.repository.in_folder is True
    assert se.stats["process"]["build"]["parameters"]["in_folder"] is True
    # The parent as the one input: one search, like in_folder=False but keyed.
    whole = find(tmp_path, in_folder=True)
    assert list(whole.result) == [str(tmp_path)]
    assert groups(whole.result[str(tmp_path)]) == groups(find(tmp_path).result)


def test_in_folder_subfolders_searches_each_folder_on_its_own(tmp_path, tree, find, groups):
    se = find(tmp_path, in_folder="subfolders")

    assert se.result == {}  # every copy is in another folder
    images.copy_bytes(tree["yb"], tmp_path / "y" / "b2.png")
    se = find(tmp_path, in_folder="subfolders")
    y = str(tmp_path / "y")
    assert list(se.result) == [y]
    assert groups(se.result[y]) == {frozenset([tree["yb"], str(tmp_path / "y" / "b2.png")])}
    assert se.in_folder is True and se.repository.in_folder == "subfolders"
    assert se.stats["process"]["build"]["parameters"]["in_folder"] == "subfolders"
    assert json.loads(json.dumps(se.stats)) == se.stats


def test_in_folder_true_a_file_given_alone_is_a_group_of_its_own(
    tmp_path, tree, find, groups, monkeypatch
):
    # As in difPy: files given one by one are never compared...
    assert find(tree["xa"], tree["ya"], in_folder=True).result == {}
    assert find(tree["xa"], tree["ya"]).result != {}
    se = find(tree["ya"], str(tmp_path / "x"), in_folder=True)
    assert groups(se.result) == {frozenset([tree["xa"], tree["x_sub_a"]])}
    assert se.stats["process"]["search"]["files_searched"] == 3
    # ...but a file inside a folder also given is searched with that folder,
    # under the folder's name, even when its path sorts first.
    monkeypatch.chdir(tmp_path)
    deep_b = os.path.join(".", "y", "deep", "sub", "b.png")
    se = find(deep_b, "y", in_folder=True)
    assert list(se.result) == ["y"]
    assert groups(se.result["y"]) == {frozenset([os.path.join("y", "b.png"), deep_b])}
    assert len(se.repository.groups) == 1
    # Without recursion only a file directly in the folder joins it.
    assert find(deep_b, "y", in_folder=True, recursive=False).result == {}
    b3 = images.copy_bytes(tree["yb"], tmp_path / "y" / "b3.png")
    b_spelled = os.path.join(".", "y", "b.png")
    se = find(b_spelled, "y", in_folder=True, recursive=False)
    assert groups(se.result["y"]) == {frozenset([b_spelled, os.path.join("y", "b3.png")])}
    assert os.path.samefile(b3, os.path.join("y", "b3.png"))


def test_in_folder_true_a_folder_given_inside_another_joins_it(tmp_path, tree, find, groups):
    x = str(tmp_path / "x")
    se = find(tmp_path, x, in_folder=True)
    # Each file once, in the outer input's group, which holds every pair.
    assert list(se.result) == [str(tmp_path)]
    assert groups(se.result[str(tmp_path)]) == groups(find(tmp_path).result)
    assert se.stats["process"]["search"]["files_searched"] == 5
    # Without recursion the inner folder is not part of the outer one's search.
    images.copy_bytes(tree["xa"], tmp_path / "top.png")
    flat = find(tmp_path, x, in_folder=True, recursive=False)
    assert list(flat.result) == [] and len(flat.repository.groups) == 2
    images.copy_bytes(tree["xa"], tmp_path / "x" / "a2.png")
    flat = find(tmp_path, x, in_folder=True, recursive=False)
    assert list(flat.result) == [x]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("false", ValueError),
        ("Subfolders", ValueError),
        ("", ValueError),
        (1, TypeError),
        (None, TypeError),
    ],
)
def test_in_folder_rejects_other_values_naming_the_allowed_ones(tmp_path, tree, value, error):
    with pytest.raises(error, match=r'"in_folder" parameter: must be True, False or "subfolders"'):
        fastdif.build(tmp_path, in_folder=value, show_progress=False, processes=1)


@pytest.mark.parametrize("in_folder", [True, "subfolders"])
def test_a_saved_repository_keeps_its_in_folder_mode(tmp_path, tree, build, search, in_folder):
    images.copy_bytes(tree["yb"], tmp_path / "y" / "b2.png")
    dif = build(tmp_path, in_folder=in_folder)
    loaded = fastdif.load(dif.save(tmp_path / "saved.fastdif"))

    assert loaded.in_folder == in_folder and type(loaded.in_folder) is type(in_folder)
    assert loaded.groups == dif.groups and loaded.folders == dif.folders
    assert search(loaded).result == search(dif).result != {}


def test_a_saved_in_folder_value_is_checked(tmp_path, tree, build):
    target = build(tmp_path / "x", in_folder=True).save(tmp_path / "saved.fastdif")
    meta_file = os.path.join(target, "repository.json")
    meta = json.loads(open(meta_file).read())
    assert meta["in_folder"] is True  # as fastdif wrote it before "subfolders" existed
    for value, loads_as in ((False, False), (True, True), ("subfolders", "subfolders")):
        meta["in_folder"] = value
        with open(meta_file, "w") as out:
            json.dump(meta, out)
        assert fastdif.load(target).in_folder == loads_as
    meta["in_folder"] = "sometimes"
    with open(meta_file, "w") as out:
        json.dump(meta, out)
    with pytest.raises(RepositoryFormatError, match="in_folder"):
        fastdif.load(target)


# --------------------------------------------------------------------------- stats


def test_search_adds_its_entry_to_the_build_stats(tmp_path, tree, build, search):
    dif = build(tmp_path)
    assert "search" not in dif.stats["process"]

    first = search(dif, similarity="duplicates")
    assert dif.stats["process"]["search"] == first.stats["process"]["search"]
    assert dif.stats["process"]["build"] is first.stats["process"]["build"]

    second = search(dif, similarity="similar", rotate=False)
    assert dif.stats["process"]["search"] == second.stats["process"]["search"]
    # Each search result keeps its own entry.
    assert first.stats["process"]["search"]["parameters"]["similarity_mse"] == 0.0
    assert second.stats["process"]["search"]["parameters"]["similarity_mse"] == 5.0
    json.dumps(dif.stats)
