"""Small texts every front end writes the same way."""

from __future__ import annotations


def size_text(nbytes: int) -> str:
    """``0 B``, ``12 B``, ``1.5 KiB``, ``10 KiB``, ``3.25 MiB``: binary units, three significant digits."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
