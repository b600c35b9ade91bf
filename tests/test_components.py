"""Components, composite datasets and read parameters.

A component (``name.component``) is read without reading the whole value:
the tests that say so count the bytes this process reads (``rchar`` of
``/proc/self/io``: every read()/pread() of any file, page cache or not)
around a component read and around a whole read of the same dataset.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labshelf
from labshelf.errors import ComponentNotFound, DatasetNotFound, InvalidParameter, UnsupportedValue

MB = 1_000_000


def read_bytes() -> int:
    """Bytes this process has read so far, through any read system call."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def bytes_read_by(fn: Any) -> tuple[Any, int]:
    before = read_bytes()
    value = fn()
    return value, read_bytes() - before


# -- components of the built-in kinds ---------------------------------------------------


def spectrum() -> Any:
    import xarray as xr

    rng = np.random.default_rng(1)
    return xr.Dataset(
        {
            "counts": (("energy", "angle"), rng.poisson(5, (50, 8)).astype("i4")),
            "temp": ("energy", np.linspace(290.0, 300.0, 50)),
        },
        coords={"energy": np.linspace(0.0, 10.0, 50), "angle": np.arange(8) * 1.5},
        attrs={"sample": "Si", "operator": "ada"},
    )


def peaks() -> Any:
    import pandas as pd

    return pd.DataFrame(
        {"height": [3.0, 5.5, 1.25, 9.0], "width": [0.1, 0.2, 0.3, 0.4], "label": ["a", "b", "c", "d"]},
        index=pd.Index([10, 20, 30, 40], name="peak"),
    )


def test_xarray_variables_coords_and_attrs(shelf: labshelf.Shelf) -> None:
    import xarray as xr

    ds = spectrum()
    with shelf.new_run() as run:
        run.put("spectrum", ds)
    xr.testing.assert_identical(shelf.get("spectrum", run=1), ds)
    counts = shelf.get("spectrum.counts", run=1)
    assert isinstance(counts, xr.DataArray)
    xr.testing.assert_equal(counts, ds["counts"])
    xr.testing.assert_equal(shelf.get("spectrum.temp", run=1), ds["temp"])
    energy = shelf.get("spectrum.coords.energy", run=1)
    assert isinstance(energy, xr.DataArray)
    xr.testing.assert_equal(energy, ds.coords["energy"])
    assert shelf.get("spectrum.attrs", run=1) == {"sample": "Si", "operator": "ada"}
    listed = set(shelf.components("spectrum", run=1))
    assert {"counts", "temp", "coords.energy", "coords.angle", "attrs"} <= listed, listed
    assert set(shelf.components(shelf.find("spectrum", run=1))) == listed


def test_pandas_columns_and_index(shelf: labshelf.Shelf) -> None:
    import pandas as pd

    df = peaks()
    with shelf.new_run() as run:
        run.put("peaks", df)
    pd.testing.assert_frame_equal(shelf.get("peaks", run=1), df)
    height = shelf.get("peaks.columns.height", run=1)
    assert isinstance(height, pd.Series)
    pd.testing.assert_series_equal(height, df["height"])
    pd.testing.assert_series_equal(shelf.get("peaks.columns.label", run=1), df["label"])
    pd.testing.assert_index_equal(shelf.get("peaks.index", run=1), df.index)
    listed = set(shelf.components("peaks", run=1))
    assert {"columns.height", "columns.width", "columns.label", "index"} <= listed, listed


def test_image_thumbnail_and_attrs(shelf: labshelf.Shelf) -> None:
    from PIL import Image

    img = (np.arange(64 * 300, dtype="u2").reshape(64, 300) % 997).astype("u2")
    with shelf.new_run() as run:
        run.put("camera/image", img)
    thumb = shelf.get("camera/image.thumbnail", run=1)
    ref = shelf.find("camera/image", run=1)
    expected = np.asarray(Image.open(io.BytesIO(ref.summary)))
    assert isinstance(thumb, np.ndarray) and thumb.dtype == np.uint8
    np.testing.assert_array_equal(thumb, expected)
    assert max(thumb.shape[:2]) == 128
    attrs = shelf.get("camera/image.attrs", run=1)
    assert isinstance(attrs, dict)
    assert {"thumbnail", "attrs"} <= set(shelf.components("camera/image", run=1))
    np.testing.assert_array_equal(shelf.get("camera/image", run=1), img)  # the whole is untouched


