"""xarray DataArray and Dataset, stored as NetCDF-4 (HDF5) through h5netcdf.

The value is written with ``to_netcdf(engine="h5netcdf")`` into the group
named like the dataset, so the file is both valid HDF5 and readable by any
NetCDF tool.  ``invalid_netcdf=True`` lets h5netcdf keep what strict NetCDF
cannot (bool and complex values and attributes) for an exact round trip.

What NetCDF reading would give back otherwise is restored from a record of
the original dtypes (datetime units, byte order, str objects); what it cannot
restore is refused at put: object arrays of anything but str, attributes
NetCDF does not hold, and attributes its conventions would consume on read
(``units`` of times, ``_FillValue``, ``scale_factor``, ...), found by
reading the new file's headers back before it becomes visible.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from ..errors import UnsupportedValue
from .formatter import Description, Formatter, Summary, invalid_text, is_valid_text, no_member
from .hdf5 import member, open_file
from .ingested import stored_name
from .ndarray import array_mean, valid_code_points

if TYPE_CHECKING:
    from ..registry.records import DatasetRef
    from .members import Member, Peek

_CLASS_ATTR = "labshelf_class"
#: JSON {variable: dtype} of the variables NetCDF reading gives back in
#: another dtype: datetime64/timedelta64 (CF decoding picks its own unit),
#: non-native byte order (read back native), strings (as wide as their
#: longest) and str objects (read back as numpy str).  The name is from when
#: it held time dtypes only.
_TIME_DTYPES_ATTR = "labshelf_time_dtypes"
_UNNAMED = "__xarray_dataarray_variable__"
#: Key of a DataArray's own values in the time dtypes (its name may be None).
_DATA = "__data__"
#: What h5netcdf writes into a dimension without a variable of its own.
_BARE_DIMENSION = "This is a netCDF dimension but not a netCDF variable"
#: HDF5 opens a file once per process with one locking flag: reads use none, as
#: ``hdf5.open_file`` does (so a file h5py holds open can be read by xarray too).
#: (Reads also say phony_dims="access": an export file holds plain HDF5 datasets
#: beside its NetCDF groups, and xarray warns about their dimensions otherwise.)
_UNLOCKED = {"locking": False}


class XarrayFormatter(Formatter):
    kind = "xarray"
    priority = 10
    describes = "xarray.DataArray and xarray.Dataset"

    def accepts(self, value: Any) -> bool:
        # Decided by class name and module, so that asking never imports xarray.
        return type(value).__name__ in ("DataArray", "Dataset") and type(value).__module__.partition(".")[0] == "xarray"

    def prepare(self, value: Any) -> Any:
        for label, variable in _variables(value):
            _check_variable(label, variable)
        _check_attrs(value.attrs, "the attrs" if type(value).__name__ == "Dataset" else "the DataArray's attrs")
        return value

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
        write_group(path, name, value)

    def read(
        self, paths: Sequence[Path], name: str, ref: DatasetRef, parameters: Mapping[str, Any]
    ) -> Any:
        (path,) = paths
        return read_group(path, name)

    def components(self, paths: Sequence[Path], ref: DatasetRef) -> list[str]:
        if not paths:
            return []
        # From the HDF5 headers alone: dimension scales and the names listed
        # in variables' "coordinates" attributes are coordinates.
        with open_file(paths[0]) as f:
            group = member(f, stored_name(ref), whole=True)
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
            times = json.loads(_text(member(f, stored_name(ref), whole=True).attrs.get(_TIME_DTYPES_ATTR)) or "{}")
        # Opened lazily: only the chosen variable (and its index coordinates)
        # is read from the file.
        array = None
        with xr.open_dataset(path, engine="h5netcdf", group=stored_name(ref), decode_times=_time_decoder(xr)) as dataset:
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
            for key, what, shape, dtype, nbytes in _stored_variables(paths[0], stored_name(ref))
        ]
        return found[offset : offset + limit], len(found) > offset + limit

    def peek(self, paths: Sequence[Path], ref: DatasetRef, member: str, limit: int) -> Peek:
        """The value's repr (opened lazily: no values read), or the first values of one variable."""
        from .members import Peek

        if not paths:
            return super().peek(paths, ref, member, limit)
        value = _open_lazily(paths[0], stored_name(ref))
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



