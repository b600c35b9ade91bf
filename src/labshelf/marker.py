"""The marker file ``labshelf.json``: what makes a folder a shelf, and what it may say.

A marker is untrusted input: shelves are copied, shared and unpacked from
archives, and anyone who could write the folder could have written it.  So
every field is checked, and none can make labshelf touch anything outside
the folder or the database it names:

- ``registry`` is the file ``registry.sqlite3`` in the folder (embedded), or
  a ``postgresql://`` URL whose options cannot make the driver read local
  files (:func:`url_problem`);
- ``schema`` is a plain PostgreSQL identifier, and only with a URL;
- ``durable`` is a bool, ``version`` the integer 1;
- ``shelf_id`` (32 hex digits) pairs a PostgreSQL registry with its data
  folder: the registry records the same id (see ``opening``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidName, NotAShelf

MARKER = "labshelf.json"
REGISTRY_FILE = "registry.sqlite3"
#: The marker format this labshelf writes and reads.
MARKER_VERSION = 1
#: A marker is a few hundred bytes; anything much larger is not one.
_MAX_MARKER_BYTES = 64 * 1024
_SHELF_ID = re.compile(r"[0-9a-f]{32}\Z")

#: Options a PostgreSQL URL from a marker or a registry row may carry.  Others
#: (passfile, sslkey, sslrootcert, service, ...) make the driver read local
#: files, which a shelf someone gave you must not be able to choose.
SAFE_URL_OPTIONS = frozenset({"host", "port", "sslmode", "connect_timeout", "application_name", "target_session_attrs"})
_SAFE_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg")


@dataclass(frozen=True, slots=True)
class Marker:
    """What a shelf folder's ``labshelf.json`` says, every field checked."""

    folder: Path
    #: :data:`REGISTRY_FILE`, or a ``postgresql://`` URL.
    registry: str
    schema: str | None
    durable: bool
    shelf_id: str | None

    @property
    def is_postgres(self) -> bool:
        return self.registry != REGISTRY_FILE


def url_problem(url: str) -> str | None:
    """Why a PostgreSQL URL found in a marker or registry row is refused, or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "it is not a valid postgresql:// URL"
    if parsed.drivername not in _SAFE_DRIVERS:
        return f"its driver must be one of {', '.join(_SAFE_DRIVERS)}, not {parsed.drivername!r}"
    unsafe = sorted(set(parsed.query) - SAFE_URL_OPTIONS)
    if unsafe:
        return (
            f"its options {', '.join(unsafe)} are not allowed in a shared shelf "
            f"(allowed: {', '.join(sorted(SAFE_URL_OPTIONS))})"
        )
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def read_marker(folder: Path) -> Marker:
    """The checked marker of ``folder``; :class:`NotAShelf` if it has none or a bad one."""
    path = folder / MARKER
    try:
        exists, link, is_file = folder.exists(), path.is_symlink(), path.is_file()
    except OSError as exc:  # a name too long, a folder we may not enter
        raise NotAShelf(f"cannot look for a shelf in {folder}: {exc.strerror or exc}") from exc
    if not exists:
        raise NotAShelf(f"{folder} does not exist; create a shelf with labshelf.create({str(folder)!r})")
    if link:
        raise NotAShelf(f"{path} is a symbolic link; a shelf's {MARKER} is a plain file in its folder")
    if not is_file:
        raise NotAShelf(
            f"{folder} is not a labshelf shelf (it has no {MARKER}); "
            f"create one with labshelf.create(path) in an empty folder"
        )
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_MARKER_BYTES + 1)
        if len(raw) > _MAX_MARKER_BYTES:
            raise ValueError(f"larger than {_MAX_MARKER_BYTES} bytes")
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != "labshelf":
            raise ValueError('it has no "format": "labshelf"')
    except (OSError, ValueError) as exc:
        raise NotAShelf(f"{path} is damaged or not a labshelf marker: {exc}") from exc
    return _checked(folder, doc)


def _checked(folder: Path, doc: Mapping[str, Any]) -> Marker:
    path = folder / MARKER

    def refuse(field: str, allowed: str) -> NotAShelf:
        return NotAShelf(f"{path} is not a valid labshelf marker: {field!r} is {_shown(doc.get(field))}; {allowed}")

    version = doc.get("version", MARKER_VERSION)
    if type(version) is not int or version < 1:
        raise refuse("version", f"it is the integer {MARKER_VERSION}")
    if version > MARKER_VERSION:
        raise NotAShelf(f"{path} was written by a newer labshelf (marker version {version}); upgrade labshelf to open it")
    durable = doc.get("durable", False)
    if not isinstance(durable, bool):
        raise refuse("durable", "it is true or false")
    registry = doc.get("registry", REGISTRY_FILE)
    schema = doc.get("schema")
    if not isinstance(registry, str) or (registry != REGISTRY_FILE and not registry.startswith("postgres")):
        raise refuse(
            "registry",
            f"an embedded shelf's registry is the file {REGISTRY_FILE!r} in its folder, "
            "and a shared one a postgresql:// URL",
        )
    if registry == REGISTRY_FILE:
        if schema is not None:
            raise refuse("schema", "only a shelf with a postgresql:// registry has a schema")
    else:
        problem = url_problem(registry)
        if problem is not None:
            raise refuse("registry", problem)
        if schema is not None:
            from .registry.engine import check_schema_name

            try:
                check_schema_name(schema)
            except InvalidName as exc:
                raise refuse("schema", "it is a plain identifier (letters, digits and _) or null") from exc
    shelf_id = doc.get("shelf_id")
    if shelf_id is not None and not (isinstance(shelf_id, str) and _SHELF_ID.match(shelf_id)):
        raise refuse("shelf_id", "it is the 32 hexadecimal digits labshelf.create wrote")
    return Marker(folder, registry, schema, durable, shelf_id)


def write_marker(folder: Path, marker: Marker) -> None:
    doc: dict[str, Any] = {"format": "labshelf", "version": MARKER_VERSION, "durable": marker.durable}
    doc["registry"] = marker.registry
    if marker.is_postgres:
        doc["schema"] = marker.schema
    if marker.shelf_id is not None:
        doc["shelf_id"] = marker.shelf_id
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, folder / MARKER)
