"""Decision files: pairs marked "not a duplicate" are never grouped, groups marked done hide.

Covers the file format (round trip, versions, bad files, atomic writes that
never replace another file), identities by content (surviving renames and
moves), the rule for files marked distinct but linked through a third
(:func:`fastdif.engine.grouping.drop_distinct`), done groups, the command
line, library searches and the report's data.
"""

import hashlib
import json
import os
import shutil

import images
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastdif
from fastdif.cli import main
from fastdif.engine.grouping import connected_groups, drop_distinct
from fastdif.engine.matching import unit_mse
from fastdif.io import decisions
from fastdif.model import Criteria
from fastdif.report import report_data


def _build(*paths, **kwargs):
    return fastdif.build(*paths, show_progress=False, processes=1, **kwargs)


def _search(dif, **kwargs):
    kwargs.setdefault("similarity", "similar")
    return fastdif.search(dif, show_progress=False, processes=1, **kwargs)


def _groups(se):
    """Each group as a set of base names, key included."""
    return sorted(
        sorted(os.path.basename(p) for p in [key, *(m for m, _ in members)])
        for key, members in se.result.items()
    )


@pytest.fixture
def pics(tmp_path):
    """Three groups: twins (byte copies), trio (a photo and two JPEG re-encodes
    that all match each other), pair (a photo and a resized copy); one lone photo."""
    folder = tmp_path / "pics"
    twin = images.save_photo(1, folder / "twin_a.png")
    images.copy_bytes(twin, folder / "twin_b.png")
    z = images.save_photo(2, folder / "trio_z.png")
    images.reencode(z, folder / "trio_x.jpg", 95)
    images.reencode(z, folder / "trio_b.jpg", 70)
    pair = images.save_photo(3, folder / "pair.png", 200, 150)
    images.reencode(pair, folder / "pair_copy.jpg", 90)
    images.save_photo(4, folder / "lone.png")
    return folder


def _write(tmp_path, *marks):
    """A decision file of ``(kind, [paths])`` marks."""
    document = decisions.empty()
    for kind, paths in marks:
        document = decisions.mark(document, kind, paths)
    return decisions.write(tmp_path / "decisions.json", document)


ALL = [
    ["pair.png", "pair_copy.jpg"],
    ["trio_b.jpg", "trio_x.jpg", "trio_z.png"],
    ["twin_a.png", "twin_b.png"],
]


# ---------------------------------------------------------------- the file format


def test_round_trip_and_what_the_file_holds(pics, tmp_path):
    path = _write(
        tmp_path,
        ("distinct", [pics / "trio_z.png", pics / "trio_b.jpg"]),
        ("done", [pics / "twin_a.png", pics / "twin_b.png"]),
    )
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    assert raw["format"] == "fastdif-decisions" and raw["version"] == 1
    first = raw["distinct"][0]["files"][0]
    assert first["path"] == str(pics / "trio_z.png")
    assert first["sha256"] == hashlib.sha256((pics / "trio_z.png").read_bytes()).hexdigest()
    assert len(raw["done"][0]["files"]) == 2
    assert decisions.read(path) == raw
    # Written again over itself (a decision file is replaced), with nothing left beside it.
    raw["note"] = "kept as it is"
    assert decisions.write(path, raw) == str(path)
    assert decisions.read(path)["note"] == "kept as it is"
    assert sorted(os.listdir(tmp_path)) == ["decisions.json", "pics"]


