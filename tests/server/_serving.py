"""What the server tests share besides fixtures: the shelf they serve and how it is filled."""

from __future__ import annotations

import numpy as np

import labshelf

#: The shelf under the server's root, as the sidebar names it.
SHELF = "data/lab.shelf"


def fill(shelf: labshelf.Shelf) -> labshelf.Shelf:
    """Three runs: scalars, an image, an array, a group; run 1 has a comment and a user column."""
    for i in range(3):
        with shelf.new_run("scan" if i < 2 else "dark", {"i": i}) as run:
            run.put("temperature", 300.0 + i)
            run.put("camera/image", np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) + i)
            run.put("trace", np.arange(10.0) * i)
            run.put("scan/x", float(i))
    shelf.annotate(1, comment="aligned", quality=3)
    return shelf