def write_group(path: Path, name: str, value: Any, *, mode: str = "w", check: bool = True) -> None:
    """Write ``value`` as the NetCDF group ``name`` of the file at ``path`` (``mode="a"``: beside
    what the file holds), with the markers :func:`read_group` needs to give it back exactly;
    ``check`` reads the headers back and refuses what would not come back as it was."""
    is_array = type(value).__name__ == "DataArray"
    kind = "DataArray" if is_array else "Dataset"
    try:
        _with_checksums(value).to_netcdf(path, mode=mode, engine="h5netcdf", group=name, invalid_netcdf=True)
    except (ValueError, TypeError, NotImplementedError, AttributeError) as exc:
        # What prepare() did not foresee: xarray's and h5netcdf's own refusals.
        raise UnsupportedValue(f"this {kind} cannot be stored as NetCDF: {exc}") from exc
    variables = {**value.coords, _DATA: value} if is_array else dict(value.variables)
    restore = {str(k): v.dtype.str for k, v in variables.items() if _read_back_changes(v.dtype)}
    with h5py.File(path, "r+", locking=False) as f:
        f[name].attrs[_CLASS_ATTR] = kind
        if restore:
            f[name].attrs[_TIME_DTYPES_ATTR] = json.dumps(restore)
    if check:
        _check_headers(path, name, value, restore)


def read_group(path: Path, name: str, *, drop_attrs: Sequence[str] = ()) -> Any:
    """The DataArray or Dataset :func:`write_group` wrote as group ``name`` (``drop_attrs``: group
    attributes that are not the value's, such as an export's own)."""
    import xarray as xr

    with open_file(path) as f:
        group = member(f, name, whole=True)  # before xarray goes where the file leads
        cls = _text(group.attrs.get(_CLASS_ATTR))
        times = json.loads(_text(group.attrs.get(_TIME_DTYPES_ATTR)) or "{}")
    decode_times = _time_decoder(xr)
    if cls == "DataArray":
        array = xr.load_dataarray(path, engine="h5netcdf", group=name, decode_times=decode_times, driver_kwds=_UNLOCKED,
                                    phony_dims="access")
        if array.name == _UNNAMED:
            array.name = None
        if _DATA in times:
            array = array.astype(times.pop(_DATA))
        return array.assign_coords({k: array[k].astype(dtype) for k, dtype in times.items()})
    dataset = xr.load_dataset(path, engine="h5netcdf", group=name, decode_times=decode_times, driver_kwds=_UNLOCKED,
                                    phony_dims="access")
    # Our markers are attributes of the group, which xarray gives back as
    # the Dataset's own attrs: they are not the user's.
    for key in (_CLASS_ATTR, _TIME_DTYPES_ATTR, *drop_attrs):
        dataset.attrs.pop(key, None)
    for k, dtype in times.items():
        dataset[k] = dataset[k].astype(dtype)
    return dataset


def _read_back_changes(dtype: np.dtype) -> bool:
    """Whether NetCDF reading gives a variable of ``dtype`` back in another dtype."""
    # Strings come back as wide as their longest one, not as their dtype.
    return dtype.kind in "MmOUS" or not dtype.isnative


def _variables(value: Any) -> Iterator[tuple[str, Any]]:
    """(how errors name it, Variable) of every variable of a DataArray or Dataset."""
    if type(value).__name__ == "DataArray":
        if value.name is not None:
            _check_name(value.name, "a DataArray's name")
        yield ("the DataArray" if value.name is None else f"the DataArray {value.name!r}"), value.variable
        items = value.coords.items()
    else:
        items = value.variables.items()
    for key, variable in items:
        _check_name(key, "variable and coordinate names")
        yield f"variable {key!r}", variable


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str):
        raise UnsupportedValue(
            f"{what} must be str to be stored (NetCDF names are text), not {type(name).__name__} {name!r}"
        )
    if not is_valid_text(name):
        raise invalid_text(f"the name {name!r}")


