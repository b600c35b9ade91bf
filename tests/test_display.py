"""HTML reprs of Shelf, Run and DatasetRef: sections, thumbnails, escaping, caps, no data file opened."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import labshelf
from labshelf import display

PNG = "src='data:image/png;base64,iVBOR"  # base64 of the PNG signature


@pytest.fixture
def lab(shelf: labshelf.Shelf) -> labshelf.Shelf:
    """Twelve runs with a scalar, an image, an array and data IDs; run 1 with awkward text."""
    rng = np.random.default_rng(1)
    with shelf.new_run("<script>alert(1)</script>", {"<b>key</b>": "a & b", "n": 1}) as run:
        run.put("temperature", 301.5)
        run.put("camera/image", rng.integers(0, 4000, (40, 30), dtype=np.uint16))
        run.put("scan/x", np.linspace(0.0, 1.0, 5000))
        run.put("pmt", 7, data_id={"detector": "<i>left</i>"})
        run.put("note", "<img src=x onerror=alert(1)>")
    for i in range(2, 13):
        with shelf.new_run("rabi_scan" if i < 12 else "<em>last</em>", {"n": i}) as run:
            run.put("temperature", 300.0 + i)
    shelf.annotate(12, comment="focus <drifted>", tags=["good"])
    return shelf


def rows(html: str, table: int = 0) -> int:
    """Rows in the body of the n-th table with class ls-table."""
    bodies = re.findall(r"<table class='ls-table'>.*?<tbody>(.*?)</tbody>", html, flags=re.S)
    return bodies[table].count("<tr>")


def test_run_html_has_sections_thumbnail_and_facts(lab: labshelf.Shelf) -> None:
    html = lab.run(1)._repr_html_()
    assert html.startswith("<style>") and display.css() in html
    assert "<script>" not in html.split("</style>", 1)[1]  # only our own markup
    for section in ("metadata", "params (2)", "datasets (5)"):
        assert f"<summary>{section}</summary>" in html
    assert html.count("<details") == 3
    assert PNG in html
    assert "camera/image" in html and "40\u00d730" in html and "uint16" in html
    assert "scan/x" in html and "5000" in html and "39.1 KiB" in html  # 5000 float64
    assert "mean 0.5" in html  # an array's summary is its mean
    assert "finished" in html


def test_everything_is_escaped(lab: labshelf.Shelf) -> None:
    run_html = lab.run(1)._repr_html_()
    body = run_html.split("</style>", 1)[1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;b&gt;key&lt;/b&gt;" in body and "a &amp; b" in body
    assert "&lt;i&gt;left&lt;/i&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    for raw in ("<script", "<b>key", "<i>left", "<img src=x"):
        assert raw not in body
    shelf_body = lab._repr_html_().split("</style>", 1)[1]
    assert "&lt;em&gt;last&lt;/em&gt;" in shelf_body and "focus &lt;drifted&gt;" in shelf_body
    assert "<em>" not in shelf_body and "<drifted>" not in shelf_body


def test_shelf_html_lists_the_latest_runs(lab: labshelf.Shelf) -> None:
    html = lab._repr_html_()
    assert "labshelf.Shelf" in html and lab.where in html
    assert "latest runs (10 of 12)" in html
    assert rows(html) == display.LATEST_RUNS
    assert "2 older runs" in html
    body = html.split("<tbody>", 2)[2]
    # Newest first, with the dataset count, comment and tags of each run.
    assert body.index("<td class='ls-num'>12</td>") < body.index("<td class='ls-num'>3</td>")
    assert "<td>good</td>" in body
    for fact in ("backend", "runs", "datasets", "root"):
        assert f"<th>{fact}</th>" in html
    assert "<td>16</td>" in html  # datasets: 5 + 11


def test_shelf_html_of_an_empty_and_of_a_closed_shelf(tmp_path: Any) -> None:
    empty = labshelf.create(tmp_path / "empty.shelf")
    assert "no runs yet" in empty._repr_html_()
    empty.close()
    html = empty._repr_html_()
    assert "closed" in html and "<details" not in html


def test_ref_html_shows_storage_summary_and_the_call(lab: labshelf.Shelf) -> None:
    image = lab.find("camera/image", run=1)
    html = image._repr_html_()
    assert "ls-thumb-large" in html and PNG in html
    assert "shelf.get(&#x27;camera/image&#x27;, run=1)" in html
    assert "1 file: data/" in html
    pmt = lab.find("pmt", run=1, data_id={"detector": "<i>left</i>"})
    html = pmt._repr_html_()
    assert "inline in the registry" in html
    assert "data_id={&#x27;detector&#x27;: &#x27;&lt;i&gt;left&lt;/i&gt;&#x27;}" in html
    assert "<i>" not in html.split("</style>", 1)[1]


def test_reprs_never_open_data_files(lab: labshelf.Shelf) -> None:
    # With every data file gone, the reprs still draw, thumbnails included:
    # they come from the registry alone.
    shutil.rmtree(lab.root / "data")
    run_html = lab.run(1)._repr_html_()
    assert PNG in run_html
    assert PNG in lab.find("camera/image", run=1)._repr_html_()
    assert "latest runs" in lab._repr_html_()
    with pytest.raises(labshelf.CorruptDataset):  # whereas reading the value needs the file
        lab.get("camera/image", run=1)


def test_long_runs_are_capped(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("many", {f"p{i}": i for i in range(60)}) as run:
        run.put("long", "x" * 1000)
        for i in range(60):
            run.put(f"many/n{i:02d}", i)
    html = shelf.run(1)._repr_html_()
    assert rows(html) == display.MAX_DATASETS
    assert "datasets (61)" in html and "11 more" in html and "shelf.datasets(1)" in html
    assert "many/n48" in html and "many/n49" not in html
    assert "10 more" in html and "run.params" in html  # params past 50
    assert "<details class='ls-section'><summary>params (60)</summary>" in html  # closed when long
    assert "x" * display.TEXT_CHARS not in html and "\u2026" in html


def test_short_repr_stays_one_line(lab: labshelf.Shelf) -> None:
    for obj in (lab, lab.run(1), lab.find("camera/image", run=1)):
        assert "\n" not in repr(obj)


def test_css_comes_from_package_data_once() -> None:
    assert display.css() is display.css()
    assert ".labshelf-repr" in display.css()


@pytest.fixture
def formatter_shell() -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "labshelf")
    yield ip
    ip.run_line_magic("unload_ext", "labshelf")


def test_lists_of_datasets_show_as_a_table(formatter_shell: Any, lab: labshelf.Shelf) -> None:
    data, _meta = formatter_shell.display_formatter.format(lab.datasets(1))
    assert "text/html" in data and rows(data["text/html"]) == 5 and PNG in data["text/html"]
    both = lab.datasets(1) + lab.datasets(2)
    html = formatter_shell.display_formatter.format(both)[0]["text/html"]
    assert "<th>run</th>" in html and rows(html) == 6
    assert "text/html" not in formatter_shell.display_formatter.format([1, 2])[0]
    assert "text/html" not in formatter_shell.display_formatter.format([])[0]


# -- display metadata --------------------------------------------------------------------------------


@pytest.fixture
def described(shelf: labshelf.Shelf) -> labshelf.Shelf:
    """A run whose datasets are described (units, scale, precision, titles), and one that is not."""
    with shelf.new_run("scan") as run:
        run.put("delay", 1.2345e-12, unit="ps", scale=1e-12, precision=2, title="Beam/Pump delay",
                description="delay of the <pump> after the probe")
        run.put("temperature", 301.5)
        run.put("trace", np.linspace(0.0, 1.0, 11))
        run.put("camera/image", np.arange(1200, dtype=np.uint16).reshape(40, 30))
        run.put("counter", 12)
    with shelf.new_run("plain") as run:
        run.put("temperature", 300.25)
        run.put("trace", np.linspace(0.0, 1.0, 11))
    return shelf


def test_a_described_run_shows_units_titles_and_formatted_values(described: labshelf.Shelf) -> None:
    described.describe("trace", unit="V", precision=3)
    described.describe("camera/image", unit="counts", title="Camera")
    described.describe("counter", scale=1e3, unit="k", precision=1)
    body = described.run(1)._repr_html_().split("</style>", 1)[1]
    assert "1.23 ps" in body  # 1.2345e-12 / 1e-12 with 2 digits after the point
    assert "1.2345e-12" not in body
    assert "<span class='ls-title'>Beam/Pump delay</span>" in body
    assert "title='delay of the &lt;pump&gt; after the probe'" in body  # the description is a tooltip, escaped
    assert "mean 0.500 V" in body  # an array's mean with the array's precision and unit
    assert "<span class='ls-unit'>counts</span>" in body and "<span class='ls-title'>Camera</span>" in body
    assert "0.0 k" in body  # an int summary scaled too: 12 / 1000 with 1 digit
    assert "<td>301.5</td>" in body  # temperature: nothing said, shown as ever
    assert described.get("delay", run=1) == 1.2345e-12  # shown differently, stored the same
    assert described.get("counter", run=1) == 12


def test_names_nobody_described_show_exactly_as_before(described: labshelf.Shelf) -> None:
    before = described.run(2)._repr_html_()
    before_ref = described.find("temperature", run=2)._repr_html_()
    described.describe("delay", unit="ns")  # says something of another name only
    assert described.run(2)._repr_html_() == before
    assert described.find("temperature", run=2)._repr_html_() == before_ref
    described.describe("temperature", unit="K", precision=1)
    after = described.run(2)._repr_html_()
    assert after != before and "300.2 K" in after  # 300.25 with one digit (round half to even)


def test_a_dataset_repr_says_its_metadata(described: labshelf.Shelf) -> None:
    html = described.find("delay", run=1)._repr_html_()
    body = html.split("</style>", 1)[1]
    for fact, text in (("unit", "ps"), ("scale", "1e-12"), ("display precision", "2"), ("title", "Beam/Pump delay")):
        assert f"<tr><th>{fact}</th><td>{text}</td></tr>" in body
    assert "<tr><th>description</th><td>delay of the &lt;pump&gt; after the probe</td></tr>" in body
    assert "<div class='ls-summary'>1.23 ps</div>" in body
    header = body.split("</div>", 1)[0]
    assert "Beam/Pump delay" in header and "title='delay of the &lt;pump&gt;" in header
    assert "<pump>" not in body
    plain = described.find("temperature", run=1)._repr_html_()
    assert "<th>unit</th>" not in plain and "<div class='ls-summary'>301.5</div>" in plain


def test_a_data_id_has_its_own_metadata_in_reprs(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("pmts") as run:
        run.put("pmt", 0.5, data_id={"channel": 1})
        run.put("pmt", 0.25, data_id={"channel": 2})
    shelf.describe("pmt", unit="V", precision=2)
    shelf.describe("pmt", data_id={"channel": 2}, unit="mV", scale=1e-3, precision=0)
    body = shelf.run(1)._repr_html_()
    assert "0.50 V" in body and "250 mV" in body
    assert "0.25 V" not in body
    assert "250 mV" in shelf.find("pmt", run=1, data_id={"channel": 2})._repr_html_()


def test_lists_of_refs_are_formatted_with_their_shelf_metadata(formatter_shell: Any, described: labshelf.Shelf) -> None:
    html = formatter_shell.display_formatter.format(described.datasets(1))[0]["text/html"]
    assert "1.23 ps" in html and "Beam/Pump delay" in html
    refs = described.datasets(1)
    described.close()
    # A closed shelf is asked nothing: its refs still show, without metadata.
    html = formatter_shell.display_formatter.format(refs)[0]["text/html"]
    assert "1.2345e-12" in html and "ps" not in html.split("</style>", 1)[1]