def test_write_never_replaces_another_file(pics, tmp_path):
    photo = tmp_path / "photo.png"
    shutil.copy(pics / "lone.png", photo)
    before = photo.read_bytes()
    with pytest.raises(FileExistsError, match="not a fastdif decisions file"):
        decisions.write(photo, decisions.empty())
    assert photo.read_bytes() == before
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**decisions.empty(), "version": 2}))
    with pytest.raises(FileExistsError):
        decisions.write(newer, decisions.empty())
    assert json.loads(newer.read_text())["version"] == 2
    with pytest.raises(ValueError, match="distinct"):
        decisions.write(tmp_path / "new.json", {**decisions.empty(), "distinct": "x"})
    assert not (tmp_path / "new.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["newer.json", "photo.png", "pics"]


H = "0" * 64


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not text", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[]", '"format" must be "fastdif-decisions"'),
        (b'{"format": "fastdif-repository", "version": 1}', "not a fastdif decisions file"),
        (json.dumps({**decisions.empty(), "version": 2}).encode(), "newer fastdif \\(version 2\\)"),
        (json.dumps({**decisions.empty(), "version": "1"}).encode(), '"version" must be'),
        (json.dumps({**decisions.empty(), "version": True}).encode(), '"version" must be'),
        (json.dumps({**decisions.empty(), "done": None}).encode(), '"done" must be a list'),
        (
            json.dumps(
                {**decisions.empty(), "distinct": [{"files": [{"sha256": H, "path": "a"}]}]}
            ).encode(),
            "distinct\\[0\\] must be an object whose files list has 2 or more",
        ),
        (
            json.dumps(
                {**decisions.empty(), "done": [{"files": [{"sha256": "ABC", "path": "a"}]}]}
            ).encode(),
            "done\\[0\\].files\\[0\\].sha256 must be 64 lowercase hex digits",
        ),
        (
            json.dumps({**decisions.empty(), "done": [{"files": [{"sha256": H}]}]}).encode(),
            "done\\[0\\].files\\[0\\].path must be a string",
        ),
    ],
)
def test_bad_files_are_rejected_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as caught:
        decisions.read(path)
    assert str(path) in str(caught.value)


def test_search_rejects_bad_decisions_naming_them(pics, tmp_path):
    dif = _build(pics)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        _search(dif, decisions=tmp_path / "missing" / "nope.json")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        _search(dif, decisions=tmp_path)
    with pytest.raises(TypeError, match='"decisions" parameter'):
        _search(dif, decisions=3)
    with pytest.raises(ValueError, match="newer fastdif"):
        _search(dif, decisions={**decisions.empty(), "version": 9})
    with pytest.raises(TypeError, match='"show_done"'):
        _search(dif, show_done="yes")


# ---------------------------------------------------------------- distinct


def test_without_decisions_nothing_changes(pics, tmp_path):
    dif = _build(pics)
    se = _search(dif)
    assert _groups(se) == ALL
    assert "decisions" not in se.stats["process"]["search"]
    path = _write(tmp_path)
    assert _groups(_search(dif, decisions=path)) == ALL


def test_a_pair_marked_distinct_is_never_grouped(pics, tmp_path):
    dif = _build(pics)
    path = _write(tmp_path, ("distinct", [pics / "pair.png", pics / "pair_copy.jpg"]))
    se = _search(dif, decisions=path)
    assert _groups(se) == ALL[1:]
    used = se.stats["process"]["search"]["decisions"]
    assert used["file"] == os.path.abspath(path)
    assert used["pairs_dropped"] == 1 and used["groups_hidden"] == 0
    # Only group members are hashed, never the lone photo.
    assert used["files_hashed"] == 7 and used["files_unreadable"] == 0
    json.dumps(se.stats)  # plain data


def test_files_linked_through_a_third_are_separated_by_the_closest_match(pics, tmp_path):
    dif = _build(pics)
    z, b, x = (dif.paths.index(str(pics / n)) for n in ("trio_z.png", "trio_b.jpg", "trio_x.jpg"))
    mse = unit_mse(dif.tensors, np.arange(len(dif)), Criteria(5.0))
    to_z, to_b = mse(np.array([x, x]), np.array([z, b])).tolist()
    assert 0 < to_z < to_b  # x (quality 95) is closer to z than b (quality 70) is
    path = _write(tmp_path, ("distinct", [pics / "trio_z.png", pics / "trio_b.jpg"]))
    se = _search(dif, decisions=path)
    # z-x is joined first; x-b and z-b would put z and b together, and are
    # dropped. In path order (b, x, z) b-x would come first: the rule is by MSE.
    assert _groups(se) == [ALL[0], ["trio_x.jpg", "trio_z.png"], ALL[2]]
    assert se.stats["process"]["search"]["decisions"]["pairs_dropped"] == 2
    assert _groups(_search(dif, decisions=path)) == _groups(se)  # deterministic
    # Marked the other way round, x stays with z all the same.
    path = _write(tmp_path, ("distinct", [pics / "trio_b.jpg", pics / "trio_z.png"]))
    assert _groups(_search(dif, decisions=path)) == _groups(se)