def _check_variable(label: str, variable: Any) -> None:
    """Refuse a variable whose values NetCDF cannot give back exactly."""
    dtype = variable.dtype
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufcSUMmO" or dtype.fields is not None:
        raise UnsupportedValue(
            f"{label} has dtype {dtype}, which NetCDF does not store; use a numeric, bool, "
            "bytes, str or datetime64/timedelta64 dtype"
        )
    if dtype.kind == "c" and dtype.itemsize > 16:
        raise UnsupportedValue(f"{label} has dtype {dtype}; NetCDF stores complex64 and complex128 only")
    if dtype.kind == "O":
        for x in np.asarray(variable.values).flat:
            if not isinstance(x, str):
                raise UnsupportedValue(
                    f"{label} is an object array holding {type(x).__name__} values; object arrays are "
                    "stored only when every element is a str"
                )
            if not is_valid_text(x):
                raise invalid_text(f"a str of {label}")
            if "\x00" in x:
                raise _nul_inside(label)
    elif dtype.kind == "U" and variable.size and dtype.itemsize:
        values = np.asarray(variable.values)
        if not valid_code_points(values):
            raise invalid_text(f"a str of {label}")
        # Trailing NULs are a str array's padding; a NUL before the last other
        # character makes the length numpy sees exceed the count of non-NULs.
        points = np.ascontiguousarray(values).view(values.dtype.str[0] + "u4").reshape(values.size, -1)
        if (np.char.str_len(values).ravel() != np.count_nonzero(points, axis=1)).any():
            raise _nul_inside(label)
    _check_attrs(variable.attrs, f"the attrs of {label}")


def _nul_inside(label: str) -> UnsupportedValue:
    return UnsupportedValue(
        f"a str of {label} has a NUL character inside it, which NetCDF strings (variable-length, "
        "NUL-terminated) cannot hold; store the values as bytes (dtype S), or replace the NULs"
    )


#: Attribute values NetCDF keeps: numbers and str, and arrays (lists) of them.
_ATTR_RULE = "attribute values must be str, numbers, bools, or 1-D arrays or lists of numbers or of str"


def _check_attrs(attrs: Mapping[Any, Any], where: str) -> None:
    for key, item in attrs.items():
        if not isinstance(key, str):
            raise UnsupportedValue(f"{where}: attribute names must be str, not {type(key).__name__} {key!r}")
        if not is_valid_text(key):
            raise invalid_text(f"an attribute name in {where}")
        if _is_number(item):
            continue
        texts: Sequence[Any] = ()
        if isinstance(item, str):
            texts = (item,)
        elif isinstance(item, np.ndarray) and item.ndim <= 1 and item.dtype.kind in "biufcU":
            texts = item.tolist() if item.dtype.kind == "U" else ()
        elif isinstance(item, (list, tuple)) and (
            all(isinstance(x, str) for x in item) or all(_is_number(x) for x in item)
        ):
            texts = item
        else:
            raise UnsupportedValue(
                f"attribute {key!r} in {where} is a {type(item).__name__} ({_shown(item)}); {_ATTR_RULE}"
            )
        if not all(is_valid_text(x) for x in texts if isinstance(x, str)):
            raise invalid_text(f"attribute {key!r} in {where}")
        if any("\x00" in x for x in texts if isinstance(x, str)):
            raise _nul_inside(f"attribute {key!r} in {where}")


def _is_number(item: Any) -> bool:
    return isinstance(item, (numbers.Number, np.number, np.bool_))


def _shown(item: Any) -> str:
    text = " ".join(repr(item).split())  # one line, even for an array
    return text if len(text) <= 60 else text[:57] + "..."


