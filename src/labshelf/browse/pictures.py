"""Pictures for screens: shrink an image to a screen size, value range, colour-mapped PNG.

Previews (``labshelf.browse``) send images shrunk on the Python side to the
size asked for, as PNG; the gallery's viewer and live images send raw
values shrunk the same way (a camera frame of 4096x4096 would be 64 MiB of
float32; the screen shows a tenth of it).  Grey pictures use the colour
map the widgets draw with in the browser (``widgets/static/common.js``): a
viridis-like table interpolated between the anchor colours below, so a
picture made here and one drawn in the browser agree.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

#: Anchor colours of the colour map, evenly spaced from low to high values
#: (viridis' colours at 0, 1/8, ..., 1).  ``widgets/static/common.js`` holds the same list.
COLORMAP_ANCHORS = (
    "#440154",
    "#472d7b",
    "#3b528b",
    "#2c728e",
    "#21918c",
    "#28ae80",
    "#5ec962",
    "#addc30",
    "#fde725",
)


def colormap_table(size: int = 256) -> np.ndarray:
    """The colour map as a ``(size, 3)`` uint8 table, linear between the anchors."""
    anchors = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in COLORMAP_ANCHORS], dtype=np.float64)
    where = np.linspace(0.0, len(anchors) - 1, size)
    table = np.stack([np.interp(where, np.arange(len(anchors)), anchors[:, k]) for k in range(3)], axis=1)
    return np.round(table).astype(np.uint8)


def fit_factor(shape: tuple[int, ...], width: int, height: int) -> int:
    """The smallest whole factor that shrinks an image of ``shape`` into ``width`` x ``height``.

    Never below 1: a small image is sent as it is and the browser scales it up.
    """
    if width < 1 or height < 1:
        raise ValueError(f"a screen size is positive, not {width}x{height}")
    rows, columns = shape[0], shape[1]
    return max(1, math.ceil(rows / height), math.ceil(columns / width))


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks (float32); edge blocks may be smaller.

    Every pixel counts, each exactly once: the last row and column of blocks
    average the pixels that are there, so nothing is cropped and the aspect
    ratio is kept (the result has ``ceil(h / factor)`` x ``ceil(w / factor)``
    pixels).  Colour images (HxWxC) are averaged per channel.
    """
    if factor == 1:
        return np.asarray(image, dtype=np.float32)
    rows, columns = image.shape[:2]
    row_starts = np.arange(0, rows, factor)
    column_starts = np.arange(0, columns, factor)
    # Sums in float64 so a block of 64x64 uint16 pixels adds up exactly.
    sums = np.add.reduceat(np.add.reduceat(image.astype(np.float64, copy=False), row_starts, axis=0), column_starts, axis=1)
    row_counts = np.diff(np.append(row_starts, rows))
    column_counts = np.diff(np.append(column_starts, columns))
    counts = np.outer(row_counts, column_counts).astype(np.float64)
    if image.ndim == 3:
        counts = counts[:, :, None]
    return (sums / counts).astype(np.float32)


def downsample(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, int]:
    """``image`` shrunk by block means to fit ``width`` x ``height``; returns it and the factor.

    NaN pixels make their block NaN (a hole stays visible rather than being
    averaged away).
    """
    factor = fit_factor(image.shape, width, height)
    return block_mean(image, factor), factor


def value_range(values: np.ndarray) -> tuple[float | None, float | None]:
    """The smallest and largest finite value (None, None if there is none)."""
    if values.size == 0 or values.dtype.kind not in "biuf":
        return None, None
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return None, None
        return float(finite.min()), float(finite.max())
    return float(values.min()), float(values.max())


