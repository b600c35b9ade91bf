"""DatasetTree, Python side: paging, order, search, previews, HDF5 members, the message protocol.

Widgets are built over real shelves and their ``rpc_*`` methods called the
way the browser calls them; the transport is captured by overriding
``send`` (the comm), never the widget's logic.  What the browser does with
the answers is the browser tests' part (tests/browser/).
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

import labshelf
from _shelves import BACKENDS, make_shelf, require_postgres
from labshelf.errors import DatasetNotFound, RunNotFound
from labshelf.names import data_id_key, label
from labshelf.widgets import DatasetTree


class CapturedTree(DatasetTree):
    """A DatasetTree whose messages to the browser are kept instead of sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[Any, list[bytes]]] = []
        super().__init__(*args, **kwargs)

    def send(self, content: Any, buffers: Any = None) -> None:
        self.sent.append((content, list(buffers or [])))


def run_code(code: str, shelf: labshelf.Shelf) -> Any:
    """Evaluate a preview's code the way a notebook would, with ``shelf`` defined."""
    namespace: dict[str, Any] = {"shelf": shelf}
    if "\n" in code:
        exec(code, namespace)
        return namespace["value"]
    return eval(code, namespace)


def all_children(tree: DatasetTree, node: str, limit: int = 100, search: str = "") -> list[dict[str, Any]]:
    """Every child of a node, page after page, as the "more" button would fetch them."""
    found: list[dict[str, Any]] = []
    while True:
        page = tree.rpc_children(node, offset=len(found), limit=limit, search=search)
        assert page["offset"] == len(found)
        found += page["nodes"]
        if not page["more"]:
            return found
        assert len(page["nodes"]) == limit


def expected_listing(keys: list[tuple[str, dict[str, Any]]], prefix: str = "") -> list[str]:
    """The children ids of a run (or group) as the tree must list them: byte order, groups once."""
    out: list[str] = []
    seen: set[str] = set()
    for name, data_id in sorted(keys, key=lambda k: (k[0].encode(), data_id_key(k[1]).encode())):
        if not name.startswith(prefix):
            continue
        part, slash, _ = name[len(prefix) :].partition("/")
        if slash:
            if part not in seen:
                seen.add(part)
                out.append(prefix + part)
        else:
            out.append(label(name, data_id))
    return out


# -- a run of many datasets ---------------------------------------------------------------------

# PostgreSQL puts cost ~5 ms each here: 10,000 of them would take a minute,
# so its run holds fewer; the paging code is the same.
BIG_RUN = {"sqlite": 10_000, "postgres": 1_200}


