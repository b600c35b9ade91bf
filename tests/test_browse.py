"""labshelf.browse, called directly as a REST handler would: run pages, children, previews, code, search, hostile ids.

Every test runs on SQLite and PostgreSQL.  Answers are checked through
``to_json()`` serialised as strict JSON (no NaN), since that is what front
ends receive; code snippets are executed (``exec``, for the test only) in a
namespace where they open the shelf themselves, and compared with the value.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image
from sqlalchemy import insert, select

import labshelf
from _shelves import BACKENDS, make_shelf, require_postgres
from labshelf.browse import Browser, node_id, parse_node
from labshelf.browse.nodes import MAX_RUN
from labshelf.errors import (
    ComponentNotFound,
    CorruptDataset,
    DatasetNotFound,
    InvalidName,
    InvalidParameter,
    QuerySyntaxError,
    RunNotFound,
    ShelfError,
    UnsupportedValue,
)
from labshelf.registry.schema import datasets


def as_json(record: Any) -> Any:
    """What a front end receives: the record's JSON, through strict JSON."""
    return json.loads(json.dumps(record.to_json(), allow_nan=False))


def run_snippet(browser: Browser, node: str) -> Any:
    """Run a node's code as a notebook cell would (setup opens the shelf anew); the value it gives."""
    snippet = browser.code(node)
    namespace: dict[str, Any] = {}
    exec(snippet.setup, namespace)
    try:
        if "\n" in snippet.code:
            exec(snippet.code, namespace)
            return namespace["value"]
        return eval(snippet.code, namespace)
    finally:
        namespace["shelf"].close()


def png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG"
        return picture.size


# -- a shelf of every kind --------------------------------------------------------------------------


@dataclasses.dataclass
class Calibration:
    """A composite: stored component by component."""

    gain: float
    offsets: np.ndarray


#: A data ID value written to break out of a string in a snippet, were it not quoted.
EVIL = "'); INJECTED = 1; ('"


@pytest.fixture
def kinds(shelf: labshelf.Shelf) -> labshelf.Shelf:
    rng = np.random.default_rng(11)
    with shelf.new_run("kinds", {"gain": 2}) as run:
        run.put("temperature", 301.25)
        run.put("label", "first try")
        run.put("scan/x", np.linspace(0, 1, 11))  # inline
        run.put("trace", rng.normal(size=5000))  # a data file
        run.put("long", np.arange(1_200_000, dtype=np.float32))  # more than a preview reads
        run.put("camera/image", rng.integers(0, 4000, (200, 300)).astype(np.uint16))
        run.put("colour", rng.integers(0, 255, (40, 60, 3)).astype(np.uint8))
        run.put("spectrum", xr.Dataset({"signal": ("energy", np.arange(5.0))}, coords={"energy": np.linspace(1, 2, 5)}))
        run.put("array", xr.DataArray(np.arange(4.0), dims="x"))
        run.put("peaks", pd.DataFrame({"height": [1.0, 2.5, 3.0, 4.0, 5.0, 6.0], "name": list("abcdef")}))
        run.put("pmt", 7.5, data_id={"channel": 2})
        run.put("pmt", 8.5, data_id={"channel": "x"})
        run.put("odd=(1)+(2)", 3, data_id={"det": EVIL})
        run.put("grown", np.zeros((3000, 2)))
        run.append("grown", np.ones((3000, 2)))
        run.put("calib", Calibration(2.5, np.arange(3.0)))
        run.put("calib", Calibration(3.5, np.arange(2.0)), data_id={"detector": 4})
    with shelf.new_run("second") as run:
        run.put("camera/image", np.ones((32, 32), dtype=np.float32))
        run.put("scan/x", np.arange(3.0))
    return shelf


# -- run pages --------------------------------------------------------------------------------------


def test_runs_page_sorts_filters_and_counts(kinds: labshelf.Shelf) -> None:
    for i in range(10):  # runs 3..12: temperature 290..299
        with kinds.new_run("more") as run:
            run.put("temperature", 290.0 + i)
    kinds.annotate(12, comment="warm", tags=["good"])
    browser = Browser(kinds)
    data = as_json(browser.runs())
    assert data["total"] == 12 and data["offset"] == 0
    assert data["runs"] == list(range(1, 13))
    assert data["columns"][:6] == ["start", "end", "status", "experiment", "comment", "tags"]
    assert data["kinds"]["start"] == "time" and data["kinds"]["camera/image"] == "image"
    assert data["kinds"]["tags"] == "tags" and data["kinds"]["temperature"] == "number"
    start = data["cells"][0][0]
    assert start.endswith("Z") and start.startswith(kinds.run(1).start.strftime("%Y-%m-%dT%H:%M"))
    last = data["cells"][11]
    assert last[4] == "warm" and last[5] == ["good"]

    # Run 1 (301.25) and runs 9..12 (296..299) are above 295.
    hot = browser.runs("temperature > 295", sort=[["temperature", False]], columns=["temperature", "experiment"], limit=3)
    assert hot.total == 5 and list(hot.runs) == [1, 12, 11] and hot.columns == ("temperature", "experiment")
    assert [list(row) for row in hot.cells] == [[301.25, "kinds"], [299.0, "more"], [298.0, "more"]]
    assert dict(hot.kinds) == {"temperature": "number", "experiment": "text"}
    rest = browser.runs("temperature > 295", sort=[["temperature", False]], columns=["temperature"], offset=3, limit=3)
    assert list(rest.runs) == [10, 9] and rest.total == 5
    everything = browser.runs(sort=[["experiment", True], ["start", True]], columns=["experiment"], limit=1000)
    assert list(everything.runs) == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 2]

    epoch = browser.runs(columns=["start", "end"], limit=1, times="epoch")
    assert epoch.cells[0][0] == pytest.approx(kinds.run(1).start.timestamp())