def test_an_unknown_component_lists_those_that_exist(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("spectrum", spectrum())
        run.put("peaks", peaks())
        run.put("camera/image", np.ones((32, 32), dtype="u2"))
        run.put("temperature", 301.5)
    with pytest.raises(ComponentNotFound, match="height"):
        shelf.get("peaks.columns.hieght", run=1)
    with pytest.raises(ComponentNotFound, match="thumbnail"):
        shelf.get("camera/image.thumbnial", run=1)
    with pytest.raises(DatasetNotFound):  # ComponentNotFound is a DatasetNotFound (and a KeyError)
        shelf.get("temperature.value", run=1)
    with pytest.raises(DatasetNotFound):
        shelf.get("nothing.counts", run=1)
    assert shelf.get("temperature", run=1) == 301.5


def test_an_unknown_xarray_component_lists_those_that_exist(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("spectrum", spectrum())
    with pytest.raises(ComponentNotFound, match="counts"):
        shelf.get("spectrum.cuonts", run=1)
    with pytest.raises(ComponentNotFound, match="energy"):
        shelf.get("spectrum.coords.enrgy", run=1)
    assert shelf.get("spectrum.attrs", run=1) == {"sample": "Si", "operator": "ada"}


# -- a component costs about its own bytes -----------------------------------------------


def test_one_variable_of_a_large_xarray_dataset_reads_about_its_bytes(sqlite_shelf: labshelf.Shelf) -> None:
    import xarray as xr

    shelf = sqlite_shelf
    n = 2_000_000  # float64: 16 MB per variable, 128 MB in all
    rng = np.random.default_rng(3)
    ds = xr.Dataset({f"v{i}": ("t", rng.standard_normal(n)) for i in range(8)})
    v3 = ds["v3"].values.copy()
    with shelf.new_run() as run:
        run.put("big", ds)
    del ds
    one, one_bytes = bytes_read_by(lambda: shelf.get("big.v3", run=1))
    np.testing.assert_array_equal(one.values, v3)
    del one
    whole, whole_bytes = bytes_read_by(lambda: shelf.get("big", run=1))
    np.testing.assert_array_equal(whole["v3"].values, v3)
    del whole
    assert whole_bytes >= 100 * MB, whole_bytes  # the whole read is visible in rchar
    assert one_bytes < 0.3 * whole_bytes, (one_bytes, whole_bytes)


def test_one_column_of_a_large_dataframe_reads_about_its_bytes(sqlite_shelf: labshelf.Shelf) -> None:
    import pandas as pd

    shelf = sqlite_shelf
    n = 2_000_000
    rng = np.random.default_rng(4)
    df = pd.DataFrame({f"c{i}": rng.standard_normal(n) for i in range(8)})
    c5 = df["c5"].to_numpy().copy()
    with shelf.new_run() as run:
        run.put("table", df)
    del df
    one, one_bytes = bytes_read_by(lambda: shelf.get("table.columns.c5", run=1))
    np.testing.assert_array_equal(one.to_numpy(), c5)
    del one
    whole, whole_bytes = bytes_read_by(lambda: shelf.get("table", run=1))
    np.testing.assert_array_equal(whole["c5"].to_numpy(), c5)
    del whole
    assert whole_bytes >= 100 * MB, whole_bytes
    assert one_bytes < 0.3 * whole_bytes, (one_bytes, whole_bytes)


# -- composites ---------------------------------------------------------------------------


@dataclasses.dataclass
class Exposure:
    image: np.ndarray
    psf: np.ndarray
    exposure_time: float
    filter_name: str


class Spectrum:
    """Not a dataclass: stored only once registered with register_composite."""

    def __init__(self, wavelength: np.ndarray, flux: np.ndarray):
        self.wavelength = wavelength
        self.flux = flux


class Unregistered:
    def __init__(self, x: np.ndarray):
        self.x = x


def exposure() -> Exposure:
    rng = np.random.default_rng(5)
    return Exposure(
        image=rng.integers(0, 4000, (64, 64), dtype="u2"),
        psf=np.outer(np.hanning(9), np.hanning(9)),
        exposure_time=30.0,
        filter_name="g",
    )


def test_a_dataclass_is_put_as_components_and_assembled_on_get(shelf: labshelf.Shelf) -> None:
    exp = exposure()
    with shelf.new_run() as run:
        run.put("calexp", exp)
    got = shelf.get("calexp", run=1)
    assert isinstance(got, Exposure)
    np.testing.assert_array_equal(got.image, exp.image)
    np.testing.assert_array_equal(got.psf, exp.psf)
    assert (got.exposure_time, got.filter_name) == (30.0, "g")
    np.testing.assert_array_equal(shelf.get("calexp.psf", run=1), exp.psf)
    assert shelf.get("calexp.filter_name", run=1) == "g"
    assert set(shelf.components("calexp", run=1)) == {"image", "psf", "exposure_time", "filter_name"}
    with pytest.raises(ComponentNotFound, match="psf"):
        shelf.get("calexp.pfs", run=1)


def test_a_dataclass_with_a_field_that_cannot_be_stored_is_refused_whole(shelf: labshelf.Shelf) -> None:
    bad = Exposure(image=np.zeros((4, 4)), psf=np.zeros((3, 3)), exposure_time=1.0, filter_name=object())  # type: ignore[arg-type]
    with shelf.new_run() as run:
        run.put("before", 1)
        with pytest.raises(UnsupportedValue):
            run.put("calexp", bad)
    with pytest.raises(DatasetNotFound):
        shelf.get("calexp", run=1)
    with pytest.raises(DatasetNotFound):
        shelf.get("calexp.psf", run=1)
    assert shelf.get("before", run=1) == 1


def test_an_unregistered_class_comes_back_as_a_dict_in_a_fresh_process(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    exp = exposure()
    with shelf.new_run() as run:
        run.put("calexp", exp)
    code = (
        "import json, sys, labshelf\n"
        "shelf = labshelf.open(sys.argv[1], mode='r')\n"
        "value = shelf.get('calexp', run=1)\n"
        "out = {'type': type(value).__name__}\n"
        "if isinstance(value, dict):\n"
        "    out['keys'] = sorted(value)\n"
        "    out['psf'] = value['psf'].tolist()\n"
        "    out['exposure_time'] = value['exposure_time']\n"
        "out['imported'] = 'test_components' in sys.modules\n"
        "print(json.dumps(out))\n"
    )
    # The test module is importable in the child (tests/ on its path): a
    # reader that imported classes by name would execute code on read.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(shelf.root)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["type"] == "dict", out
    assert out["keys"] == ["exposure_time", "filter_name", "image", "psf"]
    np.testing.assert_array_equal(np.array(out["psf"]), exp.psf)
    assert out["exposure_time"] == 30.0
    assert out["imported"] is False


def test_register_composite_with_custom_assemble_and_disassemble(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run, pytest.raises(UnsupportedValue):
        run.put("other", Unregistered(np.zeros(3)))
    calls: list[str] = []

    def disassemble(s: Spectrum) -> dict[str, Any]:
        calls.append("disassemble")
        return {"wavelength": s.wavelength, "flux": s.flux}

    def assemble(parts: dict[str, Any]) -> Spectrum:
        calls.append("assemble")
        return Spectrum(parts["wavelength"], parts["flux"])

    labshelf.register_composite(Spectrum, disassemble=disassemble, assemble=assemble)
    wavelength = np.linspace(400.0, 700.0, 301)
    flux = np.sin(wavelength / 30.0)
    with shelf.new_run() as run:
        run.put("spec", Spectrum(wavelength, flux))
    assert calls == ["disassemble"]  # once per put: a costly disassembler is not run again
    calls.clear()
    got = shelf.get("spec", run=run.number)
    assert isinstance(got, Spectrum) and calls == ["assemble"]
    np.testing.assert_array_equal(got.wavelength, wavelength)
    np.testing.assert_array_equal(got.flux, flux)
    np.testing.assert_array_equal(shelf.get("spec.flux", run=run.number), flux)
    assert set(shelf.components("spec", run=run.number)) == {"wavelength", "flux"}
    with pytest.raises(DatasetNotFound):
        shelf.get("other", run=1)


# -- read parameters ---------------------------------------------------------------------


SLICES = [np.s_[2:5, ::3], np.s_[1], np.s_[-2:], np.s_[:, 4], np.s_[1:4, 2:3]]


def test_slice_of_an_inline_array_equals_numpy_slicing(shelf: labshelf.Shelf) -> None:
    a = np.arange(60.0).reshape(6, 10)
    with shelf.new_run() as run:
        ref = run.put("small", a)
    assert ref is not None and ref.storage.inline is not None  # this one is kept in the registry
    for index in SLICES:
        got = shelf.get("small", run=1, parameters={"slice": index})
        np.testing.assert_array_equal(got, a[index])
        assert got.shape == a[index].shape


def test_slice_of_a_file_backed_array_equals_numpy_slicing(shelf: labshelf.Shelf) -> None:
    rng = np.random.default_rng(6)
    b = rng.standard_normal((300, 200))
    grown = rng.standard_normal((5 * 40, 500))
    with shelf.new_run() as run:
        ref = run.put("b", b, kind="ndarray")
        run.put("grown", np.zeros((0, 500)))
        for k in range(5):  # 160 KB segments
            run.append("grown", grown[40 * k : 40 * (k + 1)])
    assert ref is not None and ref.storage.files
    for index in [*SLICES, np.s_[100:200, :], np.s_[::7, 3], np.s_[5, 10:20]]:
        np.testing.assert_array_equal(shelf.get("b", run=1, parameters={"slice": index}), b[index])
    for index in [np.s_[30:130], np.s_[38:42, 7], np.s_[::9, -3:], np.s_[199]]:
        np.testing.assert_array_equal(shelf.get("grown", run=1, parameters={"slice": index}), grown[index])
    np.testing.assert_array_equal(shelf.get("b", run=1), b)


def test_slice_and_downsample_of_images(shelf: labshelf.Shelf) -> None:
    rng = np.random.default_rng(7)
    img = rng.integers(0, 4000, (256, 192), dtype="u2")
    rgb = rng.integers(0, 256, (64, 64, 3), dtype="u1")
    with shelf.new_run() as run:
        run.put("camera/image", img)
        run.put("camera/rgb", rgb)
    for index in [np.s_[100:200, :], np.s_[10:20, 50:60], np.s_[::4, ::4]]:
        np.testing.assert_array_equal(shelf.get("camera/image", run=1, parameters={"slice": index}), img[index])
    down = shelf.get("camera/image", run=1, parameters={"downsample": 4})
    np.testing.assert_allclose(down, img.reshape(64, 4, 48, 4).mean(axis=(1, 3)), rtol=1e-6)
    down_rgb = shelf.get("camera/rgb", run=1, parameters={"downsample": 4})
    np.testing.assert_allclose(down_rgb, rgb.reshape(16, 4, 16, 4, 3).mean(axis=(1, 3)), rtol=1e-6)
    np.testing.assert_array_equal(shelf.get("camera/image", run=1), img)


def test_an_image_slice_reads_about_its_bytes(sqlite_shelf: labshelf.Shelf) -> None:
    shelf = sqlite_shelf
    img = np.random.default_rng(8).integers(0, 60000, (4096, 4096), dtype="u2")  # 32 MB
    with shelf.new_run() as run:
        run.put("camera/image", img)
    part, part_bytes = bytes_read_by(lambda: shelf.get("camera/image", run=1, parameters={"slice": np.s_[100:200, :]}))
    np.testing.assert_array_equal(part, img[100:200, :])
    whole, whole_bytes = bytes_read_by(lambda: shelf.get("camera/image", run=1))
    np.testing.assert_array_equal(whole, img)
    assert whole_bytes >= 30 * MB, whole_bytes
    assert part_bytes < 0.3 * whole_bytes, (part_bytes, whole_bytes)


def test_an_unknown_or_bad_parameter_lists_those_the_kind_takes(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("b", np.arange(40.0).reshape(4, 10))
        run.put("camera/image", np.ones((32, 32), dtype="u2"))
        run.put("temperature", 301.5)
    with pytest.raises(InvalidParameter, match="slice"):
        shelf.get("b", run=1, parameters={"bogus": 1})
    with pytest.raises(InvalidParameter, match="slice"):
        shelf.get("b", run=1, parameters={"downsample": 4})  # images only
    with pytest.raises(InvalidParameter, match="downsample"):
        shelf.get("camera/image", run=1, parameters={"downsampel": 4})
    with pytest.raises(InvalidParameter):
        shelf.get("camera/image", run=1, parameters={"downsample": 0})
    with pytest.raises(InvalidParameter):
        shelf.get("temperature", run=1, parameters={"slice": np.s_[0]})
    with pytest.raises(ValueError):  # InvalidParameter is a ValueError
        shelf.get("b", run=1, parameters={"bogus": 1})
    np.testing.assert_array_equal(shelf.get("b", run=1), np.arange(40.0).reshape(4, 10))


def test_slices_of_an_array_grown_by_appends_match_numpy(tmp_path: Path) -> None:
    # Appends make segment files; a slice reads across them (from the end for
    # rows in the second half, as a live subscriber does after each append).
    rng = np.random.default_rng(3)
    with labshelf.create(tmp_path / "seg.shelf") as shelf, shelf.new_run() as run:
        run.put("a", np.zeros((0, 3000)))
        full = np.zeros((0, 3000))
        for i in range(40):
            rows = rng.random((i % 3 + 1, 3000))
            run.append("a", rows)
            full = np.concatenate([full, rows])
        assert len(shelf.find("a", run=run.number).storage.files) > 1
        n = full.shape[0]
        for selection in (np.s_[0:5], np.s_[n - 3 :], np.s_[5 : n - 5 : 7], np.s_[-1], np.s_[3], np.s_[::-3],
                          np.s_[10:2:-2], np.s_[..., 5], np.s_[2, 10:20], np.s_[n // 2 :], np.s_[n:], np.s_[:, ::100]):
            got = shelf.get("a", run=run.number, parameters={"slice": selection})
            np.testing.assert_array_equal(got, full[selection], err_msg=str(selection))