def display_range(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """The range a colour map spans: percentiles, so one hot pixel does not wash out the rest.

    Always a proper interval (``hi > lo``), also for constant or empty images.
    """
    data = np.asarray(values, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(finite, (low, high)))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def colormap_png(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> bytes:
    """PNG bytes of a 2-D array drawn with the colour map between ``vmin`` and ``vmax``.

    Without a range, :func:`display_range` chooses one.  NaN and infinite
    pixels are drawn in the lowest colour.
    """
    from PIL import Image

    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"a colour-mapped picture is made of a 2-D array, not of shape {data.shape}")
    if vmin is None or vmax is None:
        vmin, vmax = display_range(data)
    span = vmax - vmin if vmax > vmin else 1.0
    scaled = np.nan_to_num((data - vmin) * (255.0 / span), nan=0.0, posinf=255.0, neginf=0.0)
    indices = np.clip(scaled, 0, 255).astype(np.uint8)
    # A palette image stores one byte per pixel plus the table: a third of RGB.
    picture = Image.frombytes("P", (indices.shape[1], indices.shape[0]), np.ascontiguousarray(indices).tobytes())
    picture.putpalette(colormap_table().ravel().tolist())
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def thumbnail_of(values: np.ndarray, size: int = 256) -> bytes:
    """A colour-mapped PNG of a 2-D array whose longest side is at most ``size``."""
    small, _factor = downsample(values, size, size)
    return colormap_png(small)


def pixels_for_screen(image: np.ndarray, width: int, height: int) -> tuple[dict[str, Any], bytes]:
    """What the gallery's viewer draws: an image shrunk to a screen, as raw little-endian bytes.

    Returns a description and the bytes.  Grey images come as ``uint16``
    when that holds every value exactly (unshrunk integer images of 0..65535),
    else ``float32``; colour images (HxWx3/4) as RGBA ``uint8``.  The
    description gives the sent ``width`` and ``height``, the original
    ``shape``, the shrink ``factor``, the finite ``min``/``max`` of the whole
    image and the ``vmin``/``vmax`` the colour map spans.
    """
    data = np.asarray(image)
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] not in (3, 4)):
        raise ValueError(f"an image is 2-D or HxWx3/4, not of shape {data.shape}")
    small, factor = downsample(data, width, height)
    lo, hi = value_range(data)
    info: dict[str, Any] = {
        "shape": [int(n) for n in data.shape],
        "factor": factor,
        "height": int(small.shape[0]),
        "width": int(small.shape[1]),
        "min": lo,
        "max": hi,
    }
    if data.ndim == 3:
        if data.dtype == np.uint8:
            rgb = np.round(small).astype(np.uint8)
        else:
            # A float colour image: the usual 0..1 convention, else its own range.
            top = 1.0 if hi is not None and hi <= 1.0 else (hi or 1.0)
            rgb = np.clip(np.nan_to_num(small / top * 255.0), 0, 255).round().astype(np.uint8)
        if rgb.shape[2] == 3:
            rgb = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
        info.update(dtype="rgba8", vmin=0.0, vmax=255.0)
        return info, np.ascontiguousarray(rgb).tobytes()
    vmin, vmax = display_range(small)
    info.update(vmin=vmin, vmax=vmax)
    if factor == 1 and data.dtype.kind in "u" and data.dtype.itemsize <= 2:
        info["dtype"] = "uint16"
        return info, np.ascontiguousarray(data, dtype="<u2").tobytes()
    info["dtype"] = "float32"
    return info, np.ascontiguousarray(small, dtype="<f4").tobytes()


def picture_png(image: np.ndarray, size: int) -> tuple[bytes, dict[str, Any]]:
    """A PNG of a 2-D (colour-mapped) or HxWx3/4 (colour) array whose longest side is at most ``size``.

    Returns the PNG and what it shows: ``width``, ``height``, the shrink
    ``factor``, the original ``shape`` and, for grey pictures, the
    ``vmin``/``vmax`` the colour map spans.
    """
    from PIL import Image

    data = np.asarray(image)
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] not in (3, 4)):
        raise ValueError(f"a picture is made of a 2-D or HxWx3/4 array, not of shape {data.shape}")
    small, factor = downsample(data, size, size)
    info: dict[str, Any] = {"width": int(small.shape[1]), "height": int(small.shape[0]), "factor": factor,
                            "shape": [int(n) for n in data.shape]}
    if data.ndim == 2:
        vmin, vmax = display_range(small)
        info.update(vmin=vmin, vmax=vmax)
        return colormap_png(small, vmin, vmax), info
    if data.dtype == np.uint8:
        rgb = np.round(small).astype(np.uint8)
    else:
        # A float colour image: the usual 0..1 convention, else its own range.
        _lo, hi = value_range(data)
        top = 1.0 if hi is not None and hi <= 1.0 else (hi or 1.0)
        rgb = np.clip(np.nan_to_num(small / top * 255.0), 0, 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), info