def test_a_group_all_marked_distinct_disappears(pics, tmp_path):
    dif = _build(pics)
    trio = [pics / "trio_z.png", pics / "trio_b.jpg", pics / "trio_x.jpg"]
    se = _search(dif, decisions=_write(tmp_path, ("distinct", trio)))
    assert _groups(se) == [ALL[0], ALL[2]]
    assert str(pics / "trio_x.jpg") not in se.lower_quality
    assert se.stats["process"]["search"]["matches_found"] == {"duplicates": 1, "similar": 1}


def test_byte_copies_marked_distinct_are_never_grouped_with_each_other(pics, tmp_path):
    # One hash for both: the mark is on the content, so a third copy,
    # anywhere, is not grouped with them either.
    images.copy_bytes(pics / "twin_a.png", pics / "sub" / "twin_c.png")
    dif = _build(pics)
    assert _groups(_search(dif))[2] == ["twin_a.png", "twin_b.png", "twin_c.png"]
    path = _write(tmp_path, ("distinct", [pics / "twin_a.png", pics / "twin_b.png"]))
    assert _groups(_search(dif, decisions=path)) == ALL[:2]


def test_an_identity_survives_a_rename_and_a_move(pics, tmp_path):
    path = _write(
        tmp_path,
        ("distinct", [pics / "pair.png", pics / "pair_copy.jpg"]),
        ("done", [pics / "twin_a.png", pics / "twin_b.png"]),
    )
    os.rename(pics / "pair.png", pics / "renamed.png")
    os.makedirs(pics / "elsewhere")
    os.rename(pics / "pair_copy.jpg", pics / "elsewhere" / "moved.jpg")
    os.rename(pics / "twin_b.png", pics / "elsewhere" / "twin_moved.png")
    dif = _build(pics)
    assert len(_search(dif).result) == 3  # they still match
    assert _groups(_search(dif, decisions=path)) == [ALL[1]]


def test_a_file_changed_since_it_was_marked_is_another_file(pics, tmp_path):
    path = _write(tmp_path, ("distinct", [pics / "pair.png", pics / "pair_copy.jpg"]))
    images.reencode(pics / "pair.png", pics / "pair_copy.jpg", 91)  # new bytes, same picture
    assert _groups(_search(_build(pics), decisions=path)) == ALL


# ---------------------------------------------------------------- done


def test_done_groups_are_hidden_and_shown_on_request(pics, tmp_path):
    dif = _build(pics)
    path = _write(tmp_path, ("done", [pics / "twin_a.png", pics / "twin_b.png"]))
    se = _search(dif, decisions=path)
    assert _groups(se) == ALL[:2]
    used = se.stats["process"]["search"]["decisions"]
    assert used["groups_hidden"] == 1 and used["pairs_dropped"] == 0 and not used["show_done"]
    shown = _search(dif, decisions=path, show_done=True)
    assert _groups(shown) == ALL
    used = shown.stats["process"]["search"]["decisions"]
    assert used["groups_hidden"] == 0 and used["done_groups_shown"] == 1 and used["show_done"]
    assert shown.decisions.done_keys == [k for k in shown.result if "twin" in k]


