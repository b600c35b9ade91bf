"""A demo shelf of synthetic but realistic runs (``labshelf demo PATH``).

Two experiments, each run with scalars, a 1-D scan, a camera image of a
beam spot with shot noise, an xarray spectrum and a pandas table of peaks.
Deterministic: the same seed gives the same shelf.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .shelf import Shelf

EXPERIMENTS = ("rabi_scan", "beam_profile")
IMAGE_SIZE = 512


def beam_image(rng: Any, size: int = IMAGE_SIZE, *, x0: float, y0: float, width: float, peak: float) -> Any:
    """A Gaussian beam spot on a dark background, with Poisson shot noise (uint16)."""
    import numpy as np

    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    spot = peak * np.exp(-(((x - x0) ** 2) + ((y - y0) ** 2)) / (2 * width**2))
    expected = 100.0 + spot  # dark level + signal, in counts
    return np.clip(rng.poisson(expected), 0, 65535).astype(np.uint16)


def fill_run(run: Any, rng: Any, index: int) -> None:
    """Put the datasets of one demo run."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    experiment = run.experiment
    temperature = 300.0 + 2.0 * np.sin(index / 15.0) + rng.normal(0, 0.1)
    run.put("temperature", round(float(temperature), 3))
    run.put("pressure", float(1e-9 * (1 + 0.2 * rng.random())))
    run.put("exposure_time", float(rng.choice([0.01, 0.02, 0.05, 0.1])))

    x = np.linspace(-5.0, 5.0, 101)
    rate = 2.0 if experiment == "rabi_scan" else 0.7
    signal = 800 * np.cos(rate * x) ** 2 * np.exp(-0.02 * x**2) + 50
    run.put("scan/x", x)
    run.put("scan/counts", rng.poisson(signal).astype(np.int64))

    centre = IMAGE_SIZE / 2
    image = beam_image(
        rng,
        x0=centre + 40 * np.sin(index / 20.0) + rng.normal(0, 3),
        y0=centre + 25 * np.cos(index / 33.0) + rng.normal(0, 3),
        width=18 + 6 * rng.random(),
        peak=float(2000 + 1500 * rng.random()),
    )
    run.put(
        "camera/image",
        image,
        hdf5_options={"compression": "gzip", "compression_opts": 4, "shuffle": True, "chunks": (128, 128)},
    )

    energy = np.linspace(1.0, 2.0, 256)
    line = float(1.5 + 0.05 * np.sin(index / 10.0))
    counts = 1000 * np.exp(-((energy - line) ** 2) / (2 * 0.02**2)) + rng.normal(20, 3, energy.size)
    spectrum = xr.DataArray(
        counts,
        dims=["energy"],
        coords={"energy": ("energy", energy, {"units": "eV"})},
        name="spectrum",
        attrs={"units": "counts", "detector": "spectrometer-1", "integration_s": 0.5},
    )
    run.put("spectrum", spectrum)

    n_peaks = int(rng.integers(2, 6))
    peaks = pd.DataFrame(
        {
            "position": np.sort(rng.uniform(1.0, 2.0, n_peaks)),
            "height": rng.uniform(50, 1000, n_peaks),
            "width": rng.uniform(0.005, 0.05, n_peaks),
            "label": [f"p{i}" for i in range(n_peaks)],
        },
        index=pd.RangeIndex(n_peaks, name="peak"),
    )
    run.put("peaks", peaks)


def build(
    shelf: Shelf, runs: int = 200, *, seed: int = 2026, progress: Callable[[int, int], None] | None = None
) -> None:
    """Write ``runs`` demo runs into ``shelf``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for index in range(runs):
        experiment = EXPERIMENTS[index % 2] if index % 7 else EXPERIMENTS[0]
        params = {"detuning": round(float(-2 + 4 * index / max(runs - 1, 1)), 4), "repeats": int(10 + index % 5)}
        with shelf.new_run(experiment=experiment, params=params) as run:
            fill_run(run, rng, index)
        if progress is not None:
            progress(index + 1, runs)


def default_path() -> str:
    return os.environ.get("LABSHELF_DEMO", "demo.shelf")
