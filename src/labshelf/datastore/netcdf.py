"""xarray DataArray and Dataset, stored as NetCDF-4 (HDF5) through h5netcdf.

The value is written with ``to_netcdf(engine="h5netcdf")`` into the group
named like the dataset, so the file is both valid HDF5 and readable by any
NetCDF tool.  ``invalid_netcdf=True`` lets h5netcdf keep what strict NetCDF
cannot (bool and complex values and attributes) for an exact round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py

from .formatter import Description, Formatter, Summary
from .ndarray import array_mean

if TYPE_CHECKING:
    from ..registry.records import DatasetRef

_CLASS_ATTR = "labshelf_class"
_UNNAMED = "__xarray_dataarray_variable__"


class XarrayFormatter(Formatter):
    kind = "xarray"
    priority = 10
    describes = "xarray.DataArray and xarray.Dataset"

    def accepts(self, value: Any) -> bool:
        # Decided by class name and module, so that asking never imports xarray.
        return type(value).__name__ in ("DataArray", "Dataset") and type(value).__module__.partition(".")[0] == "xarray"

    def describe(self, value: Any) -> Description:
        if type(value).__name__ == "DataArray":
            return Description(shape=tuple(value.shape), dtype=f"DataArray[{value.dtype}]", nbytes=int(value.nbytes))
        return Description(shape=None, dtype="Dataset", nbytes=int(value.nbytes))

    def summarise(self, value: Any) -> Summary:
        if type(value).__name__ == "DataArray":
            dims = ", ".join(f"{d}: {n}" for d, n in value.sizes.items())
            return Summary("array", value=array_mean(value.values), text=f"DataArray ({dims})")
        names = ", ".join(str(v) for v in value.data_vars)
        return Summary("table", text=f"Dataset: {names}" if names else "Dataset (empty)")

    def write(self, path: Path, name: str, value: Any, options: Mapping[str, Any]) -> None:
        is_array = type(value).__name__ == "DataArray"
        value.to_netcdf(path, mode="w", engine="h5netcdf", group=name, invalid_netcdf=True)
        with h5py.File(path, "r+", locking=False) as f:
            f[name].attrs[_CLASS_ATTR] = "DataArray" if is_array else "Dataset"

    def read(
        self, paths: Sequence[Path], name: str, ref: DatasetRef, parameters: Mapping[str, Any]
    ) -> Any:
        import xarray as xr

        (path,) = paths
        with h5py.File(path, "r", locking=False) as f:
            cls = f[name].attrs.get(_CLASS_ATTR)
        if isinstance(cls, bytes):
            cls = cls.decode()
        if cls == "DataArray":
            array = xr.load_dataarray(path, engine="h5netcdf", group=name)
            if array.name == _UNNAMED:
                array.name = None
            return array
        return xr.load_dataset(path, engine="h5netcdf", group=name)
