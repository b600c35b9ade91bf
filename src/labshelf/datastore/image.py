"""Images: 2-D arrays and HxWx3/4 colour arrays, with PNG thumbnails.

An image is stored like any array, plus the attributes of the HDF5 Image
specification (``CLASS=IMAGE``), so HDFView and friends show it as a
picture.  Its summary is a PNG thumbnail (longest side 128 px) made at put
time, which is what the run table and gallery show without opening the file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidParameter
from . import hdf5
from .formatter import Summary
from .ingested import stored_name
from .ndarray import NDArrayFormatter, array_mean, read_selection, shape_text

if TYPE_CHECKING:
    from ..registry.records import DatasetRef

#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 128
#: Smallest side of a 2-D array that counts as an image (smaller ones are plain arrays).
MIN_IMAGE_SIDE = 16


def is_image(value: Any) -> bool:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "uif":
        return False
    if value.ndim == 2:
        return min(value.shape) >= MIN_IMAGE_SIDE
    if value.ndim == 3 and value.shape[2] in (3, 4):
        return min(value.shape[:2]) >= MIN_IMAGE_SIDE
    return False


class ImageFormatter(NDArrayFormatter):
    kind = "image"
    priority = 20
    describes = (
        f"2-D numeric arrays of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} and HxWx3/4 colour arrays"
    )

    parameters = {
        **NDArrayFormatter.parameters,
        "downsample": "an int n >= 1: the mean of each n x n block of pixels (after slice)",
    }

    def accepts(self, value: Any) -> bool:
        return is_image(value)

    def read(
        self, paths: Sequence[Path], name: str, ref: DatasetRef, parameters: Mapping[str, Any]
    ) -> np.ndarray:
        factor = _downsample_factor(parameters)
        if "slice" in parameters:
            shape = ref.shape if ref.shape is not None else hdf5.array_shape(paths[0], name)
            image = read_selection(paths, name, parameters["slice"], shape)
        else:
            image = super().read(paths, name, ref, {})
        return image if factor == 1 else block_mean(image, factor)

    def components(self, paths: Sequence[Path], ref: DatasetRef) -> list[str]:
        return ["thumbnail", "attrs"]

    def read_component(
        self, paths: Sequence[Path], ref: DatasetRef, component: str, parameters: Mapping[str, Any]
    ) -> Any:
        if component == "thumbnail":
            from PIL import Image

            # The thumbnail is in the registry already: no data file is opened.
            with Image.open(io.BytesIO(ref.summary)) as picture:
                return np.asarray(picture)
        if component == "attrs":
            return hdf5.attributes(paths[0], stored_name(ref))
        raise self.no_component(paths, ref, component)

    def summarise(self, value: np.ndarray) -> Summary:
        return Summary("image", value=array_mean(value), text=shape_text(value), thumbnail=thumbnail_png(value))

    def to_inline(self, value: np.ndarray, options: Mapping[str, Any]) -> str | None:
        # Images always get a file, with the HDF5 image attributes.
        return None

    def write(self, path: Path, name: str, value: np.ndarray, options: Mapping[str, Any]) -> None:
        hdf5.write_array(path, name, value, options, image_attrs(value))


def image_attrs(value: np.ndarray) -> dict[str, Any]:
    """The attributes of the HDF5 Image specification for a grey (2-D) or colour (HxWx3/4) image."""
    colour = value.ndim == 3
    attrs = {
        "CLASS": np.bytes_("IMAGE"),
        "IMAGE_VERSION": np.bytes_("1.2"),
        "IMAGE_SUBCLASS": np.bytes_("IMAGE_TRUECOLOR" if colour else "IMAGE_GRAYSCALE"),
    }
    if colour:
        attrs["INTERLACE_MODE"] = np.bytes_("INTERLACE_PIXEL")
    return attrs


def _downsample_factor(parameters: Mapping[str, Any]) -> int:
    factor = parameters.get("downsample", 1)
    if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise InvalidParameter(f"downsample takes an int >= 1 (the block size), not {factor!r}")
    return int(factor)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """The mean of each ``factor`` x ``factor`` block (edges that do not fill a block are dropped)."""
    if image.ndim not in (2, 3):
        raise InvalidParameter(
            f"downsample works on a 2-D image or an HxWxC colour image; this slice of it has shape {image.shape}"
        )
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if h == 0 or w == 0:
        raise InvalidParameter(f"downsample={factor} is larger than the image ({image.shape[0]}x{image.shape[1]})")
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by ``factor`` with a box filter over a sparse grid of samples.

    A full box filter reads every pixel (about 9 ms for 2048x2048 here);
    averaging up to 2x2 evenly spread samples per output pixel costs a few
    percent of that and still smooths shot noise, which is all a 128-pixel
    preview needs.
    """
    if factor == 1:
        return image.astype(np.float32)
    step = max(1, factor // 2)
    offsets = range(0, factor, step)
    h, w = image.shape[0] // factor, image.shape[1] // factor
    total = np.zeros((h, w) + image.shape[2:], dtype=np.float32)
    for dy in offsets:
        for dx in offsets:
            total += image[dy : dy + h * factor : factor, dx : dx + w * factor : factor]
    return total / (len(offsets) ** 2)


def thumbnail_png(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> bytes:
    """PNG bytes of a thumbnail whose longest side is ``size`` (or the image's, if smaller)."""
    from PIL import Image

    longest = max(image.shape[:2])
    # Shrink by a whole factor that keeps the longest side at least ``size``;
    # Pillow then resizes the small result to exactly ``size`` (a whole factor
    # alone gives 100 px for 300 px, 125 for 1000).
    factor = max(1, longest // size)
    factor = min(factor, min(image.shape[:2]))
    small = _reduce(image, factor)
    if image.dtype == np.uint8 and image.ndim == 3:
        pixels = small.round().astype(np.uint8)
    else:
        finite = small[np.isfinite(small)]
        if finite.size == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = (float(x) for x in np.percentile(finite, (0.5, 99.5)))
            if hi <= lo:
                hi = lo + 1.0
        scaled = np.nan_to_num((small - lo) * (255.0 / (hi - lo)), nan=0.0)
        pixels = np.clip(scaled, 0, 255).astype(np.uint8)
    # uint8 HxW, HxWx3 and HxWx4 map to Pillow's L, RGB and RGBA.
    picture = Image.fromarray(pixels)
    if longest > size:
        scale = size / max(picture.size)
        width, height = (max(1, round(side * scale)) for side in picture.size)
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    # Fast zlib level: a 128-pixel PNG is small either way, and this runs on every put.
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
