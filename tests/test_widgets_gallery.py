"""Gallery, Python side: pages of thumbnails and captions, the viewer's pixels, errors.

Also the shared image helpers of ``labshelf.browse.pictures`` (block means,
value ranges, colour-mapped PNGs) that the viewer and the tree use.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

import labshelf
from labshelf.browse.pictures import (
    block_mean,
    colormap_png,
    colormap_table,
    display_range,
    downsample,
    fit_factor,
    pixels_for_screen,
    value_range,
)
from labshelf.errors import DatasetNotFound, QuerySyntaxError, UnsupportedValue
from labshelf.widgets import Gallery

#: Runs of the test shelf; every fourth has no image, run 7 has a colour one.
RUNS = 30


class CapturedGallery(Gallery):
    """A Gallery whose messages to the browser are kept instead of sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[Any, list[bytes]]] = []
        super().__init__(*args, **kwargs)

    def send(self, content: Any, buffers: Any = None) -> None:
        self.sent.append((content, list(buffers or [])))


def frame(run: int) -> np.ndarray:
    """The image of a run: 90x120 uint16, different in every run and every pixel."""
    rows, columns = np.mgrid[0:90, 0:120]
    return (run * 1000 + rows * 7 + columns).astype(np.uint16)


@pytest.fixture
def lab(shelf: labshelf.Shelf) -> Iterator[labshelf.Shelf]:
    for run in range(1, RUNS + 1):
        with shelf.new_run("beam", {"run": run}) as handle:
            handle.put("temperature", 290.0 + run / 4)
            handle.put("status_text", f"shot {run}")
            if run % 4:
                handle.put("camera/image", frame(run))
            if run == 7:
                handle.put("camera/colour", np.zeros((32, 48, 3), np.uint8) + np.array([10, 200, 30], np.uint8))
            handle.put("detector", frame(run)[:20, :20], data_id={"detector": 1})
    yield shelf


def with_image() -> list[int]:
    return [run for run in range(RUNS, 0, -1) if run % 4]


def test_pages_of_thumbnails_newest_first(lab: labshelf.Shelf) -> None:
    gallery = Gallery(lab, "camera/image", labels=["temperature"], page_size=8)
    assert gallery.count == len(with_image()) == 23 and gallery.name == "camera/image"
    assert gallery.labels == ["temperature"]
    first = gallery.rpc_page(0)
    tiles = first.result["tiles"]
    assert [t["run"] for t in tiles] == with_image()[:8]
    assert tiles[0]["caption"] == f"run 30 · temperature={290 + 30 / 4:g}"
    assert [t["image"] for t in tiles] == list(range(8))
    for tile in tiles:
        # The registry's thumbnails, sent as they are: no data file is read.
        assert first.buffers[tile["image"]] == lab.find("camera/image", run=tile["run"]).summary
    assert first.result["more"] is True and first.result["total"] == 23
    pages = [gallery.rpc_page(offset).result for offset in range(0, 24, 8)]
    assert [t["run"] for p in pages for t in p["tiles"]] == with_image()
    assert [p["more"] for p in pages] == [True, True, False]
    assert gallery.rpc_page(40).result == {"tiles": [], "more": False, "total": 23}


def test_a_run_view_chooses_and_orders_the_runs(lab: labshelf.Shelf) -> None:
    view = lab.runs.query("temperature < 295").sort_values("temperature", ascending=False)
    gallery = Gallery(lab, "camera/image", runs=view, labels=["temperature", "status_text", "experiment"])
    expected = [run for run in range(19, 0, -1) if run % 4]  # 290 + run/4 < 295
    tiles = gallery.rpc_page(0).result["tiles"]
    assert [t["run"] for t in tiles] == expected
    assert tiles[-1]["caption"] == "run 1 · temperature=290.25 · status_text=shot 1 · experiment=beam"


