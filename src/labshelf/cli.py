"""The ``labshelf`` command line: create, info, ls, demo, upgrade."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .errors import ShelfError

EPILOG = "PATH is a shelf folder, or a postgresql:// URL (with --root for create)."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labshelf",
        description="Keep, find and watch the runs of an experiment and their datasets.",
        epilog=EPILOG,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"labshelf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("create", help="create a new, empty shelf", description="Create a new, empty shelf.")
    p.add_argument("path", metavar="PATH", help="new shelf folder, or a postgresql:// URL")
    p.add_argument("--root", help="with a URL: the folder for data files")
    p.add_argument("--schema", help="with a URL: PostgreSQL schema for the shelf's tables")
    p.add_argument("--durable", action="store_true", help="fsync every write (survives power loss; slower)")

    p = sub.add_parser("info", help="show facts about a shelf", description="Show facts about a shelf.")
    p.add_argument("path", metavar="PATH")

    p = sub.add_parser(
        "ls", help="list runs, or the datasets of one run", description="List runs, or the datasets of one run."
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--run", type=int, metavar="N", help="list the datasets of run N")
    p.add_argument("--last", type=int, metavar="K", help="only the last K runs")

    p = sub.add_parser(
        "demo",
        help="build a demo shelf and print its run table",
        description="Build a demo shelf of synthetic runs (scalars, a scan, camera images, "
        "an xarray spectrum, a pandas table) and print its run table.",
    )
    p.add_argument("path", metavar="PATH", nargs="?", default=None, help="shelf folder (default: demo.shelf)")
    p.add_argument("--runs", type=int, default=200, help="number of runs (default 200)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--overwrite", action="store_true", help="replace PATH if it is a shelf already")

    p = sub.add_parser(
        "upgrade",
        help="migrate a shelf to this labshelf's schema",
        description="Migrate a shelf's registry to the schema of this labshelf (back it up first).",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--schema", help="with a URL: PostgreSQL schema of the shelf")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except ShelfError as exc:
        print(f"labshelf {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _create(args: argparse.Namespace) -> None:
    from .shelf import create

    with create(args.path, root=args.root, schema=args.schema, durable=args.durable) as shelf:
        print(f"created {shelf.where} (datastore {shelf.root})")


def _info(args: argparse.Namespace) -> None:
    from .shelf import open as open_shelf

    with open_shelf(args.path, mode="r") as shelf:
        for key, value in shelf.info().items():
            print(f"{key:>12}: {value}")


def _ls(args: argparse.Namespace) -> None:
    from .shelf import open as open_shelf

    with open_shelf(args.path, mode="r") as shelf:
        if args.run is not None:
            print(_datasets_text(shelf, args.run))
            return
        table = shelf.runs.to_pandas(thumbnails=False)
        if args.last is not None:
            table = table.tail(args.last)
        print(_table_text(table))


def _datasets_text(shelf: Any, run: int) -> str:
    refs = shelf.run(run).datasets
    rows = [("name", "kind", "shape", "dtype", "size", "summary")]
    for ref in refs:
        summary = ref.summary
        if isinstance(summary, bytes):
            summary = f"<thumbnail {len(summary)} B>"
        elif isinstance(summary, float):
            summary = f"{summary:.6g}"
        shape = "" if ref.shape is None else "x".join(map(str, ref.shape)) or "()"
        rows.append((ref.label, ref.kind, shape, ref.dtype or "", _size(ref.nbytes), str(summary)[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _table_text(table: Any, max_rows: int = 20) -> str:
    import pandas as pd

    shown = table.copy()
    for column in ("start", "end"):
        shown[column] = shown[column].dt.tz_convert(None).dt.strftime("%Y-%m-%d %H:%M:%S")
    with pd.option_context(
        "display.max_rows", max_rows, "display.min_rows", max_rows, "display.width", 200,
        "display.max_columns", 12, "display.precision", 4,
    ):
        text = shown.to_string(max_rows=max_rows, max_cols=12, show_dimensions=False)
    return f"{text}\n[{len(table)} runs x {table.shape[1]} columns]"


def _demo(args: argparse.Namespace) -> None:
    import shutil
    import time
    from pathlib import Path

    from . import demo
    from .shelf import MARKER, create

    if args.runs < 1:
        raise ShelfError(f"--runs must be at least 1, not {args.runs}")
    path = Path(args.path or demo.default_path())
    if path.exists():
        if not args.overwrite:
            raise ShelfError(f"{path} exists; pass --overwrite to replace it, or give another PATH")
        if not (path / MARKER).is_file():
            raise ShelfError(f"{path} exists and is not a shelf; refusing to delete it")
        shutil.rmtree(path)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 20 == 0 or done == total:
            print(f"\rbuilding {path}: {done}/{total} runs", end="", file=sys.stderr, flush=True)

    with create(path) as shelf:
        demo.build(shelf, args.runs, seed=args.seed, progress=progress)
        print(f"\nbuilt {path} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        print(_table_text(shelf.runs.to_pandas(thumbnails=False)))


def _upgrade(args: argparse.Namespace) -> None:
    from .shelf import upgrade

    old, new = upgrade(args.path, schema=args.schema)
    if old == new:
        print(f"{args.path} is up to date (schema {new})")
    else:
        print(f"upgraded {args.path} from schema {old} to {new}")


_COMMANDS = {"create": _create, "info": _info, "ls": _ls, "demo": _demo, "upgrade": _upgrade}

if __name__ == "__main__":
    sys.exit(main())
