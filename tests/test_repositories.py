"""Several repositories: inputs and one output, search order, parents, modes, tags.

The repositories are SQLite shelves in ``tmp_path``, each with runs whose
values say where they came from (``"calib"``, ``"raw"``, ...), so a lookup
shows which repository supplied it.  One test makes the output a PostgreSQL
shelf.  After every call that must be refused, the tests read every stored
value again to check nothing was lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import labshelf
from _shelves import make_shelf, require_postgres
from labshelf.errors import CollectionError, CollectionNotFound, DatasetNotFound, ReadOnlyShelf, ShelfError


def make_repo(
    path: Path,
    contents: Mapping[str, Any],
    *,
    inputs: list[Any] | None = None,
    repo_mode: str | None = None,
) -> Path:
    """A shelf at ``path`` with one run holding ``contents`` (name or (name, detector) -> value).

    With ``inputs``, the run is written through a view with those inputs, so
    the new shelf records them as its parents.
    """
    kwargs = {} if repo_mode is None else {"repo_mode": repo_mode}
    view = labshelf.create(path, **kwargs)
    if inputs:
        view.close()
        view = labshelf.open(inputs=inputs, output=path)
    with view, view.new_run("fill") as run:
        for key, value in contents.items():
            name, data_id = (key, None) if isinstance(key, str) else (key[0], {"detector": key[1]})
            run.put(name, value, data_id=data_id)
    return path


def stored(path: Path) -> dict[tuple[int, str], Any]:
    """Every value stored in the repository itself (not its parents)."""
    with labshelf.open(path, mode="r") as shelf:
        return {
            (ref.run, ref.label): shelf.read(ref)
            for number in shelf._registry.run_numbers()
            for ref in shelf.datasets(number)
        }


def same_place(where: str, path: Path) -> bool:
    return Path(where).resolve() == path.resolve()


def info_field(info: Any, name: str) -> Any:
    """A field of one ``shelf.repositories`` entry (a mapping or an object)."""
    return info[name] if isinstance(info, Mapping) else getattr(info, name)


def search_order(shelf: labshelf.Shelf) -> list[str]:
    """Folder names of the repositories of a view, in search order."""
    return [Path(info_field(i, "where")).name for i in shelf.repositories]


def repo_tags(info: Any) -> set[str]:
    """The tags of one repository entry (``tag`` or ``tags``)."""
    for name in ("tags", "tag"):
        try:
            value = info_field(info, name)
        except (KeyError, AttributeError):
            continue
        return set() if value is None else {value} if isinstance(value, str) else set(value)
    raise AssertionError(f"no tag in {info!r}")


@pytest.fixture
def family(tmp_path: Path) -> dict[str, Path]:
    """parent <- calib (calib records parent), raw, and an empty output 'mine'."""
    parent = make_repo(
        tmp_path / "parent.shelf",
        {"only_parent": "parent", "shared": "parent", "bias": "parent"},
    )
    calib = make_repo(tmp_path / "calib.shelf", {"bias": "calib", "flat": "calib"}, inputs=[parent])
    raw = make_repo(
        tmp_path / "raw.shelf",
        {"raw": "raw", "shared": "raw", "bias": "raw", "flat": "raw", ("pmt", 3): "raw-3"},
    )
    mine = tmp_path / "mine.shelf"
    labshelf.create(mine).close()
    return {"parent": parent, "calib": calib, "raw": raw, "mine": mine}


@pytest.fixture
def view(family: dict[str, Path]) -> Iterator[labshelf.Shelf]:
    with labshelf.open(inputs=[str(family["calib"]), str(family["raw"])], output=str(family["mine"])) as shelf:
        yield shelf


def test_reads_search_output_then_inputs_depth_first_left_to_right(
    view: labshelf.Shelf, family: dict[str, Path]
) -> None:
    assert search_order(view) == ["mine.shelf", "calib.shelf", "parent.shelf", "raw.shelf"]
    assert view.get("bias") == "calib"  # calib before raw, and before its own parent
    assert same_place(view.find("bias").repository, family["calib"])
    assert view.get("shared") == "parent"  # calib's parent comes before raw: depth first
    assert same_place(view.find("shared").repository, family["parent"])
    assert view.get("only_parent") == "parent"
    assert view.get("raw") == "raw" and view.get("flat") == "calib"
    assert view.get("pmt", {"detector": 3}) == "raw-3"
    with pytest.raises(DatasetNotFound):
        view.get("nowhere")


def test_writes_go_to_the_output_only(view: labshelf.Shelf, family: dict[str, Path]) -> None:
    inputs_before = {k: stored(family[k]) for k in ("parent", "calib", "raw")}
    with view.new_run("mine") as run:
        run.put("bias", "mine")
        run.put("result", 42)
    assert run.number == 1  # the output's own numbering
    view.annotate(run.number, comment="looks good")
    view.tag("best", [view.find("result")])
    view.chain("calib/current", ["best", "run/1"])
    assert view.get("bias") == "mine"  # the output is searched first
    assert view.find("bias").found_in == ("run/1",)
    assert same_place(view.find("bias").repository, family["mine"])
    # run/1 resolves in the first repository that has it: the output's shadows the inputs'.
    assert view.get("bias", collections="run/1") == "mine"
    with pytest.raises(DatasetNotFound):
        view.get("flat", collections="run/1")
    assert view.get("result", collections="calib/current") == 42
    assert view.get("flat") == "calib"
    for name in ("parent", "calib", "raw"):
        assert stored(family[name]) == inputs_before[name], name
    assert stored(family["mine"]) == {(1, "bias"): "mine", (1, "result"): 42}


def test_nothing_of_an_input_can_be_written_through_the_view(view: labshelf.Shelf, family: dict[str, Path]) -> None:
    before = {k: stored(family[k]) for k in ("parent", "calib", "raw")}
    flat = view.find("flat")  # calib's
    with pytest.raises(CollectionError, match="calib.shelf"):
        view.tag("best", [flat])  # a TAGGED collection of the output holds the output's datasets only
    with pytest.raises(labshelf.RunNotFound):
        view.run(1).put("x", 1)  # run 1 of the inputs is not the output's
    with pytest.raises(labshelf.RunNotFound):
        view.annotate(1, comment="x")
    # A chain of the output may name the inputs' collections.
    view.chain("calib/current", ["run/1"])
    assert view.get("flat", collections="calib/current") == "calib"
    assert "best" not in {c.name for c in view.collections()}
    for name in ("parent", "calib", "raw"):
        assert stored(family[name]) == before[name], name


def test_without_an_output_every_write_is_refused(family: dict[str, Path]) -> None:
    before = {k: stored(family[k]) for k in ("parent", "calib", "raw")}
    with labshelf.open(inputs=[family["calib"], family["raw"]]) as view:
        assert view.get("bias") == "calib"
        ref = view.find("flat")
        for attempt in (
            lambda: view.new_run("x"),
            lambda: view.tag("best", [ref]),
            lambda: view.chain("calib/current", ["run/1"]),
            lambda: view.annotate(1, comment="x"),
            lambda: view.describe_collection("run/1", doc="x"),
        ):
            with pytest.raises(ReadOnlyShelf):
                attempt()
        assert view.get("flat") == "calib"
    for name in ("parent", "calib", "raw"):
        assert stored(family[name]) == before[name], name


def test_the_output_remembers_its_inputs_as_parents(family: dict[str, Path]) -> None:
    with labshelf.open(inputs=[family["calib"], family["raw"]], output=family["mine"]) as view, view.new_run() as run:
        run.put("bias", "mine")
    with labshelf.open(family["mine"]) as alone:
        assert search_order(alone) == ["mine.shelf", "calib.shelf", "parent.shelf", "raw.shelf"]
        assert alone.get("bias") == "mine"
        assert alone.get("flat") == "calib"
        assert alone.get("shared") == "parent"
        assert alone.get("raw") == "raw"
        assert same_place(alone.find("raw").repository, family["raw"])
    # Read-only, the same.
    with labshelf.open(family["mine"], mode="r") as alone:
        assert alone.get("only_parent") == "parent"
    # An input opened alone knows nothing of the output.
    with labshelf.open(family["calib"], mode="r") as calib:
        assert calib.get("bias") == "calib"
        assert calib.get("shared") == "parent"  # but its own parent, yes


def test_repository_modes_are_enforced_at_open(tmp_path: Path, family: dict[str, Path]) -> None:
    frozen = make_repo(tmp_path / "frozen.shelf", {"bias": "frozen"})
    with labshelf.open(frozen) as shelf:
        shelf.set_repo_mode("r")
    drop = make_repo(tmp_path / "drop.shelf", {"bias": "drop"}, repo_mode="w")
    frozen_before = stored(frozen)

    with pytest.raises(ReadOnlyShelf, match="read-only"):
        labshelf.open(frozen, mode="rw")
    with labshelf.open(frozen) as shelf, pytest.raises(ReadOnlyShelf):
        shelf.new_run()  # without a mode, a read-only repository opens read-only
    with pytest.raises(ReadOnlyShelf):
        labshelf.open(inputs=[family["raw"]], output=frozen)
    with pytest.raises(ShelfError, match="drop.shelf"):
        labshelf.open(inputs=[drop, family["raw"]])
    with pytest.raises(ShelfError):
        labshelf.create(tmp_path / "odd.shelf", repo_mode="x")

    with labshelf.open(frozen, mode="r") as shelf:
        assert shelf.get("bias") == "frozen"
    with labshelf.open(inputs=[frozen, family["raw"]], output=family["mine"]) as view:
        assert view.get("bias") == "frozen"
        with view.new_run() as run:  # writing into a view with a read-only input is fine
            run.put("x", 1)
    with labshelf.open(family["mine"]) as mine, pytest.raises(ShelfError):
        mine.set_repo_mode("x")
    assert stored(frozen) == frozen_before
    assert stored(family["mine"]) == {(1, "x"): 1}


def test_a_refused_open_leaves_the_output_as_it_was(tmp_path: Path, family: dict[str, Path]) -> None:
    drop = make_repo(tmp_path / "drop.shelf", {"bias": "drop"}, repo_mode="w")
    with pytest.raises(ShelfError, match="drop.shelf"):
        labshelf.open(inputs=[family["raw"], drop], output=family["mine"])
    with pytest.raises(labshelf.NotAShelf):
        labshelf.open(inputs=[family["raw"], tmp_path / "missing.shelf"], output=family["mine"])
    # The output recorded no parents from the refused opens: it opens alone,
    # and the first successful open records its inputs.
    with labshelf.open(family["mine"]) as alone:
        assert search_order(alone) == ["mine.shelf"]
    with labshelf.open(inputs=[family["calib"]], output=family["mine"]) as view:
        assert view.get("bias") == "calib"
    with labshelf.open(family["mine"]) as alone:
        assert search_order(alone) == ["mine.shelf", "calib.shelf", "parent.shelf"]


def test_tags_limit_the_search_to_tagged_repositories_and_their_parents(tmp_path: Path) -> None:
    p1 = make_repo(tmp_path / "p1.shelf", {"pcal": "p1"})
    v1 = make_repo(tmp_path / "v1.shelf", {"calib": "v1", ("bias", 3): "v1-3"}, inputs=[p1])
    v2 = make_repo(tmp_path / "v2.shelf", {"calib": "v2", ("bias", 3): "v2-3"})
    mine = tmp_path / "mine.shelf"
    labshelf.create(mine).close()
    before = {p: stored(p) for p in (p1, v1, v2)}

    old = labshelf.DataId({}, tag="old")
    assert isinstance(old, dict) and old == {} and old.tag == "old"
    three_old = labshelf.DataId({"detector": 3}, tag="old")
    assert isinstance(three_old, dict) and three_old == {"detector": 3}

    inputs = [labshelf.repo(v2, tag="new"), labshelf.repo(v1, tag="old")]
    with labshelf.open(inputs=inputs, output=mine) as view:
        assert search_order(view) == ["mine.shelf", "v2.shelf", "v1.shelf", "p1.shelf"]
        # (p1 may be listed with v1's tag, since a tag reaches the parents.)
        assert [repo_tags(i) for i in view.repositories][:3] == [set(), {"new"}, {"old"}]
        with view.new_run() as run:
            run.put("calib", "mine")
            run.put("bias", "mine-3", data_id=labshelf.DataId({"detector": 3}))  # a DataId without a tag
        assert view.get("calib") == "mine"
        assert view.get("calib", old) == "v1"
        assert same_place(view.find("calib", old).repository, v1)
        assert view.get("calib", labshelf.DataId({}, tag="new")) == "v2"
        assert view.get("bias", three_old) == "v1-3"
        assert view.get("bias", data_id=labshelf.DataId({"detector": 3}, tag="new")) == "v2-3"
        assert view.get("pcal", old) == "p1"  # the parents of a tagged repository count
        with pytest.raises(DatasetNotFound):
            view.get("pcal", labshelf.DataId({}, tag="new"))
        with pytest.raises(CollectionNotFound, match="ancient"):
            view.get("calib", labshelf.DataId({}, tag="ancient"))
        with pytest.raises(CollectionNotFound, match="ancient"):
            view.find("bias", labshelf.DataId({"detector": 3}, tag="ancient"))
        # A plain dict keeps working everywhere.
        assert view.get("bias", {"detector": 3}) == "mine-3"
        assert view.find("bias", {"detector": 3}).run == run.number
        assert view.get("bias", {"detector": 3}, run=run.number) == "mine-3"
        assert view.get("pcal", {}) == "p1"
        with view.new_run() as run2:
            run2.put("bias", "mine2-3", data_id={"detector": 3})
        assert view.get("bias", {"detector": 3}) == "mine2-3"
    for path, values in before.items():
        assert stored(path) == values


@pytest.mark.postgres
def test_a_postgresql_output_with_sqlite_inputs(
    tmp_path: Path, family: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    require_postgres()
    out = make_shelf("postgres", tmp_path, request, name="pg-out.shelf")
    out.close()
    folder = tmp_path / "pg-out.shelf"
    with labshelf.open(inputs=[family["calib"], family["raw"]], output=folder) as view:
        assert view.get("shared") == "parent"
        with view.new_run() as run:
            run.put("bias", "pg")
        assert view.get("bias") == "pg"
        where = view.find("bias").repository
        assert where.startswith("postgresql://") or same_place(where, folder), where
    with labshelf.open(folder) as alone:
        assert alone.get("bias") == "pg"
        assert alone.get("flat") == "calib"
        assert alone.get("only_parent") == "parent"
        assert alone._registry.db.engine.dialect.name == "postgresql"
    assert stored(family["calib"]) == {(1, "bias"): "calib", (1, "flat"): "calib"}
