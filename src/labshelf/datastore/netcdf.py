"""xarray DataArray and Dataset, stored as NetCDF-4 (HDF5) through h5netcdf.

The value is written with ``to_netcdf(engine="h5netcdf")`` into the group
named like the dataset, so the file is both valid HDF5 and readable by any
NetCDF tool.  ``invalid_netcdf=True`` lets h5netcdf keep what strict NetCDF
cannot (bool and complex values and attributes) for an exact round trip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from .formatter import Description, Formatter, Summary, no_member
from .hdf5 import open_file
from .ndarray import array_mean

if TYPE_CHECKING:
    from ..registry.records import DatasetRef
    from .members import Member, Peek

_CLASS_ATTR = "labshelf_class"
#: JSON {variable: dtype} of the datetime64/timedelta64 variables: CF
#: decoding gives datetimes back in nanoseconds, whatever unit they had.
_TIME_DTYPES_ATTR = "labshelf_time_dtypes"
_UNNAMED = "__xarray_dataarray_variable__"
#: Key of a DataArray's own values in the time dtypes (its name may be None).
_DATA = "__data__"
#: What h5netcdf writes into a dimension without a variable of its own.
_BARE_DIMENSION = "This is a netCDF dimension but not a netCDF variable"


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
        variables = {**value.coords, _DATA: value} if is_array else dict(value.variables)
        times = {str(k): v.dtype.str for k, v in variables.items() if v.dtype.kind in "Mm"}
        with h5py.File(path, "r+", locking=False) as f:
            f[name].attrs[_CLASS_ATTR] = "DataArray" if is_array else "Dataset"
            if times:
                f[name].attrs[_TIME_DTYPES_ATTR] = json.dumps(times)

    def read(
        self, paths: Sequence[Path], name: str, ref: DatasetRef, parameters: Mapping[str, Any]
    ) -> Any:
        import xarray as xr

        (path,) = paths
        with open_file(path) as f:
            cls = _text(f[name].attrs.get(_CLASS_ATTR))
            times = json.loads(_text(f[name].attrs.get(_TIME_DTYPES_ATTR)) or "{}")
        decode_times = _time_decoder(xr)
        if cls == "DataArray":
            array = xr.load_dataarray(path, engine="h5netcdf", group=name, decode_times=decode_times)
            if array.name == _UNNAMED:
                array.name = None
            if _DATA in times:
                array = array.astype(times.pop(_DATA))
            return array.assign_coords({k: array[k].astype(dtype) for k, dtype in times.items()})
        dataset = xr.load_dataset(path, engine="h5netcdf", group=name, decode_times=decode_times)
        # Our markers are attributes of the group, which xarray gives back as
        # the Dataset's own attrs: they are not the user's.
        dataset.attrs.pop(_CLASS_ATTR, None)
        dataset.attrs.pop(_TIME_DTYPES_ATTR, None)
        for k, dtype in times.items():
            dataset[k] = dataset[k].astype(dtype)
        return dataset


    def components(self, paths: Sequence[Path], ref: DatasetRef) -> list[str]:
        if not paths:
            return []
        # From the HDF5 headers alone: dimension scales and the names listed
        # in variables' "coordinates" attributes are coordinates.
        with open_file(paths[0]) as f:
            group = f[ref.name]
            names = [k for k in group if isinstance(group[k], h5py.Dataset)]
            coords = _dimension_scales(group)
            for key in names:
                coords.update((_text(group[key].attrs.get("coordinates")) or "").split())
        variables = [n for n in names if n not in coords]
        return [*variables, *(f"coords.{c}" for c in names if c in coords), "attrs"]

    def read_component(
        self, paths: Sequence[Path], ref: DatasetRef, component: str, parameters: Mapping[str, Any]
    ) -> Any:
        import xarray as xr

        (path,) = paths
        with open_file(path) as f:
            times = json.loads(_text(f[ref.name].attrs.get(_TIME_DTYPES_ATTR)) or "{}")
        # Opened lazily: only the chosen variable (and its index coordinates)
        # is read from the file.
        array = None
        with xr.open_dataset(path, engine="h5netcdf", group=ref.name, decode_times=_time_decoder(xr)) as dataset:
            if component == "attrs":
                return {k: v for k, v in dataset.attrs.items() if k not in (_CLASS_ATTR, _TIME_DTYPES_ATTR)}
            if component.startswith("coords."):
                key = component[len("coords.") :]
                if key in dataset.coords:
                    array = dataset.coords[key].load()
            else:
                key = _DATA if component == _UNNAMED else component
                if component in dataset.data_vars:
                    array = dataset[component].load()
        if array is None:  # listed once the file is closed: HDF5 refuses a second open meanwhile
            raise self.no_component(paths, ref, component)
        if key in times:
            array = array.astype(times[key])
        return array.assign_coords({k: array[k].astype(d) for k, d in times.items() if k in array.coords and k != key})


    def members(
        self, paths: Sequence[Path], ref: DatasetRef, member: str, offset: int, limit: int
    ) -> tuple[list[Member], bool]:
        """Coordinates, then variables, from the HDF5 headers of the NetCDF group (no values read)."""
        from .members import Member

        if member or not paths:
            return super().members(paths, ref, member, offset, limit)
        found = [
            Member(key, "(values)" if key == _UNNAMED else key, what, shape, dtype, nbytes,
                   component=f"coords.{key}" if what == "coord" else key)
            for key, what, shape, dtype, nbytes in _variables(paths[0], ref.name)
        ]
        return found[offset : offset + limit], len(found) > offset + limit

    def peek(self, paths: Sequence[Path], ref: DatasetRef, member: str, limit: int) -> Peek:
        """The value's repr (opened lazily: no values read), or the first values of one variable."""
        from .members import Peek

        if not paths:
            return super().peek(paths, ref, member, limit)
        value = _open_lazily(paths[0], ref.name)
        try:
            if member == "":
                return Peek("xarray", text=repr(value))
            is_array = type(value).__name__ == "DataArray"
            names = list(value.coords) + ([] if is_array else list(value.data_vars))
            if is_array and member in (_UNNAMED, value.name) and member not in value.coords:
                variable, component = value, member
            elif member in names:
                variable, component = value[member], f"coords.{member}" if member in value.coords else member
            else:
                raise no_member(ref, member, names)
            if limit <= 0:
                values = None
            elif variable.size <= limit or not variable.dims:
                values = np.asarray(variable.values)
            else:
                rows = max(1, limit * variable.shape[0] // variable.size)
                values = np.asarray(variable.isel({variable.dims[0]: slice(0, rows)}).values)
            return Peek(
                "variable", values=values, total=int(variable.size), shape=tuple(variable.shape),
                dtype=str(variable.dtype), nbytes=int(variable.nbytes),
                dims=tuple((str(d), int(n)) for d, n in variable.sizes.items()), component=component,
            )
        finally:
            value.close()


def _variables(path: Path, group_name: str) -> list[tuple[str, str, tuple[int, ...], str, int]]:
    """(name, "coord" or "variable", shape, dtype, bytes) of a stored xarray value, coordinates first."""
    with open_file(path) as f:
        group = f[group_name]
        times = json.loads(_text(group.attrs.get(_TIME_DTYPES_ATTR)) or "{}")
        coords = set((_text(group.attrs.get("coordinates")) or "").split())
        variables = [(k, v) for k, v in group.items() if isinstance(v, h5py.Dataset)]
        for _key, var in variables:
            coords.update((_text(var.attrs.get("coordinates")) or "").split())
        found = []
        for key, var in variables:
            if (_text(var.attrs.get("NAME")) or "").startswith(_BARE_DIMENSION):
                continue
            is_coord = key in coords or _text(var.attrs.get("CLASS")) == "DIMENSION_SCALE"
            dtype = str(np.dtype(times[key])) if key in times else str(var.dtype)
            found.append((key, "coord" if is_coord else "variable", tuple(var.shape), dtype, int(var.size * var.dtype.itemsize)))
    found.sort(key=lambda item: item[1] != "coord")
    return found


def _open_lazily(path: Path, group: str) -> Any:
    """The stored xarray value opened lazily: values are read only when asked for."""
    import xarray as xr

    with open_file(path) as f:
        cls = _text(f[group].attrs.get(_CLASS_ATTR))
    opener = xr.open_dataarray if cls == "DataArray" else xr.open_dataset
    value = opener(path, engine="h5netcdf", group=group, decode_times=_time_decoder(xr))
    for marker in (_CLASS_ATTR, _TIME_DTYPES_ATTR):
        value.attrs.pop(marker, None)
    if cls == "DataArray" and value.name == _UNNAMED:
        value.name = None
    return value


def _dimension_scales(group: Any) -> set[str]:
    """Names of the variables of a NetCDF-4 group that are dimension coordinates."""
    found = set()
    for key in group:
        item = group[key]
        if isinstance(item, h5py.Dataset) and _text(item.attrs.get("CLASS")) == "DIMENSION_SCALE":
            if (_text(item.attrs.get("NAME")) or "").startswith("This is a netCDF dimension but not a netCDF variable"):
                continue
            found.add(key)
    return found


def _time_decoder(xr: Any) -> Any:
    """Decode datetimes in the coarsest unit that holds them (``read`` then casts
    them to their recorded dtype), so dates outside the nanosecond range
    (before 1678, after 2262) read back too.  Older xarray always decodes to ns.
    """
    coders = getattr(xr, "coders", None)
    return True if coders is None else coders.CFDatetimeCoder(time_unit="s")


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