def test_a_done_group_that_gains_a_file_shows_again(pics, tmp_path):
    path = _write(tmp_path, ("done", [pics / "twin_a.png", pics / "twin_b.png"]))
    images.copy_bytes(pics / "pair.png", pics / "pair_again.png")
    images.save(images.photo(1)[:, ::-1].copy(), pics / "twin_mirror.png")  # no match
    os.remove(pics / "twin_b.png")
    images.copy_bytes(pics / "twin_a.png", pics / "twin_new.png")
    # twin_new has twin_a's bytes: still the group marked done.
    assert _groups(_search(_build(pics), decisions=path)) == [
        ["pair.png", "pair_again.png", "pair_copy.jpg"],
        ALL[1],
    ]
    images.reencode(pics / "twin_a.png", pics / "twin_reencoded.jpg", 95)
    groups = _groups(_search(_build(pics), decisions=path))
    assert ["twin_a.png", "twin_new.png", "twin_reencoded.jpg"] in groups


# ---------------------------------------------------------------- with a library


def test_decisions_apply_to_library_searches(tmp_path):
    library, new = tmp_path / "library", tmp_path / "new"
    one = images.save_photo(5, library / "one.png")
    two = images.save_photo(6, library / "two.png")
    images.copy_bytes(one, new / "one_copy.png")
    images.copy_bytes(two, new / "two_copy.png")
    images.reencode(two, new / "two_reencoded.jpg", 90)
    dif = _build(new, reference=library)
    assert _groups(_search(dif)) == [
        ["one.png", "one_copy.png"],
        ["two.png", "two_copy.png", "two_reencoded.jpg"],
    ]
    path = _write(
        tmp_path,
        ("done", [one, new / "one_copy.png"]),
        ("distinct", [two, new / "two_reencoded.jpg"]),
    )
    se = _search(dif, decisions=path)
    # two_reencoded matches two_copy (new against new) and the library's two:
    # joined to neither while two_copy is with two.
    assert _groups(se) == [["two.png", "two_copy.png"]]
    assert list(se.result) == [two]
    used = se.stats["process"]["search"]["decisions"]
    assert used["groups_hidden"] == 1 and used["pairs_dropped"] == 2
    assert _groups(_search(dif, decisions=path, show_done=True))[0] == ["one.png", "one_copy.png"]


# ---------------------------------------------------------------- the engine's rule


def _mse_of(values):
    return lambda left, right: np.array(
        [values[(min(a, b), max(a, b))] for a, b in zip(left, right, strict=True)]
    )


def test_drop_distinct_joins_closest_first_and_leaves_other_components_alone():
    # 0 - 1 - 2 (0 and 2 distinct, no direct pair), and 3 - 4 unmarked.
    i, j = np.array([0, 1, 3]), np.array([1, 2, 4])
    labels = np.array([10, -1, 12, 10, -1])
    distinct = {10: {0: 1}, 12: {0: 1}}  # one entry, number 0, holds 10 and 12
    keep = drop_distinct(5, i, j, labels, distinct, _mse_of({(0, 1): 2.0, (1, 2): 1.0}))
    assert keep.tolist() == [False, True, True]  # 1 - 2 is closer: 1 goes with 2
    keep = drop_distinct(5, i, j, labels, distinct, _mse_of({(0, 1): 1.0, (1, 2): 1.0}))
    assert keep.tolist() == [True, False, True]  # a tie: the lower image numbers first
    # Identity 10 is also image 3's: 3 - 4 holds no conflict and is kept.
    calls = []

    def never(left, right):
        calls.append(1)
        return np.zeros(left.size)

    assert drop_distinct(5, i, j, labels, {}, never).all()
    assert drop_distinct(5, i[2:], j[2:], labels, distinct, never).all() and not calls


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=25),
    st.lists(st.integers(-1, 3), min_size=10, max_size=10),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=4),
    st.randoms(use_true_random=False),
)
def test_drop_distinct_properties(edges, labels, marked, rng):
    edges = sorted({(min(a, b), max(a, b)) for a, b in edges if a != b})
    i = np.array([a for a, _ in edges], dtype=np.int64)
    j = np.array([b for _, b in edges], dtype=np.int64)
    labels = np.array(labels, dtype=np.int64)
    conflicts, entries = {}, {}
    for n, (x, y) in enumerate(marked):
        conflicts.setdefault(x, set()).add(y)
        conflicts.setdefault(y, set()).add(x)
        for z in (x, y):  # entry n holds x and y: z twice when x == y
            entries.setdefault(z, {})[n] = entries.get(z, {}).get(n, 0) + 1
    values = {e: float(rng.choice([0.0, 1.0, 2.5])) for e in edges}
    keep = drop_distinct(10, i, j, labels, entries, _mse_of(values))

    def clash(members):
        return any(
            int(labels[b]) in conflicts.get(int(labels[a]), set())
            for n, a in enumerate(members)
            for b in members[n + 1 :]
        )

    after = connected_groups(10, i[keep], j[keep])
    assert not any(clash(g) for g in after)  # no group holds two files marked distinct
    for group in connected_groups(10, i, j):
        if not clash(group):
            assert group in after  # untouched where nothing is marked
    where = {m: n for n, g in enumerate(after) for m in g}
    for e in np.flatnonzero(~keep):
        # A pair is dropped only if joining it would bring two marked files together.
        a, b = int(i[e]), int(j[e])
        assert where.get(a, -1 - a) != where.get(b, -1 - b)
        joined = sorted({m for m in where if where[m] in (where.get(a), where.get(b))} | {a, b})
        assert clash(joined)
    # The order the pairs come in does not matter.
    order = list(range(len(edges)))
    rng.shuffle(order)
    shuffled = drop_distinct(10, i[order], j[order], labels, entries, _mse_of(values))
    assert connected_groups(10, i[order][shuffled], j[order][shuffled]) == after