def test_runs_page_thumbnails_travel_beside_the_cells(kinds: labshelf.Shelf) -> None:
    page = Browser(kinds).runs(columns=["camera/image", "temperature"])
    assert [row[0] for row in page.cells] == [{"png": 0}, {"png": 1}]
    assert page.thumbnails[0] == kinds.find("camera/image", run=1).summary
    data = as_json(page)
    assert [base64.b64decode(t) for t in data["thumbnails"]] == list(page.thumbnails)
    assert data["cells"][1][1] is None  # run 2 has no temperature: null, never NaN


def test_runs_page_errors_say_where(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    with pytest.raises(QuerySyntaxError) as raised:
        browser.runs("temperature > ")
    assert raised.value.position == len("temperature > ") and raised.value.expression == "temperature > "
    with pytest.raises(QuerySyntaxError) as raised:
        browser.runs("tempreature > 3")
    assert "did you mean 'temperature'" in str(raised.value)
    with pytest.raises(QuerySyntaxError, match="unknown column 'nope'"):
        browser.runs(sort=[["nope", True]])
    with pytest.raises(QuerySyntaxError, match=r"\[column, ascending\] pairs"):
        browser.runs(sort=[["temperature", "up"]])
    with pytest.raises(QuerySyntaxError, match="unknown column 'tempreature'; did you mean 'temperature'"):
        browser.runs(columns=["tempreature"])
    with pytest.raises(QuerySyntaxError, match="a list of column names"):
        browser.runs(columns="temperature")
    for bad in ({"offset": -1}, {"limit": 1001}, {"offset": True}, {"limit": "5"}, {"offset": 2**70}):
        with pytest.raises(InvalidParameter):
            browser.runs(**bad)
    with pytest.raises(InvalidParameter, match="times are iso or epoch"):
        browser.runs(times="local")


def test_runs_page_sees_new_runs_and_columns(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    assert "fresh" not in browser.column_kinds()
    version = browser.version()
    with kinds.new_run("later") as run:
        run.put("fresh", 1)
    assert browser.version() != version
    page = browser.runs(columns=["fresh"])
    assert page.total == 3 and [row[0] for row in page.cells] == [None, None, 1]


# -- children ---------------------------------------------------------------------------------------

#: Datasets of the big run, on each backend (rows copied in one insert: the listing only reads rows).
BIG = 10_000


@pytest.fixture(scope="module", params=BACKENDS)
def big(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[labshelf.Shelf]:
    """Run 1: 10,000 scalars d00000.. (copies of one put) plus groups and data IDs; run 2 small."""
    if request.param == "postgres":
        require_postgres()
    shelf = make_shelf(request.param, tmp_path_factory.mktemp("big"), request)
    with shelf.new_run("many") as run:
        for name in ("scan/x", "scan/y", "scan/deep/a", "g1/y", "Mixed/Case", "a_b", "axb", "hash#tag"):
            run.put(name, 1)
        run.put("pmt", 1.0, data_id={"channel": 1})
        run.put("pmt", 2.0, data_id={"channel": 2})
        run.put("seed", 0)
    with shelf.new_run("few") as run:
        run.put("other", 1)
        run.put("scan/x", 2)
    engine = shelf._registry.db.engine
    with engine.begin() as conn:
        seed = dict(conn.execute(select(datasets).where(datasets.c.run == 1, datasets.c.name == "seed")).one()._mapping)
        copies = [{**{k: v for k, v in seed.items() if k != "id"}, "name": f"d{i:05d}"} for i in range(BIG)]
        conn.execute(insert(datasets), copies)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE datasets")  # the planner learns of the 10,000 rows now
    assert shelf.get("d09999", run=1) == 0
    yield shelf
    shelf.close()


def walk(browser: Browser, node: str, limit: int, search: str = "") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = as_json(browser.children(node, offset=len(found), limit=limit, search=search))
        assert page["offset"] == len(found)
        found += page["nodes"]
        if not page["more"]:
            return found
        assert len(page["nodes"]) == limit


def test_children_of_a_run_of_10000_datasets_page_in_byte_order(big: labshelf.Shelf) -> None:
    browser = Browser(big)
    listed = walk(browser, "run/1", limit=500)
    ids = [n["id"] for n in listed]
    assert ids == [
        "run/1/Mixed", "run/1/a_b", "run/1/axb", *(f"run/1/d{i:05d}" for i in range(BIG)), "run/1/g1",
        "run/1/hash#tag", "run/1/pmt[channel=1]", "run/1/pmt[channel=2]", "run/1/scan", "run/1/seed",
    ]
    by_id = {n["id"]: n for n in listed}
    assert by_id["run/1/d00007"] == {
        "id": "run/1/d00007", "name": "d00007", "kind": "scalar", "meta": "scalar · int · 8 B", "expandable": False,
    }
    assert by_id["run/1/scan"]["kind"] == "group" and by_id["run/1/scan"]["expandable"]
    # A page far down, asked for first by a new browser (no cursor remembered), then again.
    fresh = Browser(big)
    page = fresh.children("run/1", offset=9_000, limit=100)
    assert [n.id for n in page.nodes] == ids[9_000:9_100] and page.more
    assert fresh.children("run/1", offset=9_000, limit=100) == page
    assert fresh.children("run/1", offset=len(ids), limit=10).to_json() == {"nodes": [], "more": False, "offset": len(ids)}
    assert [n.id for n in browser.children("run/1/scan").nodes] == ["run/1/scan/deep", "run/1/scan/x", "run/1/scan/y"]


def test_children_search_within_a_run_and_across_runs(big: labshelf.Shelf) -> None:
    browser = Browser(big)
    assert [n["id"] for n in walk(browser, "run/1", 4, search="D0999")] == [f"run/1/d0999{i}" for i in range(10)]
    assert [n.id for n in browser.children("run/1", search="a_b").nodes] == ["run/1/a_b"]  # "_" taken literally
    assert browser.children("run/1", search="%").nodes == ()
    runs = browser.children("", search="scan/x")
    assert [(n.id, n.expand) for n in runs.nodes] == [("run/2", True), ("run/1", True)]
    assert [n.id for n in browser.children("", search="other").nodes] == ["run/2"]


def test_name_search_across_runs_pages(big: labshelf.Shelf) -> None:
    browser = Browser(big)
    hits = browser.search("scan/")
    assert [n.id for n in hits.nodes] == ["run/2/scan/x", "run/1/scan/deep/a", "run/1/scan/x", "run/1/scan/y"]
    assert hits.nodes[0].meta.startswith("run 2 · scalar") and hits.nodes[0].name == "scan/x"
    glob = browser.search("d0000?")
    assert [n.name for n in glob.nodes] == [f"d0000{i}" for i in range(10)]
    page = browser.search("d0", offset=9_990, limit=20)
    assert [n.name for n in page.nodes] == [f"d0{i:04d}" for i in range(9_990, 10_000)] and not page.more
    first = browser.search("d0", limit=100)
    assert len(first.nodes) == 100 and first.more
    assert [n.name for n in browser.search("*/Y").nodes] == ["g1/y", "scan/y"]
    assert [n.id for n in browser.search("pmt").nodes] == ["run/1/pmt[channel=1]", "run/1/pmt[channel=2]"]
    with pytest.raises(InvalidParameter, match="needs a pattern"):
        browser.search("  ")


# -- what is inside a dataset -------------------------------------------------------------------------


def test_children_inside_datasets(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    spectrum = as_json(browser.children("run/1/spectrum"))["nodes"]
    assert [(n["id"], n["kind"]) for n in spectrum] == [
        ("run/1/spectrum#energy", "coord"), ("run/1/spectrum#signal", "variable"), ("run/1/spectrum#attrs", "component"),
    ]
    peaks = [n.id for n in browser.children("run/1/peaks").nodes]
    assert peaks == ["run/1/peaks#height", "run/1/peaks#name", "run/1/peaks#index"]
    assert [n.id for n in browser.children("run/1/calib").nodes] == ["run/1/calib#gain", "run/1/calib#offsets"]
    image = browser.children("run/1/camera/image").nodes
    assert [(n.id, n.kind, n.expandable) for n in image] == [("run/1/camera/image#camera", "group", True)]
    inner = browser.children("run/1/camera/image#camera/image")
    assert inner.nodes[0].id == "run/1/camera/image#camera/image@CLASS" and inner.nodes[0].meta == "attr · 'IMAGE'"
    files = kinds.find("grown", run=1).storage.files
    segments = browser.children("run/1/grown").nodes
    assert [n.id for n in segments] == [f"run/1/grown#{Path(f).name}" for f in files] and len(files) == 2
    assert [n.name for n in browser.children(segments[1].id).nodes] == ["grown"]
    assert browser.children("run/1/temperature").nodes == ()
    assert browser.children("run/1/array").nodes[0].name == "(values)"


def test_a_hdf5_link_out_of_its_file_is_listed_never_followed(kinds: labshelf.Shelf, tmp_path: Path) -> None:
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f["secret"] = np.arange(5)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.arange(4, dtype="<i8").tobytes())
    path = kinds.root / kinds.find("trace", run=1).storage.files[0]
    with h5py.File(path, "r+") as f:
        f["escape"] = h5py.ExternalLink(str(outside), "/secret")
        f["loop"] = h5py.SoftLink("/loop")
        f.create_dataset("external", shape=(4,), dtype="<i8", external=[(str(raw), 0, 32)])
    browser = Browser(kinds)
    listed = {n.name: n for n in browser.children("run/1/trace").nodes}
    for name in ("escape", "external"):  # a link to another file; values kept in another file
        assert listed[name].kind == "link" and listed[name].meta == "refers outside the file (not read)"
    assert listed["loop"].kind == "link" and listed["loop"].meta == "broken link"
    for node in ("run/1/trace#escape", "run/1/trace#escape/x", "run/1/trace#external"):
        with pytest.raises(CorruptDataset, match="never refer outside themselves"):
            browser.preview(node)
    with pytest.raises(CorruptDataset, match="loop"):
        browser.preview("run/1/trace#loop")
    with pytest.raises(ComponentNotFound, match="has no HDF5 member"):
        browser.preview("run/1/trace#nothing")


# -- previews ------------------------------------------------------------------------------------------


def test_previews_of_each_kind(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    scalar = as_json(browser.preview("run/1/temperature"))
    assert scalar["text"] == "301.25" and ["stored", "in the registry"] in scalar["fields"] and scalar["kind"] == "scalar"
    assert browser.preview("run/1/label").text == "'first try'"

    inline = browser.preview("run/1/scan/x")
    assert inline.text is not None and inline.text.startswith("array([0. , 0.1, 0.2") and ("max", "1") in inline.fields

    trace = browser.preview("run/1/trace")
    value = kinds.get("trace", run=1)
    assert trace.text is None and ("mean", f"{value.mean():.6g}") in trace.fields and trace.note is None

    long = browser.preview("run/1/long")
    assert long.note == "min, max and mean of the first 1,000,000 of 1,200,000 values"
    assert ("max", f"{999_999.0:.6g}") in long.fields

    table = as_json(browser.preview("run/1/peaks"))
    assert table["table"]["columns"] == ["", "height", "name"] and table["table"]["dtypes"][1] == "float64"
    assert table["table"]["rows"][:2] == [["0", "1", "a"], ["1", "2.5", "b"]] and len(table["table"]["rows"]) == 5
    assert ["rows", "6"] in table["fields"]

    spectrum = browser.preview("run/1/spectrum")
    assert spectrum.text is not None and spectrum.text.startswith("<xarray.Dataset>")
    assert "labshelf_class" not in spectrum.text and ("components", "signal, coords.energy, attrs") in spectrum.fields

    image = browser.preview("run/1/camera/image")
    assert ("shape", "200×300") in image.fields and ("mean", f"{kinds.get('camera/image', run=1).mean():.6g}") in image.fields

    run = browser.preview("run/1")
    assert run.code == "shelf.run(1)" and ("params", '{"gain": 2}') in run.fields and ("datasets", "16") in run.fields
    group = browser.preview("run/1/scan")
    assert group.kind == "group" and ("datasets", "1") in group.fields
    shelf = browser.preview("")
    assert shelf.kind == "shelf" and ("runs", "2") in shelf.fields and "labshelf.open(" in shelf.code


def test_previews_of_members_and_components(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    energy = browser.preview("run/1/spectrum#energy")
    assert energy.kind == "variable" and energy.text == "array([1.  , 1.25, 1.5 , 1.75, 2.  ])"
    assert ("dims", "energy: 5") in energy.fields
    assert browser.preview("run/1/array#__xarray_dataarray_variable__").title == "array#(values) (run 1)"
    height = browser.preview("run/1/peaks#height")
    assert height.kind == "column" and ("mean", f"{np.mean([1.0, 2.5, 3.0, 4.0, 5.0, 6.0]):.6g}") in height.fields
    index = browser.preview("run/1/peaks#index")
    assert index.kind == "component" and index.text is not None and "Index" in index.text
    gain = browser.preview("run/1/calib#gain")
    assert gain.kind == "component" and gain.text == "2.5" and gain.code == "shelf.get('calib.gain', run=1)"
    other = browser.preview("run/1/calib[detector=4]#gain")
    assert other.text == "3.5" and other.code == "shelf.get('calib.gain', run=1, data_id={'detector': 4})"
    offsets = browser.preview("run/1/calib#offsets")
    assert offsets.text == "array([0., 1., 2.])" and ("max", "2") in offsets.fields
    member = browser.preview("run/1/camera/image#camera/image")
    top = int(kinds.get("camera/image", run=1).max())
    assert member.kind == "dataset" and ("shape", "200×300") in member.fields and ("max", str(top)) in member.fields
    assert member.picture is not None and (member.picture.width, member.picture.height) == (150, 100)  # 256 px at most
    attr = browser.preview("run/1/camera/image#camera/image@CLASS")
    assert attr.kind == "attr" and attr.text == "'IMAGE'"
    files = kinds.find("grown", run=1).storage.files
    segment = browser.preview(f"run/1/grown#{Path(files[0]).name}")
    assert segment.kind == "file" and ("members", "grown") in segment.fields


@pytest.mark.parametrize("size", [None, 16, 64, 128, 129, 512, 2048])
def test_image_previews_are_pngs_of_the_size_asked_for(kinds: labshelf.Shelf, size: int | None) -> None:
    preview = Browser(kinds).preview("run/1/camera/image", size=size)
    picture = preview.picture
    assert picture is not None
    width, height = png_size(picture.png)
    assert (width, height) == (picture.width, picture.height)
    data = as_json(preview)["picture"]
    assert data["width"] == width and data["height"] == height and data["bytes"] == len(picture.png)
    if size is None:
        assert picture.png == kinds.find("camera/image", run=1).summary  # the registry's thumbnail, as it is
        assert max(width, height) == 128
    else:
        # Shrunk by a whole factor (block means): the longest side at most
        # ``size`` and more than half of it; from the thumbnail up to 128
        # pixels (no data file opened), beyond that from the image (300x200).
        assert size / 2 < max(width, height) <= size or max(width, height) == 300 <= size
        assert picture.shape == (200, 300) and picture.factor == math.ceil(300 / max(width, height))
        assert abs(width / height - 1.5) < 0.1
    colour = Browser(kinds).preview("run/1/colour", size=size).picture
    assert colour is not None
    longest = max(png_size(colour.png))
    assert longest == 60 if size is None or size >= 60 else size / 2 < longest <= size


def test_a_huge_image_is_read_with_a_stride(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("huge") as run:
        run.put("frame", np.arange(4100 * 2100, dtype=np.float32).reshape(4100, 2100))
    picture = Browser(shelf).preview("run/1/frame", size=512).picture
    assert picture is not None
    # 8.6 M pixels: every 2nd row and column is read (2.2 M), then shrunk 5x to fit 512.
    assert picture.shape == (4100, 2100) and picture.factor == 2 * 5
    assert png_size(picture.png) == (picture.width, picture.height) == (210, 410)


def test_preview_arguments_are_checked(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    for size in (0, 15, 2049, True, "512", 1.5):
        with pytest.raises(InvalidParameter, match="size is an int from 16 to 2048"):
            browser.preview("run/1/camera/image", size=size)


# -- code ------------------------------------------------------------------------------------------------


def equal(a: Any, b: Any) -> bool:
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, (xr.DataArray, xr.Dataset, xr.Variable)):
        return bool(a.identical(b))
    if isinstance(a, (pd.DataFrame, pd.Series, pd.Index)):
        return bool(a.equals(b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def test_code_snippets_load_what_they_name(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    get = kinds.get
    expected: dict[str, Any] = {
        "run/1/temperature": 301.25,
        "run/1/label": "first try",
        "run/1/scan/x": np.linspace(0, 1, 11),
        "run/1/trace": get("trace", run=1),
        "run/1/long": np.arange(1_200_000, dtype=np.float32),
        "run/1/camera/image": get("camera/image", run=1),
        "run/1/pmt[channel=2]": 7.5,
        "run/1/pmt[channel='x']": 8.5,
        "run/1/grown": np.concatenate([np.zeros((3000, 2)), np.ones((3000, 2))]),
        "run/1/peaks": get("peaks", run=1),
        "run/1/spectrum": get("spectrum", run=1),
        "run/1/array": get("array", run=1),
        "run/1/calib": get("calib", run=1),
        "run/1/spectrum#energy": get("spectrum.coords.energy", run=1),
        "run/1/spectrum#signal": get("spectrum.signal", run=1),
        "run/1/spectrum#attrs": {},
        "run/1/peaks#height": get("peaks.columns.height", run=1),
        "run/1/peaks#index": get("peaks.index", run=1),
        "run/1/calib#gain": 2.5,
        "run/1/calib[detector=4]#offsets": np.arange(2.0),
        "run/1/calib[detector=4]": Calibration(3.5, np.arange(2.0)),
        "run/1/calib#offsets": np.arange(3.0),
        "run/1/array#__xarray_dataarray_variable__": get("array", run=1).variable,
        "run/1/camera/image#camera/image": get("camera/image", run=1),
        "run/1/camera/image#camera/image@CLASS": b"IMAGE",
    }
    for node, value in expected.items():
        found = run_snippet(browser, node)
        if node.endswith("__xarray_dataarray_variable__"):
            found = found.variable
        assert equal(found, value), (node, browser.code(node).code)
    snippet = as_json(browser.code("run/1/pmt[channel=2]"))
    assert snippet == {
        "node": "run/1/pmt[channel=2]",
        "code": "shelf.get('pmt', run=1, data_id={'channel': 2})",
        "setup": f"import labshelf\nshelf = labshelf.open({str(kinds.root)!r})",
    }
    assert browser.code("run/1").code == "shelf.run(1)" and browser.code("").code == "shelf"
    assert [r.name for r in run_snippet(browser, "run/1/scan")] == ["scan/x"]
    assert run_snippet(browser, "run/1").number == 1
    segment = browser.children("run/1/grown").nodes[1].id
    assert run_snippet(browser, segment) == ["grown"]
    assert equal(run_snippet(browser, segment + "/grown"), np.ones((3000, 2)))
    # The code in a preview is the node's code.
    assert all(browser.preview(node).code == browser.code(node).code for node in expected)


def test_a_read_only_shelf_is_opened_read_only_by_its_code(kinds: labshelf.Shelf) -> None:
    with labshelf.open(kinds.root, mode="r") as readonly:
        snippet = Browser(readonly).code("run/1/temperature")
        assert snippet.setup.endswith(", mode='r')")
        namespace: dict[str, Any] = {}
        exec(snippet.setup, namespace)
        with namespace["shelf"] as opened:
            assert opened.readonly and eval(snippet.code, namespace) == 301.25


def test_hostile_names_cannot_inject_code(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    node = node_id(1, "odd=(1)+(2)" + "[det=" + repr(EVIL) + "]")
    assert [n.id for n in browser.children("run/1").nodes if n.name.startswith("odd")] == [node]
    namespace: dict[str, Any] = {}
    snippet = browser.code(node)
    exec(snippet.setup, namespace)
    try:
        assert eval(snippet.code, namespace) == 3 and "INJECTED" not in namespace
    finally:
        namespace["shelf"].close()
    # An attribute named to close a string, in a data file someone else wrote.
    path = kinds.root / kinds.find("trace", run=1).storage.files[0]
    evil_attr = "x'] ; INJECTED = 1 #"
    with h5py.File(path, "r+") as f:
        f["trace"].attrs[evil_attr] = 42
    member = f"run/1/trace#trace@{evil_attr}"
    assert member in [n.id for n in browser.children("run/1/trace#trace").nodes]
    namespace = {}
    snippet = browser.code(member)
    exec(snippet.setup, namespace)
    try:
        exec(snippet.code, namespace)
        assert namespace["value"] == 42 and "INJECTED" not in namespace
    finally:
        namespace["shelf"].close()


# -- hostile node ids -----------------------------------------------------------------------------------------

HOSTILE: list[tuple[Any, type[ShelfError]]] = [
    ("/etc/passwd", InvalidName),
    ("..", InvalidName),
    ("run/..", InvalidName),
    ("run/1/..", InvalidName),
    ("run/1/../../etc/passwd", InvalidName),
    ("run/1/./temperature", InvalidName),
    ("run/1//temperature", InvalidName),
    ("run/1/", InvalidName),
    ("RUN/1", InvalidName),
    (" run/1", InvalidName),
    ("run/1 ", InvalidName),
    ("run/-1", InvalidName),
    ("run/0", InvalidName),
    ("run/01", InvalidName),
    ("run/1x", InvalidName),
    ("run/\u0661", InvalidName),  # an Arabic-Indic digit one: isdigit() says yes, SQL would not
    ("run/99999999999999999999999", InvalidName),
    (f"run/{MAX_RUN + 1}", InvalidName),
    (f"run/{MAX_RUN}", RunNotFound),
    ("run/3", RunNotFound),
    ("run/1/temp\x00erature", InvalidName),
    ("run/1\x00", InvalidName),
    ("run/1/temperature\n", InvalidName),
    ("run/1/" + "x" * 5000, InvalidName),
    ("run/1/nothing", DatasetNotFound),
    ("run/1/nothing/", DatasetNotFound),
    ("run/1/temperature.x", InvalidName),
    ("run/1/pmt[channel=2", InvalidName),
    ("run/1/pmt[channel=02]", InvalidName),
    ("run/1/pmt[channel=2, channel=3]", InvalidName),
    ("run/1/pmt[channel=__import__('os')]", InvalidName),
    ("run/1/pmt[2=channel]", InvalidName),
    ("run/1/pmt[channel='\\ud800']", InvalidName),
    ("run/1/pmt[channel='\\U00110000']", InvalidName),
    ("run/1/camera/image#\ud800", InvalidName),
    ("run/1/pmt[channel=3]", DatasetNotFound),
    ("run/1/pmt[channel='2']", DatasetNotFound),
    ("run/1/camera/image#../../etc/passwd", ComponentNotFound),
    ("run/1/camera/image#/etc/passwd", ComponentNotFound),
    ("run/1/camera/image#camera/nothing", ComponentNotFound),
    ("run/1/camera/image#camera/image@NOPE", ComponentNotFound),
    ("run/1/grown#../x.h5", ComponentNotFound),
    ("run/1/spectrum#nope", ComponentNotFound),
    ("run/1/peaks#nope", ComponentNotFound),
    ("run/1/calib#nope", ComponentNotFound),
    ("run/1/temperature#x", ComponentNotFound),
    ("run/1/nothing#x", DatasetNotFound),
    (12, InvalidName),
    (None, InvalidName),
    (["run/1"], InvalidName),
]


@pytest.mark.parametrize(("node", "error"), HOSTILE, ids=[repr(n)[:40] for n, _ in HOSTILE])
def test_hostile_node_ids_give_labshelf_errors(kinds: labshelf.Shelf, node: Any, error: type[ShelfError]) -> None:
    browser = Browser(kinds)
    for ask in (browser.locate, browser.children, browser.preview, browser.code):
        try:
            ask(node)
        except ShelfError as exc:
            assert isinstance(exc, error), (ask.__name__, type(exc), exc)
            assert "\n" not in str(exc) and len(str(exc)) < 600
        else:
            # Locating a member does not open the file; listing, previewing and code do.
            assert ask == browser.locate and error is ComponentNotFound, (ask.__name__, node)
    assert kinds.get("temperature", run=1) == 301.25  # the shelf is untouched and usable


def test_node_ids_round_trip() -> None:
    assert parse_node("").run is None and parse_node("").path == ""
    assert parse_node("run/12/scan/x#a/b@c").path == "scan/x#a/b@c"
    for run, label, member in [(12, "scan/x", None), (3, "pmt[channel='a#b']", None), (1, "image", "camera/image@CLASS")]:
        parsed = parse_node(node_id(run, label, member=member))
        assert parsed.run == run and parsed.path == (label if member is None else f"{label}#{member}")
    assert node_id(4, group="scan") == "run/4/scan" and node_id(4, group="scan", shadowed=True) == "run/4/scan/"
    assert node_id(None) == "" and node_id(7) == "run/7"


def test_a_data_id_holding_hash_and_brackets_is_found(shelf: labshelf.Shelf) -> None:
    awkward = "q'\"\\\nä\x01\U0001f600"  # quotes, a backslash, a newline, non-ASCII, a control character
    with shelf.new_run() as run:
        run.put("pmt", 1, data_id={"channel": "a#b]", "n": -3, "on": True})
        run.put("pmt", 2, data_id={"channel": awkward})
    browser = Browser(shelf)
    first, second = browser.children("run/1").nodes
    assert first.id == "run/1/pmt[channel='a#b]', n=-3, on=True]"
    assert browser.preview(first.id).text == "1"
    found = browser.locate(first.id).ref
    assert found is not None and dict(found.data_id) == {"channel": "a#b]", "n": -3, "on": True}
    assert second.id == f"run/1/pmt[channel={awkward!r}]" and "\n" not in second.id
    assert browser.preview(second.id).text == "2" and browser.code(second.id).code.endswith(f"{{'channel': {awkward!r}}})")


def test_rows_written_badly_by_someone_else_still_list(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("good", 1)
    engine = shelf._registry.db.engine
    with engine.begin() as conn:
        row = dict(conn.execute(select(datasets).where(datasets.c.name == "good")).one()._mapping)
        del row["id"]
        conn.execute(insert(datasets), [{**row, "name": "bad", "data_id": "not json"}, {**row, "name": "bad", "data_id": "[1]"}])
    browser = Browser(shelf)
    nodes = browser.children("run/1").nodes
    assert [n.name for n in nodes] == ["bad[?]", "bad[?]", "good"]
    with pytest.raises(InvalidName):
        browser.preview(nodes[0].id)  # a label no node id reads back
    assert browser.labels(1) == ["bad[?]", "bad[?]", "good"] and browser.data_ids("bad") == []
    assert [n.name for n in browser.search("bad").nodes] == ["bad[?]", "bad[?]"]


def test_paging_arguments_are_checked(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    for bad in ({"offset": -1}, {"offset": 2**63}, {"offset": "0"}, {"limit": 0}, {"limit": 1001}, {"limit": True}):
        with pytest.raises(InvalidParameter):
            browser.children("run/1", **bad)
        with pytest.raises(InvalidParameter):
            browser.search("x", **bad)
    for search in ("a\x00b", "x" * 300, "\udc80"):
        with pytest.raises(InvalidName):
            browser.children("run/1", search=search)
    with pytest.raises(InvalidParameter, match="search is a string"):
        browser.children("run/1", search=3)


# -- names, images, damaged files, summaries --------------------------------------------------------------------


def test_names_and_run_numbers_for_completion(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    assert browser.names("sc") == ["scan/x"]
    assert browser.names("", run=2) == ["camera/image", "scan/x"]
    assert browser.names("ca", limit=2) == ["calib", "calib.gain"]
    assert browser.run_numbers("") == [2, 1] and browser.run_numbers("1") == [1] and browser.run_numbers("3") == []
    assert browser.run_numbers("", name="label") == [1]
    assert browser.run_numbers("x") == [] and browser.run_numbers("\u0661") == []
    assert browser.data_ids("pmt") == [{"channel": "x"}, {"channel": 2}]  # in the order of their JSON text
    with pytest.raises(InvalidParameter):
        browser.names("x", run=2**70)
    for prefix in ("a\x00", "\udc80"):
        with pytest.raises(InvalidName):
            browser.names(prefix)


def test_image_runs_for_the_gallery(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    assert browser.image_runs("camera/image") == [2, 1]
    thumbnails = browser.thumbnails("camera/image", None, [1, 2, 3])
    assert sorted(thumbnails) == [1, 2] and thumbnails[1] == kinds.find("camera/image", run=1).summary
    with pytest.raises(UnsupportedValue, match="'temperature' is a scalar dataset, not an image.*'camera/image'"):
        browser.image_runs("temperature")
    with pytest.raises(DatasetNotFound, match="did you mean 'camera/image'"):
        browser.image_runs("camera/imag")
    with pytest.raises(DatasetNotFound, match="exists only with other data IDs"):
        browser.image_runs("camera/image", {"detector": 1})


def test_a_damaged_data_file_is_one_error_and_the_thumbnail_still_shows(kinds: labshelf.Shelf) -> None:
    path = kinds.root / kinds.find("camera/image", run=1).storage.files[0]
    path.write_bytes(b"not hdf5")
    browser = Browser(kinds)
    for ask in (browser.children, browser.preview):
        with pytest.raises(labshelf.CorruptDataset, match="camera/image"):
            ask("run/1/camera/image#camera")
    assert browser.preview("run/1/camera/image").picture is not None  # from the registry
    path.unlink()
    with pytest.raises(labshelf.CorruptDataset, match="missing"):
        browser.children("run/1/camera/image")


def test_summaries_for_the_html_reprs(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    kinds.annotate(2, comment="hi", tags=["b", "a"])
    latest, total = browser.latest_runs(1)
    assert total == 2 and [(r.number, r.comment, r.tags, r.datasets) for r in latest] == [(2, "hi", ("a", "b"), 2)]
    refs, count = browser.first_datasets(1, 3)
    assert [r.name for r in refs] == ["temperature", "label", "scan/x"] and count == 20  # the calibs' parts count
    assert browser.labels(1, 4) == ["array", "calib[detector=4]", "calib", "camera/image"]  # by data ID text


# -- display metadata --------------------------------------------------------------------------------


def test_described_datasets_carry_their_metadata_in_nodes_and_previews(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    nodes_before = {n["id"]: n for n in as_json(browser.children("run/1", limit=100))["nodes"]}
    label_before = as_json(browser.preview("run/1/label"))
    kinds.describe("temperature", unit="K", precision=1, title="Sample/Temperature", description="on the cold finger")
    kinds.describe("scan/x", unit="mm", scale=1e-3, precision=2)
    kinds.describe("trace", unit="mV", scale=1e-3)
    kinds.describe("camera/image", unit="counts")
    kinds.describe("pmt", data_id={"channel": 2}, unit="mV")

    nodes = {n["id"]: n for n in as_json(browser.children("run/1", limit=100))["nodes"]}
    temperature = nodes["run/1/temperature"]
    assert (temperature["unit"], temperature["title"], temperature["description"]) == ("K", "Sample/Temperature", "on the cold finger")
    assert nodes["run/1/pmt[channel=2]"]["unit"] == "mV" and "unit" not in nodes["run/1/pmt[channel='x']"]
    assert nodes["run/1/label"] == nodes_before["run/1/label"]  # nothing said: the node as before
    assert {k: v for k, v in temperature.items() if k not in ("unit", "title", "description")} == nodes_before["run/1/temperature"]
    scan = as_json(browser.children("run/1/scan"))["nodes"]
    assert scan[0]["id"] == "run/1/scan/x" and scan[0]["unit"] == "mm" and "title" not in scan[0]
    found = as_json(browser.search("scan/x"))["nodes"]
    assert [n.get("unit") for n in found] == ["mm", "mm"]

    scalar = as_json(browser.preview("run/1/temperature"))
    assert scalar["text"] == "301.2 K"  # 301.25 with one digit after the point (half to even), and its unit
    for fact in (["unit", "K"], ["display precision", "1"], ["title", "Sample/Temperature"],
                 ["description", "on the cold finger"], ["stored value", "301.25"]):
        assert fact in scalar["fields"]
    assert scalar["display"] == {"unit": "K", "precision": 1, "title": "Sample/Temperature", "description": "on the cold finger"}

    inline = browser.preview("run/1/scan/x")
    assert inline.text is not None and inline.text.startswith("array([   0.00,  100.00,  200.00")  # mm, 2 digits
    assert inline.note == "values shown divided by the scale 0.001, in mm (stored as written)"
    assert ("max", "1000.00 mm") in inline.fields and ("min", "0.00 mm") in inline.fields

    trace = browser.preview("run/1/trace")
    value = kinds.get("trace", run=1)
    assert ("mean", f"{value.mean() / 1e-3:.6g} mV") in trace.fields and trace.note is None

    image = as_json(browser.preview("run/1/camera/image"))
    assert ["unit", "counts"] in image["fields"] and image["display"] == {"unit": "counts"}
    assert ["mean", f"{kinds.get('camera/image', run=1).mean():.6g} counts"] in image["fields"]
    pixel = as_json(browser.pixel("run/1/camera/image", 3, 2))
    assert pixel["value"] == int(kinds.get("camera/image", run=1)[2, 3]) and pixel["text"] == f"{pixel['value']} counts"
    assert "text" not in as_json(browser.pixel("run/1/colour", 0, 0))  # an image nobody described

    # Formatted, never changed: the stored values are as written.
    assert kinds.get("temperature", run=1) == 301.25
    np.testing.assert_array_equal(kinds.get("scan/x", run=1), np.linspace(0, 1, 11))
    assert as_json(browser.preview("run/1/label")) == label_before


def test_previews_follow_the_metadata_as_they_change(kinds: labshelf.Shelf) -> None:
    browser = Browser(kinds)
    before = as_json(browser.preview("run/1/temperature"))
    pixel_before = as_json(browser.pixel("run/2/camera/image", 1, 1))
    node_before = as_json(browser.children("run/1", limit=100))
    kinds.describe("temperature", unit="K")
    said = as_json(browser.preview("run/1/temperature"))
    assert said["text"] == "301.25 K" and ["stored value", "301.25"] not in said["fields"]  # a unit only: nothing rounded
    kinds.describe("camera/image", scale=0.5, precision=1)
    assert as_json(browser.pixel("run/2/camera/image", 1, 1))["text"] == "2.0"  # 1.0 / 0.5, no unit said
    # Cleared again: exactly what was shown before.
    kinds.describe("temperature", unit=None)
    kinds.describe("camera/image", scale=None, precision=None)
    assert as_json(browser.preview("run/1/temperature")) == before
    assert as_json(browser.pixel("run/2/camera/image", 1, 1)) == pixel_before
    assert as_json(browser.children("run/1", limit=100)) == node_before

