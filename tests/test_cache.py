"""The read cache: hits, read-only arrays, copy=True, freshness after writes, the byte limit.

Freshness across processes uses a real writer process (``python -c``) that
opens the same shelf and writes into the run the test keeps open.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import labshelf

N = 25_000  # float64: 200 KB, a data file


def big(seed: float, n: int = N) -> np.ndarray:
    return np.arange(n, dtype=np.float64) + seed


def write_from_another_process(root: Path, run: int, action: str) -> None:
    code = (
        "import sys, numpy as np, labshelf\n"
        "shelf = labshelf.open(sys.argv[1])\n"
        "run = shelf.run(int(sys.argv[2]))\n"
        f"{action}\n"
        "shelf.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(root), str(run)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_the_second_get_is_a_hit(shelf: labshelf.Shelf) -> None:
    assert shelf.cache.limit == 512 * 2**20
    with shelf.new_run() as run:
        run.put("arr", big(0))
    hits, misses = shelf.cache.hits, shelf.cache.misses
    first = shelf.get("arr", run=1)
    assert (shelf.cache.hits, shelf.cache.misses) == (hits, misses + 1)
    assert shelf.cache.nbytes >= first.nbytes
    second = shelf.get("arr", run=1)
    assert (shelf.cache.hits, shelf.cache.misses) == (hits + 1, misses + 1)
    np.testing.assert_array_equal(second, big(0))


def test_arrays_out_of_the_cache_are_read_only_and_copy_gives_a_private_one(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("arr", big(0))
        run.put("small", np.arange(5.0))  # inline in the registry
        run.put("camera/image", np.arange(32 * 32, dtype="u2").reshape(32, 32))
    for name in ("arr", "small", "camera/image"):
        for _ in range(2):  # the miss and the hit
            value = shelf.get(name, run=1)
            assert not value.flags.writeable, name
            with pytest.raises(ValueError):
                value[0] = 7
    kept = shelf.get("arr", run=1)
    mine = shelf.get("arr", run=1, copy=True)
    assert mine.flags.writeable
    mine[:] = -1
    np.testing.assert_array_equal(kept, big(0))
    np.testing.assert_array_equal(shelf.get("arr", run=1), big(0))
    other = shelf.get("arr", run=1, copy=True)
    assert other is not mine and not np.shares_memory(other, mine)
    np.testing.assert_array_equal(other, big(0))


def test_a_put_append_or_mutate_makes_the_next_get_fresh(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("arr", big(0))
        run.put("small", 1.5)
        np.testing.assert_array_equal(shelf.get("arr", run=1), big(0))
        assert shelf.get("small", run=1) == 1.5
        run.put("arr", big(10))
        run.put("small", 2.5)
        np.testing.assert_array_equal(shelf.get("arr", run=1), big(10))
        assert shelf.get("small", run=1) == 2.5
        run.append("arr", np.arange(3.0))
        np.testing.assert_array_equal(shelf.get("arr", run=1), np.concatenate([big(10), np.arange(3.0)]))
        run.mutate("arr", 0, -5.0)
        got = shelf.get("arr", run=1)
        assert got[0] == -5.0 and got.shape == (N + 3,)
        # A slice is cached under its own key, and goes stale the same way.
        assert shelf.get("arr", run=1, parameters={"slice": np.s_[:2]}).tolist() == [-5.0, 11.0]
        run.mutate("arr", 1, -6.0)
        assert shelf.get("arr", run=1, parameters={"slice": np.s_[:2]}).tolist() == [-5.0, -6.0]
        assert shelf.get("arr", run=1).shape == (N + 3,)


def test_writes_from_another_process_make_the_next_get_fresh(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("arr", big(0))
        run.put("small", 1)
        np.testing.assert_array_equal(shelf.get("arr", run=1), big(0))
        assert shelf.get("small", run=1) == 1
        write_from_another_process(shelf.root, 1, f"run.put('arr', np.arange({N}, dtype=np.float64) + 100)\nrun.put('small', 2)")
        np.testing.assert_array_equal(shelf.get("arr", run=1), big(100))
        assert shelf.get("small", run=1) == 2
        write_from_another_process(shelf.root, 1, "run.append('arr', [1.0, 2.0])")
        assert shelf.get("arr", run=1).shape == (N + 2,)
        write_from_another_process(shelf.root, 1, "run.mutate('arr', 0, -1.0)")
        got = shelf.get("arr", run=1)
        assert got[0] == -1.0 and got[-1] == 2.0


@pytest.fixture
def limited(shelf: labshelf.Shelf) -> Iterator[labshelf.Shelf]:
    """The test shelf opened again with a 1 MB cache."""
    with labshelf.open(shelf.root, cache_bytes=1_000_000) as small:
        yield small


def test_the_byte_limit_is_respected(shelf: labshelf.Shelf, limited: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        for i in range(10):  # 2 MB in all, twice the limit
            run.put(f"a{i}", big(i))
        run.put("huge", big(0, 250_000))  # 2 MB alone
    assert limited.cache.limit == 1_000_000
    for i in range(10):
        np.testing.assert_array_equal(limited.get(f"a{i}", run=1), big(i))
        assert limited.cache.nbytes <= 1_000_000
    assert limited.cache.nbytes >= 600_000  # it does keep what fits
    misses = limited.cache.misses
    np.testing.assert_array_equal(limited.get("a0", run=1), big(0))  # the oldest was dropped
    assert limited.cache.misses == misses + 1
    np.testing.assert_array_equal(limited.get("huge", run=1), big(0, 250_000))
    assert limited.cache.nbytes <= 1_000_000
    misses = limited.cache.misses
    limited.get("huge", run=1)  # larger than the whole cache: never kept
    assert limited.cache.misses == misses + 1


def test_clear_empties_the_cache(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("arr", big(0))
    shelf.get("arr", run=1)
    shelf.get("arr", run=1)
    assert shelf.cache.nbytes > 0
    shelf.cache.clear()
    assert shelf.cache.nbytes == 0
    misses = shelf.cache.misses
    np.testing.assert_array_equal(shelf.get("arr", run=1), big(0))
    assert shelf.cache.misses == misses + 1