def _check_headers(path: Path, name: str, value: Any, restore: Mapping[str, str]) -> None:
    """Refuse what NetCDF reading would give back changed, from the new file's headers.

    CF decoding consumes some attributes (``_FillValue``, ``scale_factor``,
    ``units`` of times, ``coordinates``...) and turns the values they
    describe into something else; such a variable comes back with other
    attributes or another dtype, which its lazily opened headers show
    without reading any data.
    """
    import xarray as xr

    is_array = type(value).__name__ == "DataArray"
    expected = {**{str(k): v.variable for k, v in value.coords.items()}, _DATA: value.variable} if is_array else {
        str(k): v for k, v in value.variables.items()
    }
    with xr.open_dataset(
        path, engine="h5netcdf", group=name, decode_times=_time_decoder(xr), **_headers_only(xr)
    ) as stored:
        got: dict[Any, Any] = dict(stored.variables)
        if is_array:
            got[_DATA] = got.pop(_UNNAMED if value.name is None else value.name, None)
        for key, variable in expected.items():
            back = got.get(key)
            label = "the DataArray" if key == _DATA else f"variable {key!r}"
            if back is None:
                raise UnsupportedValue(f"{label} would not come back from NetCDF; rename it")
            dtype = np.dtype(restore[key]) if key in restore else back.dtype
            if dtype != variable.dtype or back.dims != variable.dims:
                raise UnsupportedValue(
                    f"{label} would come back from NetCDF as {dtype} {back.dims} instead of "
                    f"{variable.dtype} {variable.dims}{_consumed(variable.attrs, back.attrs)}"
                )
            if not xr.Variable((), 0, attrs=variable.attrs).identical(xr.Variable((), 0, attrs=back.attrs)):
                raise UnsupportedValue(
                    f"the attributes of {label} would come back from NetCDF changed{_consumed(variable.attrs, back.attrs)}"
                )
        own = {k: v for k, v in stored.attrs.items() if k not in (_CLASS_ATTR, _TIME_DTYPES_ATTR)}
        # A DataArray's attrs are its variable's, compared above; a Dataset has its own.
        if not xr.Variable((), 0, attrs={} if is_array else value.attrs).identical(xr.Variable((), 0, attrs=own)):
            raise UnsupportedValue(f"the attrs of this {type(value).__name__} would come back from NetCDF changed")


def _headers_only(xr: Any) -> dict[str, Any]:
    """What keeps ``open_dataset`` from loading index coordinates (newer xarray only)."""
    import inspect

    takes = "create_default_indexes" in inspect.signature(xr.open_dataset).parameters
    return {"create_default_indexes": False} if takes else {}


def _consumed(put: Mapping[str, Any], back: Mapping[str, Any]) -> str:
    gone = [k for k in put if k not in back]
    if not gone:
        return ""
    return (
        f": NetCDF reading takes the attribute{'s' if len(gone) > 1 else ''} {', '.join(map(repr, gone))} "
        "as an encoding (CF conventions), not as data; rename it"
    )

def _with_checksums(value: Any) -> Any:
    """A shallow copy of ``value`` whose variables HDF5 stores with fletcher32 checksums.

    HDF5 then checks every chunk it reads, whole values and single variables
    alike.  Set in each variable's own encoding, which xarray merges with what
    it derives itself (an ``encoding=`` argument would replace it).  Strings
    (variable length in HDF5) take no filter, a scalar no chunks, and a layout
    the value asks to keep contiguous is kept.
    """
    copy = value.copy(deep=False)
    if type(copy).__name__ == "DataArray":
        variables = [copy.variable, *(c.variable for c in copy.coords.values())]
    else:
        variables = list(copy.variables.values())
    for variable in variables:
        if variable.ndim and variable.dtype.kind in "biufcmM" and not variable.encoding.get("contiguous"):
            variable.encoding = {**variable.encoding, "fletcher32": True}
    return copy


def _stored_variables(path: Path, group_name: str) -> list[tuple[str, str, tuple[int, ...], str, int]]:
    """(name, "coord" or "variable", shape, dtype, bytes) of a stored xarray value, coordinates first."""
    with open_file(path) as f:
        group = member(f, group_name, whole=True)
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
        cls = _text(member(f, group, whole=True).attrs.get(_CLASS_ATTR))  # before xarray follows the file
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