def test_captions_without_labels_and_a_data_id(lab: labshelf.Shelf) -> None:
    gallery = Gallery(lab, "detector", data_id={"detector": 1}, page_size=3)
    assert gallery.name == "detector[detector=1]" and gallery.count == RUNS
    assert [t["caption"] for t in gallery.rpc_page(0).result["tiles"]] == ["run 30", "run 29", "run 28"]
    picture = gallery.rpc_image(5, 1000, 1000)
    assert np.array_equal(np.frombuffer(picture.buffers[0], "<u2").reshape(20, 20), frame(5)[:20, :20])


def test_the_grid_never_opens_a_data_file(lab: labshelf.Shelf) -> None:
    gallery = Gallery(lab, "camera/image")
    shutil.rmtree(lab.root / "data")
    page = gallery.rpc_page(0, 30)
    assert len(page.result["tiles"]) == 23 and all(png.startswith(b"\x89PNG") for png in page.buffers)
    with pytest.raises(labshelf.errors.CorruptDataset, match="is missing"):
        gallery.rpc_image(30, 100, 100)


def test_the_viewer_gets_the_image_shrunk_to_the_screen(lab: labshelf.Shelf) -> None:
    gallery = Gallery(lab, "camera/image")
    image = frame(30).astype(np.float64)
    reply = gallery.rpc_image(30, width=40, height=40)
    info = reply.result
    # 90x120 into 40x40: blocks of 3x3 (120 / 3 = 40), aspect kept.
    assert (info["factor"], info["height"], info["width"], info["shape"]) == (3, 30, 40, [90, 120])
    assert info["dtype"] == "float32" and info["run"] == 30 and info["title"] == "run 30 · camera/image"
    assert (info["min"], info["max"]) == (image.min(), image.max())
    assert info["vmin"] < info["vmax"]
    pixels = np.frombuffer(reply.buffers[0], "<f4").reshape(30, 40)
    expected = image.reshape(30, 3, 40, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(pixels, expected, rtol=1e-6)
    # A screen it fits on: every value, exactly, as uint16.
    whole = gallery.rpc_image(30, width=800, height=600)
    assert whole.result["dtype"] == "uint16" and whole.result["factor"] == 1
    assert np.array_equal(np.frombuffer(whole.buffers[0], "<u2").reshape(90, 120), frame(30))


def test_colour_images_come_as_rgba(lab: labshelf.Shelf) -> None:
    gallery = Gallery(lab, "camera/colour")
    assert [t["run"] for t in gallery.rpc_page(0).result["tiles"]] == [7]
    reply = gallery.rpc_image(7, 24, 24)
    assert reply.result["dtype"] == "rgba8" and reply.result["factor"] == 2
    rgba = np.frombuffer(reply.buffers[0], np.uint8).reshape(16, 24, 4)
    assert (rgba == np.array([10, 200, 30, 255], np.uint8)).all()


def test_errors_at_construction(lab: labshelf.Shelf) -> None:
    with pytest.raises(DatasetNotFound, match=r"no run of .* has a dataset 'camera/imag'; did you mean 'camera/image'"):
        Gallery(lab, "camera/imag")
    with pytest.raises(UnsupportedValue, match=r"'temperature' is a scalar dataset, not an image.*'camera/image'"):
        Gallery(lab, "temperature")
    with pytest.raises(DatasetNotFound, match="exists only with other data IDs"):
        Gallery(lab, "detector")
    with pytest.raises(QuerySyntaxError, match="did you mean 'temperature'"):
        Gallery(lab, "camera/image", labels=["temprature"])
    with pytest.raises(TypeError, match="runs= takes a RunView of the same shelf"):
        Gallery(lab, "camera/image", runs=[1, 2])
    with pytest.raises(labshelf.errors.InvalidName):
        Gallery(lab, "camera.image")
    with pytest.raises(ValueError, match="page_size is an int from 1 to 500"):
        Gallery(lab, "camera/image", page_size=0)


def test_requests_and_answers_through_the_comm(lab: labshelf.Shelf) -> None:
    gallery = CapturedGallery(lab, "camera/image", labels=["temperature"], page_size=2)
    gallery._on_request(gallery, {"id": "p", "method": "page", "params": {"offset": 2}}, [])
    content, buffers = gallery.sent[-1]
    assert content == {
        "id": "p",
        "result": {
            "tiles": [
                {"run": 27, "caption": "run 27 · temperature=296.75", "image": 0},
                {"run": 26, "caption": "run 26 · temperature=296.5", "image": 1},
            ],
            "more": True,
            "total": 23,
        },
    }
    assert [Image.open(io.BytesIO(b)).size for b in buffers] == [(120, 90), (120, 90)]  # smaller than 128: kept
    gallery._on_request(gallery, {"id": "i", "method": "image", "params": {"run": 27, "width": 60, "height": 60}}, [])
    content, buffers = gallery.sent[-1]
    assert content["result"]["factor"] == 2 and len(buffers[0]) == 45 * 60 * 4
    json.dumps(content)
    bad = [
        ({"method": "image", "params": {"run": 4}}, "run 4 has no dataset 'camera/image'"),
        ({"method": "image", "params": {"run": 99}}, "no run 99"),
        ({"method": "image", "params": {"run": 3, "width": 0}}, "width is an int from 1 to 8192"),
        ({"method": "image", "params": {"run": "3"}}, "run is a run number (an int), not '3'"),
        ({"method": "page", "params": {"limit": 501}}, "limit is an int from 1 to 500"),
        ({"method": "preview", "params": {}}, "has no request 'preview'"),
    ]
    for i, (request, message) in enumerate(bad):
        gallery._on_request(gallery, {"id": f"e{i}", **request}, [])
        content, _ = gallery.sent[-1]
        assert content["id"] == f"e{i}" and message in content["error"] and "\n" not in content["error"]


def test_fallback_html_shows_the_first_thumbnails(lab: labshelf.Shelf) -> None:
    bundle = Gallery(lab, "camera/image", labels=["temperature"])._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    text = data["text/html"]
    assert text.count("<img src='data:image/png;base64,") == 12
    assert "run 30 · temperature=297.5" in text and "and 11 more runs" in text


# -- image helpers ------------------------------------------------------------------------------


def test_block_mean_keeps_every_pixel_and_the_aspect() -> None:
    image = np.arange(7 * 10, dtype=np.uint16).reshape(7, 10)
    small = block_mean(image, 3)
    assert small.shape == (3, 4) and small.dtype == np.float32
    assert small[0, 0] == image[:3, :3].mean() and small[2, 3] == image[6:, 9:].mean()
    assert small[1, 3] == image[3:6, 9:].mean() and small[2, 1] == image[6:, 3:6].mean()
    colour = np.dstack([image, image * 2, image * 3]).astype(np.uint8)
    assert block_mean(colour, 2).shape == (4, 5, 3)
    assert block_mean(image, 1).tolist() == image.tolist()


def test_fit_factor_and_downsample() -> None:
    assert fit_factor((4096, 4096), 1024, 768) == 6
    assert fit_factor((100, 50), 1000, 1000) == 1
    assert fit_factor((101, 50), 50, 50) == 3
    with pytest.raises(ValueError, match="a screen size is positive"):
        fit_factor((10, 10), 0, 10)
    small, factor = downsample(np.ones((4096, 2048)), 512, 512)
    assert factor == 8 and small.shape == (512, 256)


def test_ranges() -> None:
    data = np.array([[np.nan, 1.0], [np.inf, 5.0]])
    assert value_range(data) == (1.0, 5.0)
    assert value_range(np.full(3, np.nan)) == (None, None)
    assert value_range(np.array([3, 9], np.uint16)) == (3.0, 9.0)
    assert display_range(np.full((4, 4), 7.0)) == (7.0, 8.0)
    lo, hi = display_range(np.arange(1001.0))
    assert (lo, hi) == (5.0, 995.0)


def test_colormap_png_draws_low_to_high() -> None:
    table = colormap_table()
    assert table.shape == (256, 3) and table[0].tolist() == [68, 1, 84] and table[-1].tolist() == [253, 231, 37]
    picture = Image.open(io.BytesIO(colormap_png(np.array([[0.0, 1.0], [np.nan, 0.5]]), 0.0, 1.0))).convert("RGB")
    assert picture.size == (2, 1 + 1)
    assert picture.getpixel((0, 0)) == (68, 1, 84) and picture.getpixel((1, 0)) == (253, 231, 37)
    assert picture.getpixel((0, 1)) == (68, 1, 84)  # NaN in the lowest colour
    assert picture.getpixel((1, 1)) == tuple(table[128])
    with pytest.raises(ValueError, match="2-D array"):
        colormap_png(np.zeros(3))


def test_pixels_for_screen_of_odd_shapes() -> None:
    info, raw = pixels_for_screen(np.ones((5, 5, 4), np.float32) * 0.5, 10, 10)
    assert info["dtype"] == "rgba8" and np.frombuffer(raw, np.uint8).tolist()[:4] == [128, 128, 128, 128]
    info, raw = pixels_for_screen(np.array([[-1, 2], [3, 4]], np.int32), 10, 10)
    assert info["dtype"] == "float32" and np.frombuffer(raw, "<f4").tolist() == [-1, 2, 3, 4]
    with pytest.raises(ValueError, match="an image is 2-D or HxWx3/4"):
        pixels_for_screen(np.zeros((2, 2, 2)), 10, 10)


# -- display metadata --------------------------------------------------------------------------------


def test_captions_and_titles_follow_the_display_metadata(lab: labshelf.Shelf) -> None:
    plain = Gallery(lab, "camera/image", labels=["temperature", "status_text"], page_size=2)
    plain_page = plain.rpc_page(0).result
    assert plain.title == "camera/image" and plain.display == {}
    lab.describe("temperature", unit="K", precision=2, title="Sample temperature")
    lab.describe("camera/image", unit="ADU", scale=2, precision=1, title="Camera/Beam profile",
                 description="the <beam> on the screen")
    gallery = Gallery(lab, "camera/image", labels=["temperature", "status_text"], page_size=2)
    assert gallery.name == "camera/image" and gallery.title == "Camera/Beam profile"
    assert gallery.display == {"unit": "ADU", "scale": 2.0, "precision": 1, "title": "Camera/Beam profile",
                               "description": "the <beam> on the screen"}
    tiles = gallery.rpc_page(0).result["tiles"]
    assert tiles[0]["caption"] == "run 30 · temperature=297.50 K · status_text=shot 30"  # 290 + 30/4
    assert tiles[1]["caption"] == "run 29 · temperature=297.25 K · status_text=shot 29"
    # Already-made galleries read the caption metadata afresh; the image's own is read when made.
    assert plain.rpc_page(0).result["tiles"][0]["caption"] == tiles[0]["caption"] != plain_page["tiles"][0]["caption"]
    info = gallery.rpc_image(30, 40, 40).result
    assert info["title"] == "run 30 · Camera/Beam profile" and info["min"] == frame(30).min()  # values as stored
    assert "Camera/Beam profile: 23 runs" in gallery.fallback_html()
    assert lab.get("temperature", run=30) == 297.5


def test_a_label_with_a_data_id_uses_that_data_ids_metadata(lab: labshelf.Shelf) -> None:
    with lab.new_run("pmts") as run:
        run.put("camera/image", frame(31))
        run.put("pmt", 0.125, data_id={"channel": 2})
    lab.describe("pmt", unit="V", precision=1)
    lab.describe("pmt", data_id={"channel": 2}, unit="mV", scale=1e-3, precision=0)
    gallery = Gallery(lab, "camera/image", labels=["pmt[channel=2]"], page_size=1)
    assert gallery.rpc_page(0).result["tiles"][0]["caption"] == "run 31 · pmt[channel=2]=125 mV"