# ---------------------------------------------------------------- command line and report


def test_command_line_flags(pics, tmp_path, capsys):
    path = _write(
        tmp_path,
        ("distinct", [pics / "pair.png", pics / "pair_copy.jpg"]),
        ("done", [pics / "twin_a.png", pics / "twin_b.png"]),
    )
    out = tmp_path / "out"
    common = [str(pics), "-s", "similar", "-p", "false", "-proc", "1", "--no-cache"]
    assert main([*common, "-Z", str(out), "--decisions", str(path)]) == 0
    assert "decisions: 1 pairs dropped, 1 done groups hidden" in capsys.readouterr().out
    (results,) = [f for f in os.listdir(out) if f.endswith("_results.json")]
    (stats,) = [f for f in os.listdir(out) if f.endswith("_stats.json")]
    assert [os.path.basename(k) for k in json.loads((out / results).read_text())] == ["trio_z.png"]
    assert json.loads((out / stats).read_text())["process"]["search"]["decisions"]["file"] == (
        str(path)
    )
    shown = tmp_path / "shown"
    argv = [*common, "-Z", str(shown), "--decisions", str(path), "--show_done", "true"]
    assert main(argv) == 0
    (results,) = [f for f in os.listdir(shown) if f.endswith("_results.json")]
    assert len(json.loads((shown / results).read_text())) == 2
    # A bad file stops before anything is built or written.
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main([*common, "-Z", str(tmp_path / "never"), "--decisions", str(bad)]) == 2
    assert "not a fastdif decisions file" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_report_data_holds_identities_done_marks_and_the_file_read(pics, tmp_path):
    path = _write(tmp_path, ("done", [pics / "twin_a.png", pics / "twin_b.png"]))
    dif = _build(pics)
    data = report_data(_search(dif, decisions=path, show_done=True), processes=1)
    assert data["decisions"] == {"source": str(path), "document": decisions.read(path)}
    for group in data["groups"]:
        assert group["done"] == ("twin" in group["images"][0]["path"])
        for image in group["images"]:
            assert image["sha256"] == hashlib.sha256(open(image["path"], "rb").read()).hexdigest()
    plain = report_data(_search(dif), processes=1)
    assert plain["decisions"] == {"source": None, "document": decisions.empty()}
    assert not any(group["done"] for group in plain["groups"])


def test_a_missing_decision_file_is_no_decisions_yet(pics, tmp_path):
    dif = _build(pics)
    first = _search(dif, decisions=tmp_path / "decisions.json")
    assert first.result == _search(dif).result
    assert not (tmp_path / "decisions.json").exists()  # nothing written by a search