@pytest.fixture(scope="module", params=BACKENDS)
def big(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run 1 with thousands of inline scalars plus groups, data IDs and awkward names; run 2 small."""
    if request.param == "postgres":
        require_postgres()
    shelf = make_shelf(request.param, tmp_path_factory.mktemp("big"), request)
    keys: list[tuple[str, dict[str, Any]]] = []
    special: list[tuple[str, Any, dict[str, Any]]] = [
        ("scan/x", np.arange(10.0), {}),
        ("scan/counts", np.arange(5), {}),
        ("scan/deep/a", 1, {}),
        ("a_b", 1, {}),
        ("axb", 2, {}),
        ("Mixed/Case", 3, {}),
        ("pmt", 1.5, {"channel": 1}),
        ("pmt", 2.5, {"channel": 2}),
        ("pmt", 3.5, {"channel": "x"}),
        ("hash#tag", 4, {}),
        *((f"g{i}/y", i, {}) for i in range(10)),
    ]
    with shelf.new_run("many") as run:
        for name, value, data_id in special:
            run.put(name, value, data_id=data_id or None)
            keys.append((name, data_id))
        for i in range(BIG_RUN[request.param] - len(special)):
            run.put(f"d{i:05d}", i)
            keys.append((f"d{i:05d}", {}))
    with shelf.new_run("few") as run:
        run.put("scan/x", np.arange(3.0))
        run.put("other", 1)
    yield {"shelf": shelf, "keys": keys, "run": 1}
    shelf.close()


def test_a_run_of_many_datasets_pages_in_name_order(big: dict[str, Any]) -> None:
    tree = DatasetTree(big["shelf"])
    first = tree.rpc_children("run/1", offset=0, limit=100)
    assert len(first["nodes"]) == 100 and first["more"] is True
    listed = all_children(tree, "run/1", limit=100)
    ids = [node["id"] for node in listed]
    assert ids == ["run/1/" + x for x in expected_listing(big["keys"])]
    assert len(ids) == len(set(ids))
    by_id = {node["id"]: node for node in listed}
    assert by_id["run/1/scan"]["kind"] == "group" and by_id["run/1/scan"]["expandable"] is True
    assert by_id["run/1/d00001"] == {
        "id": "run/1/d00001", "name": "d00001", "kind": "scalar", "meta": "scalar · int · 8 B", "expandable": False,
    }
    assert by_id["run/1/pmt[channel=2]"]["name"] == "pmt[channel=2]"
    assert "run/1/pmt[channel='x']" in by_id
    assert "run/1/hash#tag" in by_id


def test_a_page_far_down_without_earlier_pages(big: dict[str, Any]) -> None:
    walked = all_children(DatasetTree(big["shelf"]), "run/1", limit=100)
    fresh = DatasetTree(big["shelf"])  # remembers no cursor: must find its way to the offset
    offset = len(walked) - 150
    page = fresh.rpc_children("run/1", offset=offset, limit=100)
    assert [n["id"] for n in page["nodes"]] == [n["id"] for n in walked[offset : offset + 100]]
    assert page["more"] is True
    last = fresh.rpc_children("run/1", offset=len(walked) - 10, limit=100)
    assert [n["id"] for n in last["nodes"]] == [n["id"] for n in walked[-10:]] and last["more"] is False
    assert fresh.rpc_children("run/1", offset=len(walked) + 5, limit=10) == {"nodes": [], "more": False, "offset": len(walked) + 5}


def test_groups_list_their_own_children(big: dict[str, Any]) -> None:
    tree = DatasetTree(big["shelf"])
    scan = tree.rpc_children("run/1/scan")
    assert [n["id"] for n in scan["nodes"]] == ["run/1/scan/counts", "run/1/scan/deep", "run/1/scan/x"]
    assert [n["name"] for n in scan["nodes"]] == ["counts", "deep", "x"]
    assert scan["nodes"][2]["meta"] == "ndarray · 10 · float64 · 80 B"
    assert [n["id"] for n in tree.rpc_children("run/1/scan/deep")["nodes"]] == ["run/1/scan/deep/a"]
    groups = [n["id"] for n in all_children(tree, "run/1", limit=7) if n["kind"] == "group"]
    assert groups == ["run/1/Mixed", *(f"run/1/g{i}" for i in range(10)), "run/1/scan"]


def test_search_filters_names_with_like_escaped(big: dict[str, Any]) -> None:
    tree = DatasetTree(big["shelf"])
    assert [n["id"] for n in tree.rpc_children("run/1", search="scan")["nodes"]] == ["run/1/scan"]
    assert [n["id"] for n in tree.rpc_children("run/1/scan", search="scan/x")["nodes"]] == ["run/1/scan/x"]
    # "_" and "%" are literal, not LIKE wildcards; case does not matter.
    assert [n["id"] for n in tree.rpc_children("run/1", search="a_b")["nodes"]] == ["run/1/a_b"]
    assert tree.rpc_children("run/1", search="%")["nodes"] == []
    assert [n["id"] for n in tree.rpc_children("run/1", search="mixed")["nodes"]] == ["run/1/Mixed"]
    matches = all_children(tree, "run/1", limit=50, search="d0001")
    assert [n["id"] for n in matches] == [f"run/1/d{i:05d}" for i in range(10, 20)]
    # Across the shelf: only runs holding a match, and they open by themselves.
    runs = tree.rpc_children("", search="other")
    assert [(n["id"], n.get("expand")) for n in runs["nodes"]] == [("run/2", True)]
    assert [n["id"] for n in tree.rpc_children("", search="scan/x")["nodes"]] == ["run/2", "run/1"]


# -- a shelf of many runs ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def many_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[labshelf.Shelf]:
    if request.param == "postgres":
        require_postgres()
    shelf = make_shelf(request.param, tmp_path_factory.mktemp("runs"), request)
    for i in range(1, 301):
        with shelf.new_run("rabi" if i % 2 else "ramsey") as run:
            run.put("temperature", 300.0 + i)
            if i % 50 == 0:
                run.put("special/flag", True)
    yield shelf
    shelf.close()


def test_runs_come_newest_first_in_pages(many_runs: labshelf.Shelf) -> None:
    tree = DatasetTree(many_runs, page_size=100)
    first = tree.rpc_children("")
    assert [n["id"] for n in first["nodes"]] == [f"run/{n}" for n in range(300, 200, -1)]
    assert first["more"] is True
    node = first["nodes"][0]
    assert node["name"] == "run 300" and node["kind"] == "run" and node["expandable"] is True
    assert node["meta"].startswith("ramsey · finished · ")
    second = tree.rpc_children("", offset=100)
    assert [n["id"] for n in second["nodes"]] == [f"run/{n}" for n in range(200, 100, -1)]
    assert [n["id"] for n in all_children(tree, "")] == [f"run/{n}" for n in range(300, 0, -1)]
    flagged = tree.rpc_children("", search="flag")
    assert [n["id"] for n in flagged["nodes"]] == [f"run/{n}" for n in (300, 250, 200, 150, 100, 50)]
    assert [n.get("expand", False) for n in flagged["nodes"]] == [True] * 5 + [False]


def test_fallback_html_is_a_short_static_list(many_runs: labshelf.Shelf) -> None:
    tree = DatasetTree(many_runs)
    bundle = tree._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    text = data["text/html"]
    assert "run 300" in text and "run 291" in text and "run 290" not in text
    assert "special/flag" in text and "temperature" in text
    assert "290 more runs" in text


# -- datasets of every kind ---------------------------------------------------------------------------


@dataclasses.dataclass
class Calibration:
    """A composite: stored component by component."""

    gain: float
    offsets: np.ndarray


@pytest.fixture
def kinds(shelf: labshelf.Shelf) -> labshelf.Shelf:
    rng = np.random.default_rng(5)
    with shelf.new_run("kinds", {"gain": 2}) as run:
        run.put("temperature", 301.25)
        run.put("label", "first try")
        run.put("scan/x", np.linspace(0, 1, 11))
        run.put("trace", rng.normal(size=5000))  # > 16 KiB: in a data file, > 1000 values
        run.put("long", np.arange(1_200_000, dtype=np.float32))  # more than a preview reads
        run.put("camera/image", rng.integers(0, 4000, (64, 80)).astype(np.uint16))
        run.put("spectrum", xr.Dataset({"signal": ("energy", np.arange(5.0))}, coords={"energy": np.linspace(1, 2, 5)}))
        run.put("peaks", pd.DataFrame({"height": [1.0, 2.5, 3.0, 4.0, 5.0, 6.0], "name": list("abcdef")}))
        run.put("pmt", 7.5, data_id={"channel": 2})
        run.put("grown", np.zeros((3000, 2)))
        run.append("grown", np.ones((3000, 2)))
        run.put("both", 1)
        run.put("both/inner", 2)
        run.put("calib", Calibration(2.5, np.arange(3.0)))
    return shelf


def test_previews_per_kind(kinds: labshelf.Shelf) -> None:
    tree = DatasetTree(kinds)
    scalar = tree.rpc_preview("run/1/temperature")
    assert scalar.result["text"] == "301.25" and scalar.buffers == []
    assert ("stored", "in the registry") in scalar.result["fields"]
    assert tree.rpc_preview("run/1/label").result["text"] == "'first try'"

    small = tree.rpc_preview("run/1/scan/x").result
    assert small["text"].startswith("array([0. , 0.1, 0.2") and ("max", "1") in small["fields"]

    trace = tree.rpc_preview("run/1/trace").result
    value = kinds.get("trace", run=1)
    assert trace.get("text") is None  # too many values to list
    assert ("mean", f"{value.mean():.6g}") in trace["fields"] and ("min", f"{value.min():.6g}") in trace["fields"]
    assert "note" not in trace

    long = tree.rpc_preview("run/1/long").result
    assert long["note"] == "min, max and mean of the first 1,000,000 of 1,200,000 values"
    assert ("max", f"{999_999.0:.6g}") in long["fields"] and ("mean", f"{499_999.5:.6g}") in long["fields"]

    image = tree.rpc_preview("run/1/camera/image")
    assert image.result["image"] == 0 and image.buffers == [kinds.find("camera/image", run=1).summary]
    assert Image.open(io.BytesIO(image.buffers[0])).format == "PNG"
    assert ("shape", "64×80") in image.result["fields"] and ("dtype", "uint16") in image.result["fields"]

    table = tree.rpc_preview("run/1/peaks").result["table"]
    assert table["columns"] == ["", "height", "name"]
    assert table["dtypes"][1] == "float64"
    assert table["rows"] == [["0", "1", "a"], ["1", "2.5", "b"], ["2", "3", "c"], ["3", "4", "d"], ["4", "5", "e"]]

    text = tree.rpc_preview("run/1/spectrum").result["text"]
    assert text.startswith("<xarray.Dataset>") and "energy" in text and "signal" in text
    assert "labshelf_class" not in text

    run = tree.rpc_preview("run/1").result
    assert run["code"] == "shelf.run(1)" and ("experiment", "kinds") in run["fields"]
    assert ("params", '{"gain": 2}') in run["fields"] and ("datasets", "13") in run["fields"]
    group = tree.rpc_preview("run/1/scan").result
    assert ("datasets", "1") in group["fields"]
    assert [r.name for r in run_code(group["code"], kinds)] == ["scan/x"]


def test_pixel_values_at_full_resolution(kinds: labshelf.Shelf) -> None:
    tree = DatasetTree(kinds)
    image = kinds.get("camera/image", run=1)
    assert tree.rpc_pixel("run/1/camera/image", 79, 63) == {
        "x": 79, "y": 63, "value": int(image[63, 79]), "shape": [64, 80]}
    with pytest.raises(labshelf.errors.InvalidParameter, match="outside"):
        tree.rpc_pixel("run/1/camera/image", 80, 0)
    with pytest.raises(labshelf.errors.InvalidParameter, match="image datasets"):
        tree.rpc_pixel("run/1/temperature", 0, 0)


def test_code_loads_the_previewed_value(kinds: labshelf.Shelf) -> None:
    tree = DatasetTree(kinds)
    for node in ["temperature", "label", "scan/x", "trace", "camera/image", "pmt[channel=2]", "grown"]:
        code = tree.rpc_preview(f"run/1/{node}").result["code"]
        name = node.partition("[")[0]
        data_id = {"channel": 2} if "[" in node else None
        assert code == f"shelf.get({name!r}, run=1{', data_id=' + repr(data_id) if data_id else ''})"
        np.testing.assert_array_equal(run_code(code, kinds), kinds.get(name, run=1, data_id=data_id))
    pd.testing.assert_frame_equal(run_code(tree.rpc_preview("run/1/peaks").result["code"], kinds), kinds.get("peaks", run=1))
    xr.testing.assert_identical(run_code(tree.rpc_preview("run/1/spectrum").result["code"], kinds), kinds.get("spectrum", run=1))


def test_components_of_composites(kinds: labshelf.Shelf) -> None:
    tree = DatasetTree(kinds)
    spectrum = tree.rpc_children("run/1/spectrum")["nodes"]
    assert spectrum[:2] == [
        {"id": "run/1/spectrum#energy", "name": "energy", "kind": "coord", "meta": "coord · 5 · float64 · 40 B", "expandable": False},
        {"id": "run/1/spectrum#signal", "name": "signal", "kind": "variable", "meta": "variable · 5 · float64 · 40 B", "expandable": False},
    ]
    peaks = tree.rpc_children("run/1/peaks")["nodes"]
    assert [(n["id"], n["kind"]) for n in peaks[:2]] == [("run/1/peaks#height", "column"), ("run/1/peaks#name", "column")]
    assert peaks[0]["meta"].startswith("column · 6 · float64 · ")

    energy = tree.rpc_preview("run/1/spectrum#energy").result
    assert energy["text"] == "array([1.  , 1.25, 1.5 , 1.75, 2.  ])" and ("dims", "energy: 5") in energy["fields"]
    np.testing.assert_array_equal(np.asarray(run_code(energy["code"], kinds)), np.linspace(1, 2, 5))
    height = tree.rpc_preview("run/1/peaks#height").result
    assert ("mean", f"{np.mean([1.0, 2.5, 3.0, 4.0, 5.0, 6.0]):.6g}") in height["fields"]
    np.testing.assert_array_equal(np.asarray(run_code(height["code"], kinds)), [1.0, 2.5, 3.0, 4.0, 5.0, 6.0])
    with pytest.raises(DatasetNotFound, match="no component 'nope'"):
        tree.rpc_preview("run/1/peaks#nope")

    # Components beyond variables and columns, as shelf.components names them.
    assert [n["id"] for n in spectrum[2:]] == ["run/1/spectrum#attrs"]
    assert [n["id"] for n in peaks[2:]] == ["run/1/peaks#index"]
    index = tree.rpc_preview("run/1/peaks#index").result
    assert index["code"] == "shelf.get('peaks.index', run=1)"
    assert list(run_code(index["code"], kinds)) == list(range(6)) and index["text"].startswith("RangeIndex(start=0, stop=6")


def test_a_composite_lists_its_parts_once(kinds: labshelf.Shelf) -> None:
    tree = DatasetTree(kinds)
    listed = [n["id"] for n in all_children(tree, "run/1")]
    assert "run/1/calib" in listed and not any("." in node for node in listed)  # no "calib.gain" rows
    calib = next(n for n in tree.rpc_children("run/1")["nodes"] if n["id"] == "run/1/calib")
    assert calib["kind"] == "composite" and calib["expandable"] is True
    parts = tree.rpc_children("run/1/calib")["nodes"]
    assert [(n["id"], n["kind"]) for n in parts] == [("run/1/calib#gain", "component"), ("run/1/calib#offsets", "component")]
    assert ("components", "gain, offsets") in tree.rpc_preview("run/1/calib").result["fields"]
    gain = tree.rpc_preview("run/1/calib#gain").result
    assert gain["text"] == "2.5" and gain["code"] == "shelf.get('calib.gain', run=1)" and run_code(gain["code"], kinds) == 2.5
    offsets = tree.rpc_preview("run/1/calib#offsets").result
    assert offsets["text"] == "array([0., 1., 2.])" and ("max", "2") in offsets["fields"]
    assert run_code(tree.rpc_preview("run/1/calib").result["code"], kinds) == kinds.get("calib", run=1)


def test_hdf5_structure_of_file_backed_datasets(kinds: labshelf.Shelf) -> None:
    tree = DatasetTree(kinds)
    image = kinds.find("camera/image", run=1)
    assert tree.rpc_children("run/1/camera/image")["nodes"] == [
        {"id": "run/1/camera/image#camera", "name": "camera", "kind": "group", "meta": "group · 1 members", "expandable": True}
    ]
    inner = tree.rpc_children("run/1/camera/image#camera")["nodes"]
    assert inner == [{
        "id": "run/1/camera/image#camera/image", "name": "image", "kind": "dataset",
        "meta": "dataset · 64×80 · uint16 · 10 KiB", "expandable": True,
    }]
    attrs = tree.rpc_children("run/1/camera/image#camera/image")["nodes"]
    assert [(n["id"], n["meta"]) for n in attrs][0] == ("run/1/camera/image#camera/image@CLASS", "attr · 'IMAGE'")
    assert tree.rpc_children("run/1/camera/image#camera/image", offset=1, limit=1)["more"] is True

    member = tree.rpc_preview("run/1/camera/image#camera/image").result
    assert member["code"] == (
        f"import h5py\nwith h5py.File(shelf.root / {image.storage.files[0]!r}, 'r') as f:\n    value = f['/camera/image'][()]"
    )
    np.testing.assert_array_equal(run_code(member["code"], kinds), kinds.get("camera/image", run=1))
    attr = tree.rpc_preview("run/1/camera/image#camera/image@CLASS").result
    assert attr["text"] == "'IMAGE'" and run_code(attr["code"], kinds) == b"IMAGE"

    # An appended array is several segment files, each listed with its members.
    files = kinds.find("grown", run=1).storage.files
    segments = tree.rpc_children("run/1/grown")["nodes"]
    assert [n["id"] for n in segments] == [f"run/1/grown#{Path(f).name}" for f in files] and len(files) == 2
    first = tree.rpc_children(segments[0]["id"])["nodes"]
    assert first == [{
        "id": f"{segments[0]['id']}/grown", "name": "grown", "kind": "dataset",
        "meta": "dataset · 3000×2 · float64 · 46.9 KiB", "expandable": False,
    }]
    np.testing.assert_array_equal(run_code(tree.rpc_preview(first[0]["id"]).result["code"], kinds), np.zeros((3000, 2)))
    assert run_code(tree.rpc_preview(segments[1]["id"]).result["code"], kinds) == ["grown"]
    assert tree.rpc_children("run/1/temperature") == {"nodes": [], "more": False, "offset": 0}


def test_dataset_and_group_of_one_name(kinds: labshelf.Shelf) -> None:
    tree = DatasetTree(kinds)
    ids = [n["id"] for n in all_children(tree, "run/1")]
    assert ids[:2] == ["run/1/both", "run/1/both/"]
    assert tree.rpc_preview("run/1/both").result["text"] == "1"
    assert [n["id"] for n in tree.rpc_children("run/1/both/")["nodes"]] == ["run/1/both/inner"]


def test_a_tree_of_one_run(kinds: labshelf.Shelf) -> None:
    with kinds.new_run("later") as run:
        run.put("x", 1)
    tree = DatasetTree(kinds.run(1))
    assert tree.scope == "run/1"
    top = tree.rpc_children("")["nodes"]
    assert [(n["id"], n["expand"]) for n in top] == [("run/1", True)]
    with pytest.raises(RunNotFound, match="this tree shows run 1 only"):
        tree.rpc_children("run/2")
    assert "later" not in tree.fallback_html() and "camera/image" in tree.fallback_html()


def test_selected_is_a_synced_trait(kinds: labshelf.Shelf) -> None:
    tree = DatasetTree(kinds)
    assert tree.trait_metadata("selected", "sync") is True
    seen: list[str] = []
    tree.observe(lambda change: seen.append(change["new"]), "selected")
    tree.selected = "run/1/temperature"
    assert seen == ["run/1/temperature"] and tree.get_state()["selected"] == "run/1/temperature"
    assert tree.get_state()["page_size"] == 100


# -- the message protocol -----------------------------------------------------------------------------


def test_requests_and_answers_through_the_comm(kinds: labshelf.Shelf) -> None:
    tree = CapturedTree(kinds, page_size=3)
    tree._on_request(tree, {"id": "a", "method": "children", "params": {"node": "run/1", "offset": 0}}, [])
    content, buffers = tree.sent[-1]
    assert content["id"] == "a" and buffers == []
    assert [n["id"] for n in content["result"]["nodes"]] == ["run/1/both", "run/1/both/", "run/1/calib"]
    assert content["result"]["more"] is True
    json.dumps(content)  # what goes over the wire is JSON

    tree._on_request(tree, {"id": "b", "method": "preview", "params": {"node": "run/1/camera/image"}}, [])
    content, buffers = tree.sent[-1]
    assert content["id"] == "b" and content["result"]["image"] == 0 and buffers[0].startswith(b"\x89PNG")
    json.dumps(content)

    bad = [
        ({"method": "nope"}, "has no request 'nope'"),
        ({"method": "children", "params": {"node": "runs/1"}}, "'runs/1' is not a node id"),
        ({"method": "children", "params": {"node": "run/1", "offset": -1}}, "offset is an int >= 0, not -1"),
        ({"method": "children", "params": {"node": "run/1", "limit": 5000}}, "limit is an int from 1 to 1000"),
        ({"method": "children", "params": ["run/1"]}, "request params must be an object"),
        ({"method": "children", "params": {"node": "run/1", "bogus": 1}}, "TypeError: "),
        ({"method": "preview", "params": {"node": "run/1/nothing"}}, "run 1 has no dataset or group 'nothing'"),
        ({"method": "preview", "params": {"node": "run/9"}}, "no run 9"),
        ({"method": "preview", "params": {"node": ""}}, "select a run or a dataset to preview it"),
        ({"method": "preview", "params": {"node": "run/1/camera/image#camera/nothing"}}, "has no HDF5 member"),
    ]
    for i, (request, message) in enumerate(bad):
        tree._on_request(tree, {"id": f"e{i}", **request}, [])
        content, buffers = tree.sent[-1]
        assert content["id"] == f"e{i}" and "result" not in content
        assert message in content["error"] and "\n" not in content["error"]
    # A message that is not a request (another view's traffic) is ignored.
    count = len(tree.sent)
    tree._on_request(tree, {"event": "something"}, [])
    assert len(tree.sent) == count


def test_construction_errors(kinds: labshelf.Shelf) -> None:
    with pytest.raises(TypeError, match="DatasetTree shows a Shelf or a Run, not str"):
        DatasetTree("lab.shelf")
    with pytest.raises(ValueError, match="page_size is an int from 1 to 1000"):
        DatasetTree(kinds, page_size=0)


def test_a_damaged_data_file_is_one_error_line(kinds: labshelf.Shelf) -> None:
    tree = CapturedTree(kinds)
    path = kinds.root / kinds.find("camera/image", run=1).storage.files[0]
    path.write_bytes(b"not hdf5")
    tree._on_request(tree, {"id": "x", "method": "children", "params": {"node": "run/1/camera/image"}}, [])
    content, _ = tree.sent[-1]
    assert content["id"] == "x" and "error" in content and "\n" not in content["error"]
    # The registry's thumbnail still previews: no data file is opened for it.
    assert tree.rpc_preview("run/1/camera/image").buffers[0].startswith(b"\x89PNG")


# -- the JavaScript ----------------------------------------------------------------------------------


@pytest.mark.parametrize("widget", ["tree", "gallery", "live"])
def test_widget_javascript_parses(widget: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed to check the widgets' JavaScript"
    from labshelf.widgets import BigNumber, Gallery

    source = {"tree": DatasetTree._esm, "gallery": Gallery._esm, "live": BigNumber._esm}[widget]
    assert "export default" in source and "function makeRequester" in source
    module = tmp_path / f"{widget}.mjs"
    module.write_text(source)
    result = subprocess.run([node, "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- display metadata ----------------------------------------------------------------------------------


def test_the_tree_shows_titles_units_and_formatted_previews(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("scan") as run:
        run.put("delay", 2.5e-12, unit="ps", scale=1e-12, precision=1, title="Pump delay", description="after the probe")
        run.put("frame", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 10)
        run.put("plain", 1.5)
    shelf.describe("frame", unit="ADU", scale=10, precision=0)
    tree = CapturedTree(shelf)
    nodes = {n["id"]: n for n in tree.rpc_children("run/1")["nodes"]}
    assert nodes["run/1/delay"]["title"] == "Pump delay" and nodes["run/1/delay"]["unit"] == "ps"
    assert nodes["run/1/delay"]["description"] == "after the probe"
    assert set(nodes["run/1/plain"]) == {"id", "name", "kind", "meta", "expandable"}
    preview = tree.rpc_preview("run/1/delay").result
    assert preview["text"] == "2.5 ps" and ("stored value", "2.5e-12") in preview["fields"]
    frame = tree.rpc_preview("run/1/frame")
    assert frame.result["display"] == {"unit": "ADU", "scale": 10.0, "precision": 0} and frame.buffers
    assert ("mean", "2048 ADU") in frame.result["fields"]  # 20475 stored, shown / 10 with no digit after the point
    pixel = tree.rpc_pixel("run/1/frame", 5, 1)
    assert pixel["value"] == (64 + 5) * 10 and pixel["text"] == "69 ADU"
    assert tree.rpc_preview("run/1/plain").result["text"] == "1.5" and "display" not in tree.rpc_preview("run/1/plain").result
    # The static fallback lists names as before.
    assert "delay" in tree.fallback_html()


def test_javascript_formats_values_as_python_does(tmp_path: Path) -> None:
    # tree.js, gallery.js and live.js format colour scales and pixels in the browser: the same
    # rule as DisplayMeta.format, checked value by value against Python.
    from labshelf.registry.meta import DisplayMeta

    node = shutil.which("node")
    assert node is not None, "node is needed to check the widgets' JavaScript"
    module = tmp_path / "tree.mjs"
    module.write_text(DatasetTree._esm)
    values = [0, 1, 7, -3, 0.5, 2.5, -0.5, 0.125, 1.005, 1 / 3, 2.5e-12, 1234567.891, 123456.4, 1e-5, 0.0001, -0.000123456789, 1e22, 300.25,
              float("nan"), float("inf"), float("-inf")]
    metas = [
        DisplayMeta("x"), DisplayMeta("x", unit="ps", scale=1e-12, precision=2), DisplayMeta("x", precision=0),
        DisplayMeta("x", unit="V"), DisplayMeta("x", scale=1e3), DisplayMeta("x", unit="mm", scale=1e-3, precision=4),
    ]
    cases = [{"value": v, "display": m.fields()} for m in metas[1:] for v in values]
    script = (
        f"import {{ formatShown }} from {module.as_uri()!r};\n"
        "const cases = JSON.parse(process.argv[1]);\n"
        "console.log(JSON.stringify(cases.map((c) => formatShown(c.value, c.display))));\n"
    )
    encoded = json.dumps(cases).replace("NaN", '"NaN"').replace("-Infinity", '"-inf"').replace("Infinity", '"inf"')
    encoded_script = script.replace("JSON.parse(process.argv[1])",
                                    "JSON.parse(process.argv[1]).map((c) => ({...c, value: typeof c.value === 'string' "
                                    "? {NaN: NaN, inf: Infinity, '-inf': -Infinity}[c.value] : c.value}))")
    done = subprocess.run([node, "--input-type=module", "-e", encoded_script, encoded], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    expected = [m.format(v, unit=True) for m in metas[1:] for v in values]
    assert shown == expected
