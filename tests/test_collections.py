"""Collections: RUN, TAGGED and CHAINED; search order, found_in, stages, query().

Every test runs on both registries (the ``shelf`` fixture).  The atomicity
test starts a real reader process: this file run as a script
(``python tests/test_collections.py reader ...``) opens the test's shelf and
looks a dataset up through a chain in a loop while the test redefines the
chain, and reports every lookup that saw anything but a whole definition.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def reader_main(root: str, stop_file: str) -> None:
    """Look ``x`` up through chain ``c`` until ``stop_file`` exists; print what was seen."""
    import labshelf

    shelf = labshelf.open(root, mode="r")
    seen: dict[str, int] = {}
    bad: list[str] = []
    reads = 0
    announced = False
    deadline = time.monotonic() + 60
    while not Path(stop_file).exists() and time.monotonic() < deadline:
        try:
            ref = shelf.find("x", collections="c")
            value = shelf.read(ref)
            state = f"{value}@{'>'.join(ref.found_in)}"
            if state not in ("2@c>run/2", "4@c>run/4"):
                bad.append(state)
            seen[state] = seen.get(state, 0) + 1
        except Exception as exc:  # a half-defined chain shows as not found
            bad.append(f"{type(exc).__name__}: {exc}")
        reads += 1
        if not announced:
            print("ready", flush=True)
            announced = True
    shelf.close()
    print(json.dumps({"reads": reads, "seen": seen, "bad": bad[:5], "n_bad": len(bad)}), flush=True)


if __name__ == "__main__":
    # A reader stops here, before importing pytest and the fixtures.
    if sys.argv[1] == "reader":
        reader_main(sys.argv[2], sys.argv[3])
    sys.exit(0)


import pytest  # noqa: E402

import labshelf  # noqa: E402
from _children import spawner  # noqa: E402
from labshelf.errors import CollectionError, CollectionNotFound, DatasetNotFound, QuerySyntaxError  # noqa: E402

HOSTILE = "'; DROP TABLE datasets; --"


def add_runs(shelf: labshelf.Shelf, *contents: dict[str, Any], experiment: str = "") -> list[int]:
    """One finished run per dict of name -> value; return their numbers."""
    numbers = []
    for content in contents:
        with shelf.new_run(experiment) as run:
            for name, value in content.items():
                run.put(name, value)
        numbers.append(run.number)
    return numbers


def everything(shelf: labshelf.Shelf) -> dict[tuple[int, str], Any]:
    """Every stored value, to check that a refused call lost nothing."""
    return {
        (ref.run, ref.label): shelf.read(ref)
        for number in shelf._registry.run_numbers()
        for ref in shelf.datasets(number)
    }


# -- RUN collections ------------------------------------------------------------------


def test_every_run_is_a_run_collection(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1}, {"x": 2}, {"y": 3})
    with shelf.new_run() as run:
        run.put("pmt", 5, data_id={"channel": 2})
    assert run.collection == "run/4"
    assert shelf.get("x", collections="run/2") == 2 == shelf.get("x", run=2)
    assert shelf.get("x", collections=["run/3", "run/1"]) == 1
    assert shelf.find("x", collections=["run/3", "run/1"]).found_in == ("run/1",)
    # data_id is the second positional parameter
    assert shelf.get("pmt", {"channel": 2}, run=4) == 5
    assert shelf.get("pmt", {"channel": 2}, collections="run/4") == 5
    info = shelf.collection("run/2")
    assert (info.name, info.kind, info.children) == ("run/2", "RUN", ())
    assert info.repository == shelf.where


def test_without_collections_every_run_is_searched_newest_first(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1}, {"x": 2}, {"y": 3})
    assert shelf.get("x") == 2
    ref = shelf.find("x")
    assert ref.run == 2 and ref.found_in == ("run/2",)


def test_default_collections_of_an_opened_shelf(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1}, {"x": 2})
    shelf.chain("calib/current", ["run/1"])
    with labshelf.open(shelf.root, collections=["calib/current"]) as again:
        assert list(again.default_collections) == ["calib/current"]
        assert again.get("x") == 1
        assert again.find("x").found_in == ("calib/current", "run/1")
        assert again.get("x", run=2) == 2  # an explicit run still wins


# -- TAGGED collections ---------------------------------------------------------------


def test_tag_holds_one_dataset_per_name_and_data_id(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as r1:
        r1.put("calib", 1.0)
        r1.put("pmt", 10, data_id={"channel": 1})
        r1.put("pmt", 20, data_id={"channel": 2})
    with shelf.new_run() as r2:
        r2.put("calib", 2.0)
        r2.put("pmt", 11, data_id={"channel": 1})
    refs1 = shelf.datasets(1)
    calib2 = shelf.find("calib", run=2)

    assert shelf.tag("calib/good", refs1, doc="checked by hand") == 3
    assert shelf.tag("calib/good", refs1[:1]) == 0  # already in it
    assert shelf.get("calib", collections="calib/good") == 1.0
    assert shelf.get("pmt", {"channel": 2}, collections="calib/good") == 20
    found = shelf.find("pmt", {"channel": 1}, collections="calib/good")
    assert (found.run, found.found_in) == (1, ("calib/good",))
    info = shelf.collection("calib/good")
    assert (info.kind, info.doc) == ("TAGGED", "checked by hand")

    before = everything(shelf)
    with pytest.raises(CollectionError, match="calib"):
        shelf.tag("calib/good", [calib2])  # a second 'calib' with the same (empty) data ID
    assert shelf.get("calib", collections="calib/good") == 1.0
    assert everything(shelf) == before

    assert shelf.tag("calib/good", [calib2], replace=True) == 1
    assert shelf.get("calib", collections="calib/good") == 2.0
    assert shelf.find("pmt", {"channel": 1}, collections="calib/good").run == 1  # others untouched

    assert shelf.untag("calib/good", [calib2]) == 1
    assert shelf.untag("calib/good", [calib2]) == 0
    with pytest.raises(DatasetNotFound):
        shelf.get("calib", collections="calib/good")
    assert shelf.get("pmt", {"channel": 2}, collections="calib/good") == 20
    # Tagging and untagging never touch the datasets themselves.
    assert everything(shelf) == before


# -- CHAINED collections --------------------------------------------------------------


def test_chain_searches_in_order_depth_first_and_first_match_wins(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1, "a": 1}, {"x": 2, "b": 2, "d": 2}, {"x": 3, "b": 3})
    shelf.chain("inner", ["run/1", "run/3"])
    shelf.chain("outer", ["inner", "run/2"])
    assert shelf.get("x", collections="outer") == 1
    # Depth first: inner's run/3 comes before outer's own run/2.
    assert shelf.get("b", collections="outer") == 3
    assert shelf.find("b", collections="outer").found_in == ("outer", "inner", "run/3")
    assert shelf.find("d", collections="outer").found_in == ("outer", "run/2")
    assert shelf.find("a", collections="outer").found_in == ("outer", "inner", "run/1")

    shelf.chain("inner", ["run/3", "run/1"])  # redefined: order changes the pick
    assert shelf.get("x", collections="outer") == 3
    assert shelf.collection("inner").children == ("run/3", "run/1")
    shelf.chain("outer", ["run/2", "inner"])
    assert shelf.get("x", collections="outer") == 2

    # A list of collections is searched in order too, chains included.
    assert shelf.get("x", collections=["run/1", "outer"]) == 1
    assert shelf.find("b", collections=["run/1", "outer"]).found_in == ("outer", "run/2")

    # A TAGGED collection inside a chain.
    shelf.tag("picked", [shelf.find("x", run=3)])
    shelf.chain("mixed", ["picked", "run/1"])
    assert shelf.get("x", collections="mixed") == 3
    assert shelf.find("x", collections="mixed").found_in == ("mixed", "picked")
    assert shelf.get("a", collections="mixed") == 1


@pytest.fixture
def spawn() -> Any:
    with spawner(Path(__file__).resolve()) as start:
        yield start


def test_a_chain_redefinition_is_atomic_for_a_reader_in_another_process(
    shelf: labshelf.Shelf, tmp_path: Path, spawn: Any
) -> None:
    # x only in run/2 and run/4: a chain caught half-defined ([], [run/1],
    # [run/3]) finds nothing, and a mix of old and new children finds the wrong run.
    add_runs(shelf, {"other": 1}, {"x": 2}, {"other": 3}, {"x": 4})
    shelf.chain("c", ["run/1", "run/2"])
    stop = tmp_path / "stop"
    reader = spawn("reader", shelf.root, stop)
    reader.expect("ready", timeout=60)
    for i in range(40):
        shelf.chain("c", ["run/3", "run/4"] if i % 2 == 0 else ["run/1", "run/2"])
        time.sleep(0.005)
    stop.touch()
    report = json.loads(reader.wait_for(lambda line: line.startswith("{"), "the reader's report", timeout=60))
    assert reader.finish() == 0, reader.stderr
    assert report["n_bad"] == 0, report
    assert report["reads"] >= 10, report
    assert set(report["seen"]) == {"2@c>run/2", "4@c>run/4"}, report


def test_a_cycle_is_refused_naming_it_and_nothing_changes(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1})
    shelf.chain("calib/a", ["run/1"])
    shelf.chain("calib/b", ["calib/a"])
    shelf.chain("calib/c", ["calib/b"])
    with pytest.raises(CollectionError) as caught:
        shelf.chain("calib/a", ["run/1", "calib/c"])
    message = str(caught.value)
    assert all(name in message for name in ("calib/a", "calib/b", "calib/c")), message
    assert "cycle" in message.lower()
    assert shelf.collection("calib/a").children == ("run/1",)
    assert shelf.get("x", collections="calib/c") == 1
    with pytest.raises(CollectionError, match="calib/b"):
        shelf.chain("calib/b", ["calib/b"])  # a chain naming itself
    assert shelf.collection("calib/b").children == ("calib/a",)


def test_a_missing_child_is_refused_and_nothing_changes(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1})
    shelf.chain("calib/current", ["run/1"])
    with pytest.raises(CollectionNotFound, match="calib/nope"):
        shelf.chain("calib/current", ["run/1", "calib/nope"])
    assert shelf.collection("calib/current").children == ("run/1",)
    with pytest.raises(CollectionNotFound, match="run/99"):
        shelf.chain("calib/new", ["run/99"])
    assert "calib/new" not in {c.name for c in shelf.collections()}
    with pytest.raises(KeyError):  # CollectionNotFound is a KeyError too
        shelf.collection("calib/new")
    assert shelf.get("x", collections="calib/current") == 1


def test_remove_collection_is_refused_while_a_chain_names_it(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1})
    shelf.tag("calib/good", shelf.datasets(1))
    shelf.chain("calib/current", ["calib/good"])
    with pytest.raises(CollectionError, match="calib/current"):
        shelf.remove_collection("calib/good")
    assert shelf.get("x", collections="calib/current") == 1
    shelf.remove_collection("calib/current")
    shelf.remove_collection("calib/good")
    names = {c.name for c in shelf.collections()}
    assert "calib/good" not in names and "calib/current" not in names and "run/1" in names
    # A RUN collection is the run itself: it cannot be removed this way.
    with pytest.raises((CollectionError, CollectionNotFound)):
        shelf.remove_collection("run/1")
    assert shelf.get("x", run=1) == 1


def test_collections_lists_kinds_docs_stages_and_children(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1}, {"x": 2})
    shelf.tag("calib/good", shelf.datasets(1), doc="checked by hand", stage="isr")
    shelf.chain("calib/current", ["calib/good", "run/2"], doc="what to use")
    shelf.describe_collection("run/1", doc="first light", stage="raw")
    infos = {c.name: c for c in shelf.collections()}
    assert set(infos) == {"run/1", "run/2", "calib/good", "calib/current"}
    assert (infos["run/1"].kind, infos["run/1"].doc, infos["run/1"].stage) == ("RUN", "first light", "raw")
    assert infos["run/2"].kind == "RUN" and not infos["run/2"].doc and infos["run/2"].stage is None
    good = infos["calib/good"]
    assert (good.kind, good.doc, good.stage, good.children) == ("TAGGED", "checked by hand", "isr", ())
    current = infos["calib/current"]
    assert (current.kind, current.doc, current.children) == ("CHAINED", "what to use", ("calib/good", "run/2"))
    assert {c.repository for c in infos.values()} == {shelf.where}
    assert shelf.collection("calib/current") == current
    # pattern read as a glob
    assert {c.name for c in shelf.collections("calib/*")} == {"calib/good", "calib/current"}
    # describe_collection changes only what it is given
    shelf.describe_collection("calib/current", stage="jointcal")
    again = shelf.collection("calib/current")
    assert (again.doc, again.stage, again.children) == ("what to use", "jointcal", ("calib/good", "run/2"))


def test_unknown_collection_names_close_matches(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1})
    shelf.chain("calib/current", ["run/1"])
    with pytest.raises(CollectionNotFound, match="calib/current"):
        shelf.get("x", collections="calib/curent")
    with pytest.raises(CollectionNotFound, match="calib/current"):
        shelf.find("x", collections=["run/1", "calib/curent"])
    with pytest.raises(CollectionNotFound, match="calib/current"):
        shelf.collection("calib/curent")
    with pytest.raises(KeyError):
        shelf.get("x", collections="run/7")
    with pytest.raises((CollectionNotFound, CollectionError)):
        shelf.get("x", collections=HOSTILE)
    assert shelf.get("x", collections="calib/current") == 1


def test_dataset_not_found_says_which_collections_were_searched(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"x": 1}, {"x": 2}, {"y": 3})
    shelf.chain("calib/current", ["run/1", "run/2"])
    with pytest.raises(DatasetNotFound) as caught:
        shelf.get("y", collections=["calib/current", "run/2"])
    message = str(caught.value)
    assert "'y'" in message or '"y"' in message, message
    assert "calib/current" in message and "run/2" in message, message
    assert "run/3" not in message  # it was not searched


def test_stage_qualifier_limits_the_search_to_staged_collections(shelf: labshelf.Shelf) -> None:
    add_runs(shelf, {"calexp": 1}, {"calexp": 2}, {"calexp": 3})
    shelf.describe_collection("run/2", stage="jointcal")
    assert shelf.get("calexp", collections=["run/1", "run/2"]) == 1
    assert shelf.get("calexp:jointcal", collections=["run/1", "run/2"]) == 2
    assert shelf.find("calexp:jointcal", collections=["run/1", "run/2"]).found_in == ("run/2",)
    # A leaf reached through a chain carrying the stage counts too.
    shelf.chain("jc", ["run/1"], stage="jointcal")
    assert shelf.get("calexp:jointcal", collections=["run/3", "jc"]) == 1
    assert shelf.find("calexp:jointcal", collections=["run/3", "jc"]).found_in == ("jc", "run/1")
    with pytest.raises(CollectionNotFound, match="jointcal"):
        shelf.get("calexp:jointcl", collections=["run/1", "run/2"])
    with pytest.raises(DatasetNotFound):
        shelf.get("calexp:jointcal", collections=["run/3"])


def test_stage_qualifier_without_collections_searches_the_staged_runs(shelf: labshelf.Shelf) -> None:
    # The default search (every run, newest first) limited to the runs that
    # carry the stage, directly or through a chain that does.
    add_runs(shelf, {"calexp": 1}, {"calexp": 2}, {"calexp": 3})
    shelf.describe_collection("run/2", stage="jointcal")
    assert shelf.get("calexp") == 3
    assert shelf.get("calexp:jointcal") == 2
    assert shelf.find("calexp:jointcal").found_in == ("run/2",)
    with pytest.raises(CollectionNotFound, match="jointcal"):
        shelf.get("calexp:jointcl")


# -- query() --------------------------------------------------------------------------


@pytest.fixture
def detectors(shelf: labshelf.Shelf) -> labshelf.Shelf:
    """Runs 1-4 (run 3 'cal', the others 'scan'; run 4 failed), each with
    flux[detector=1..4, band=g|r] = 10 * run + detector and temp = run."""
    for number in range(1, 5):
        try:
            with shelf.new_run("cal" if number == 3 else "scan") as run:
                for detector in range(1, 5):
                    band = "g" if detector % 2 else "r"
                    run.put("flux", 10 * number + detector, data_id={"detector": detector, "band": band})
                run.put("temp", number)
                if number == 4:
                    raise RuntimeError("beam lost")
        except RuntimeError:
            pass
    assert shelf.run(4).status == "failed"
    return shelf


def picked(refs: list[Any]) -> list[tuple[int, int]]:
    """(run, detector) of each ref, sorted (the order of data IDs within a run is not numeric)."""
    return sorted((r.run, r.data_id["detector"]) for r in refs)


def test_query_with_data_id_dimensions_and_run_metadata(detectors: labshelf.Shelf) -> None:
    shelf = detectors
    every = [(r, d) for r in range(1, 5) for d in range(1, 5)]
    refs = shelf.query("flux", where="detector > 2")
    assert picked(refs) == [(r, d) for r, d in every if d > 2]
    assert sorted(shelf.read(ref) for ref in refs) == [10 * r + d for r, d in every if d > 2]
    # Ordered by run, then name, then data ID (in some fixed order of data IDs).
    refs = shelf.query(where="run >= 2")
    runs_names = [(r.run, r.name) for r in refs]
    assert runs_names == sorted(runs_names) and len(refs) == 3 * 5
    assert [r.data_id for r in refs if r.run == 2] == [r.data_id for r in refs if r.run == 3][:5]
    assert picked(shelf.query("flux", where="detector > 2.5")) == [(r, d) for r, d in every if d > 2]
    assert picked(shelf.query("flux", where="band == 'g'")) == [(r, d) for r, d in every if d % 2]
    assert picked(shelf.query("flux", where="detector in [1, 2]")) == [(r, d) for r, d in every if d <= 2]
    assert picked(shelf.query("flux", where="band in ('r',) and detector != 4")) == [(r, 2) for r in range(1, 5)]
    assert picked(shelf.query("flux", where="run >= 3 and detector == 1")) == [(3, 1), (4, 1)]
    assert picked(shelf.query("flux", where="experiment == 'cal'")) == [(3, d) for d in range(1, 5)]
    assert {r.run for r in shelf.query("flux", where="status == 'finished'")} == {1, 2, 3}
    assert picked(shelf.query("flux", where="not (detector < 4) and run < 3")) == [(1, 4), (2, 4)]
    assert len(shelf.query("flux")) == 16
    # name=None: every name
    assert sorted((r.name, r.data_id.get("detector")) for r in shelf.query(where="run == 2")) == [
        *(("flux", d) for d in range(1, 5)),
        ("temp", None),
    ]
    assert [r.run for r in shelf.query("temp", where="run > 1")] == [2, 3, 4]
    assert shelf.query("flux", where="detector > 100") == []


def test_query_through_collections_keeps_the_first_per_data_id(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as r1:
        for d in (1, 2):
            r1.put("flux", 10 + d, data_id={"detector": d})
    with shelf.new_run() as r2:
        for d in (2, 3):
            r2.put("flux", 20 + d, data_id={"detector": d})
    first = shelf.query("flux", collections=["run/2", "run/1"])
    assert sorted(picked(first)) == [(1, 1), (2, 2), (2, 3)]
    assert sorted(picked(shelf.query("flux", collections=["run/2", "run/1"], find_first=True))) == sorted(
        picked(first)
    )
    every = shelf.query("flux", collections=["run/2", "run/1"], find_first=False)
    assert sorted(picked(every)) == [(1, 1), (1, 2), (2, 2), (2, 3)]
    shelf.chain("c", ["run/1", "run/2"])
    assert sorted(picked(shelf.query("flux", collections="c"))) == [(1, 1), (1, 2), (2, 3)]
    assert sorted(picked(shelf.query("flux", where="detector >= 2", collections="c"))) == [(1, 2), (2, 3)]


def test_a_query_syntax_error_says_where(detectors: labshelf.Shelf) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        detectors.query("flux", where="detector > ")
    assert caught.value.position == len("detector > ")
    with pytest.raises(QuerySyntaxError) as caught:
        detectors.query("flux", where="detector = 2")
    assert caught.value.position == len("detector ")
    assert "position 9" in str(caught.value)


def test_a_hostile_string_in_an_expression_is_harmless(detectors: labshelf.Shelf) -> None:
    shelf = detectors
    before = everything(shelf)
    assert shelf.query("flux", where=f'band == "{HOSTILE}"') == []
    assert shelf.query(where=f'experiment == "{HOSTILE}" or band == "{HOSTILE}"') == []
    # The same text as a data-ID value is found exactly: it went in as a bound parameter.
    with shelf.new_run() as run:
        run.put("flux", 99, data_id={"detector": 9, "band": HOSTILE})
    found = shelf.query("flux", where=f'band == "{HOSTILE}"')
    assert [(r.run, dict(r.data_id)) for r in found] == [(run.number, {"band": HOSTILE, "detector": 9})]
    assert shelf.get("flux", {"detector": 9, "band": HOSTILE}) == 99
    after = everything(shelf)
    del after[(run.number, found[0].label)]
    assert after == before


def test_a_remembered_chain_plan_sees_a_redefinition_by_another_shelf_object(shelf: labshelf.Shelf) -> None:
    # The first get plans the search and remembers it; the redefinition comes
    # through another connection, as from another process, and the next get
    # must follow it (the lookup checks the definitions' generation).
    for value in (1.0, 2.0):
        with shelf.new_run() as run:
            run.put("gain", value)
    shelf.chain("current", ["run/1"])
    assert shelf.get("gain", collections="current") == 1.0
    other = labshelf.open(shelf.root)
    try:
        other.chain("current", ["run/2", "run/1"])
    finally:
        other.close()
    ref = shelf.find("gain", collections="current")
    assert (ref.run, ref.found_in) == (2, ("current", "run/2"))
