"""The ``labshelf`` command line: create, info, ls, demo, simulate, upgrade, reprocess, context, verify,
describe, tag-columns, log, logbook, import, ingest, trust-data, export."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from typing import Any

from ._format import size_text
from .errors import ShelfError

EPILOG = (
    "PATH is a shelf folder; create, simulate and upgrade also take a postgresql:// URL "
    "(with --root, the data folder, and --schema)."
)


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
    p.add_argument(
        "--schema", help="with a URL: PostgreSQL schema for the shelf's tables (letters, digits and _)"
    )
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
        "simulate",
        help="write runs like a running experiment, for live views",
        description="Behave like an experiment writing into the shelf: start a new run every --run-length "
        "seconds; append scan points (scan/x, scan/counts) at --rate per second; put camera frames "
        "(camera/image, a moving beam spot with shot noise) and counters (pmt/rate stored, pmt/live only "
        "broadcast). Prints one line per run. Ctrl-C or SIGTERM ends the current run as aborted.",
    )
    p.add_argument("path", metavar="PATH", help="shelf folder, or a postgresql:// URL")
    p.add_argument("--rate", type=float, default=20.0, metavar="N", help="scan points per second (default 20)")
    p.add_argument("--image", type=int, default=1024, metavar="PX", help="camera frame side, 0 for none (default 1024)")
    p.add_argument("--frame-rate", type=float, default=4.0, metavar="F", help="camera frames per second (default 4)")
    p.add_argument("--run-length", type=float, default=5.0, metavar="S", help="seconds per run (default 5)")
    p.add_argument("--runs", type=int, metavar="N", help="stop after N runs (default: until stopped)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until stopped)")
    p.add_argument("--seed", type=int, metavar="K", help="seed of the random numbers")
    p.add_argument("--create", action="store_true", help="create the shelf if it does not exist")
    p.add_argument("--root", help="with a URL: the folder for data files")
    p.add_argument("--schema", help="with a URL: PostgreSQL schema of the shelf")

    p = sub.add_parser(
        "upgrade",
        help="migrate a shelf to this labshelf's schema",
        description="Migrate a shelf's registry to the schema of this labshelf (back it up first).",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--schema", help="with a URL: PostgreSQL schema of the shelf")

    p = sub.add_parser(
        "reprocess",
        help="compute derived variables (context file) where they are stale",
        description="Compute the derived variables of the shelf's context file for each run where the "
        "stored result is stale: never computed, the function changed, or an input changed. "
        "Results are stored as datasets derived/NAME; a variable that raises is recorded as failed for "
        "that run and the others go on (the exit status is still 0).",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--runs", metavar="RUNS", help="runs to process, e.g. 10-20,25 (default: all)")
    p.add_argument(
        "--var", action="append", dest="variables", metavar="NAME",
        help="only this variable and those it needs; repeat for more (default: all)",
    )
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="processes computing at once (default 1)")
    p.add_argument(
        "--dask-scheduler", metavar="ADDRESS",
        help="compute on a Dask cluster (tcp://host:8786) whose workers reach this shelf",
    )
    p.add_argument("--force", action="store_true", help="recompute even results that are up to date")
    p.add_argument(
        "--trust-context", metavar="FILE",
        help="run FILE, the shelf's context file, although it lies outside the shelf's folder and you have "
        "not confirmed it with `context set` (this time only)",
    )

    p = sub.add_parser(
        "context",
        help="show or set the context file of derived variables",
        description="The context file is Python defining derived variables with @labshelf.variable. "
        "By default it is context.py in the shelf folder; `context set` records another one.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser(
        "set",
        help="record FILE as the shelf's context file",
        description="Check that FILE loads (this runs it), then record it as the shelf's context file. "
        "A FILE outside the shelf's folder is also remembered as confirmed by you, on this machine "
        "(in ~/.config/labshelf), so that reprocessing runs it; other users confirm it for themselves.",
    )
    a.add_argument("path", metavar="PATH")
    a.add_argument("file", metavar="FILE", help="a Python file defining @variable functions")
    a = actions.add_parser(
        "show",
        help="print the context file and its variables",
        description="Print the shelf's context file and its variables, in computing order, with their "
        "inputs and how many runs have a result, an error or missing inputs. The file is read as text, "
        "never run; a file outside the shelf's folder is read only once you confirmed it.",
    )
    a.add_argument("path", metavar="PATH")

    p = sub.add_parser(
        "verify",
        help="check a shelf's data files and registry",
        description="Check that every data file a dataset needs is there, inside the shelf and intact "
        "(checksums verified), that registry values decode, and look for files no dataset refers to "
        "(crashed writers, lost registry rows). Only reads. Exit status 0 if all is well, 1 if not.",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--runs", metavar="RUNS", type=_runs_text, help="only these runs, e.g. 10-20,25 (default: all)")
    p.add_argument("--full", action="store_true", help="SQLite: PRAGMA integrity_check instead of quick_check")

    p = sub.add_parser(
        "describe",
        help="show or set how a dataset's values are shown (unit, scale, precision, title, description)",
        description="Without NAME: list the display metadata of every dataset name. With NAME alone: show "
        "its metadata. With options: set them (for every run; --data-id for only that data ID, which wins "
        "over the name's) and print the result. A field not given keeps its value; --clear removes one. "
        "Scale has ARTIQ's meaning: values are stored in base units and shown as value / scale.",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("name", metavar="NAME", nargs="?", help="a dataset name (or a user column's name)")
    p.add_argument(
        "--data-id", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="describe only this data ID, e.g. channel=2 (ints and true/false as such, the rest text)",
    )
    p.add_argument("--unit", metavar="U", help="short text, e.g. ps or counts/s")
    p.add_argument("--scale", type=float, metavar="S", help="shown value = stored value / S (e.g. 1e-6 for us)")
    p.add_argument("--precision", type=int, metavar="P", help="digits after the point, 0 to 15")
    p.add_argument("--title", metavar="T", help="a human title; '/' groups columns (Beam/XGM mean)")
    p.add_argument("--description", metavar="D", help="free text")
    p.add_argument(
        "--clear", action="append", default=[], choices=META_FIELDS, metavar="FIELD",
        help=f"remove a field ({', '.join(META_FIELDS)}); repeat for more",
    )

    p = sub.add_parser(
        "tag-columns",
        help="show or set the tags of run-table columns",
        description="Without NAME: list the tagged columns. With NAME alone: show its tags. With TAGs: "
        "replace its tags with them; --clear removes them. Column tags group columns of the run table; "
        "they are not run tags.",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("name", metavar="NAME", nargs="?", help="a dataset name or a user column's name")
    p.add_argument("tags", metavar="TAG", nargs="*", help="the column's tags")
    p.add_argument("--clear", action="store_true", help="remove the column's tags")

    p = sub.add_parser(
        "log",
        help="write an entry in the shelf's logbook",
        description="Write TEXT in the shelf's logbook (comments not tied to a run), with your user name. "
        "Prints the entry's number.",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--at", metavar="TIME", help=f"when it happened ({TIME_HELP}; default now)")

    p = sub.add_parser(
        "logbook",
        help="print the shelf's logbook",
        description="Print the entries of the shelf's logbook, oldest first, with their times in UTC.",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--since", metavar="TIME", help=f"only entries at or after TIME ({TIME_HELP})")
    p.add_argument("--until", metavar="TIME", help="only entries at or before TIME")
    _import_parser(sub)
    _ingest_parser(sub)
    _export_parser(sub)
    return parser


def _ingest_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ingest",
        help="register an existing HDF5, NetCDF-4 or Parquet file as a dataset, without copying it",
        description="Register FILE as dataset NAME of run RUN without rewriting it: one HDF5 dataset "
        "(--dataset /entry/data/data), or a whole NetCDF-4 file, or a Parquet table. Its summary and "
        "thumbnail are made once from a bounded part of the file; reads go to the file. labshelf never "
        "writes to or deletes the file; a read of a file that changed since raises an error. A file kept "
        "outside the shelf (--transfer direct or symlink) is read only by users who confirmed it: "
        "ingesting confirms it for you, others run `labshelf trust-data SHELF FILE`.",
    )
    p.add_argument("path", metavar="SHELF")
    p.add_argument("run", metavar="RUN", help="a running run's number, or 'new' for a new run (finished after)")
    p.add_argument("name", metavar="NAME", help="the new dataset's name")
    p.add_argument("file", metavar="FILE", help="an HDF5, NetCDF-4 or Parquet file")
    p.add_argument("--dataset", metavar="MEMBER", help="the HDF5 dataset to register, e.g. /entry/data/data")
    p.add_argument(
        "--transfer", default="direct", metavar="HOW",
        help="direct (read it where it is; default), symlink (a link in the shelf's data/), or copy (into data/)",
    )
    p.add_argument(
        "--data-id", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="the dataset's data ID, e.g. channel=2",
    )
    p = sub.add_parser(
        "trust-data",
        help="let a shelf read ingested files outside it, for you",
        description="Confirm that the shelf SHELF may read the ingested file FILE (or every file under the "
        "folder FILE) for you. A shelf's registry may name any file, so a file ingested in place outside "
        "the shelf is read only once the user reading confirmed it; kept in ~/.config/labshelf/"
        "trusted-data.json ($XDG_CONFIG_HOME), never in the shelf.",
    )
    p.add_argument("path", metavar="SHELF")
    p.add_argument("file", metavar="FILE", help="an ingested file, or a folder of them")


def _export_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write runs as self-describing HDF5 files (readable without labshelf)",
        description="Write one HDF5 file per run (run_<n>.h5: run metadata as attributes, datasets by name, "
        "xarray values as NetCDF groups, tables as compound datasets plus their Parquet bytes) and index.json "
        "(display metadata, column tags, user columns, logbook) into OUT_DIR. `labshelf import labshelf "
        "OUT_DIR SHELF` reads them back. Exit status 0 if every run was exported whole, 1 otherwise.",
    )
    p.add_argument("path", metavar="SHELF", help="the shelf to export from")
    p.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write to (made if missing; not inside the shelf)")
    p.add_argument("--runs", metavar="RUNS", type=_runs_text, help="only these runs, e.g. 10-20,25 (default: all)")
    p.add_argument("--format", default="hdf5", help="the file format: hdf5 (the only one so far)")
    p.add_argument("--overwrite", action="store_true", help="replace files an earlier export wrote")


META_FIELDS = ("unit", "scale", "precision", "title", "description")
TIME_HELP = "ISO 8601 such as 2026-12-05T14:05 (local time unless it says +00:00) or seconds since the epoch"


def _import_parser(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="bring runs in from other programs' files (ARTIQ results, DAMNIT databases)",
        description="Import runs written by other programs into a shelf. Importing again adds only what is "
        "new and finishes what an interrupted import began. Exit status 0 if every file was imported (or "
        "was already), 1 if some were skipped or the import was refused.",
    )
    formats = p.add_subparsers(dest="action", metavar="FORMAT", required=True)
    a = formats.add_parser(
        "artiq",
        help="an ARTIQ results folder: one run per <rid>-<Class>.h5 file",
        description="Import an ARTIQ results folder (results/<date>/<hour>/<rid>-<Class>.h5, searched "
        "recursively): one run per file, numbered by its RID, with its datasets, archived datasets "
        "(archive/...), units and thumbnail. A RID that is already a run of the shelf from elsewhere is "
        "an error listing them all, before anything is written; --renumber gives the next free numbers instead.",
    )
    a.add_argument("source", metavar="RESULTS_DIR", help="the ARTIQ results folder (or one results file)")
    a.add_argument("path", metavar="SHELF", help="the shelf to import into")
    a.add_argument("--renumber", action="store_true", help="next free run numbers (RID kept in params artiq_rid)")
    a.add_argument("--dry-run", action="store_true", help="only say what would be imported; write nothing")
    a.add_argument(
        "--link", action="store_true",
        help="keep arrays of 1 MiB and more in the results files (ingested in place, read from there) instead "
        "of copying them; the files must then stay where they are, unchanged",
    )
    e = formats.add_parser(
        "labshelf",
        help="a folder `labshelf export` wrote: one run per run_<n>.h5",
        description="Import a folder `labshelf export` wrote: each run_<n>.h5 becomes run <n> again with its "
        "datasets, comment, tags and user columns; index.json brings display metadata, column tags and the "
        "logbook. An exported number that is a run of the shelf from elsewhere is an error listing them all, "
        "before anything is written; --renumber gives the next free numbers instead.",
    )
    e.add_argument("source", metavar="OUT_DIR", help="the export folder (or one run_<n>.h5 of it)")
    e.add_argument("path", metavar="SHELF", help="the shelf to import into")
    e.add_argument("--renumber", action="store_true", help="next free run numbers (exported number in params export_run)")
    e.add_argument("--dry-run", action="store_true", help="only say what would be imported; write nothing")
    d = formats.add_parser(
        "damnit",
        help="a DAMNIT folder (runs.sqlite, extracted_data/, context.py): one run per DAMNIT run",
        description="Import a DAMNIT folder: one run per run_info row, numbered by DAMNIT's run number; each "
        "variable's full value from extracted_data/ as dataset derived/<name> (its summary where the run file "
        "lacks it), errors as the cells' errors, titles/units/tags as display metadata and column tags, "
        "time comments as the logbook, the comment and user-editable variables as annotations; context.py is "
        "copied as damnit_context.py, never run. Cell styling is dropped (with a warning). A run number that is "
        "already a run of the shelf from elsewhere is an error listing them all, before anything is written; "
        "--renumber gives the next free numbers instead.",
    )
    d.add_argument("source", metavar="DAMNIT_DIR", help="the DAMNIT folder (holding runs.sqlite)")
    d.add_argument("path", metavar="SHELF", help="the shelf to import into")
    d.add_argument("--proposal", type=int, metavar="P", help="the proposal to import, where there are several")
    d.add_argument("--renumber", action="store_true", help="next free run numbers (DAMNIT's kept in params damnit_run)")
    d.add_argument("--dry-run", action="store_true", help="only say what would be imported; write nothing")


#: OSErrors that what a user typed can cause (a path missing, forbidden, of the wrong
#: kind, on a read-only or full disk, too long, looping): one line, not a traceback.
#: Others (EIO, EBADF, EINVAL, ...) mean a failing disk or a bug, and keep theirs.
USER_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOENT", "ENOTDIR", "EISDIR", "EEXIST", "ENOTEMPTY", "EACCES", "EPERM", "EROFS",
        "ENOSPC", "EDQUOT", "ENAMETOOLONG", "ELOOP", "ENXIO", "ENODEV",
    )
    if hasattr(errno, name)
)

def _runs_text(text: str) -> str:
    """``--runs`` checked while parsing, so a bad one is a usage error (exit status 2)."""
    from .integrity import run_numbers

    try:
        run_numbers(text)
    except ShelfError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``labshelf`` command; the exit status is 0, 1 (the command failed) or 2 (bad usage)."""
    args = _parser().parse_args(argv)
    command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    try:
        _check_paths(args)
        return int(_COMMANDS[args.command](args) or 0)
    except ShelfError as exc:
        return _failed(command, str(exc))
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise  # not something the user typed: the traceback is what a bug report needs
        return _failed(command, _os_error_text(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _failed(command: str, message: str) -> int:
    # One line, whatever the message holds (a path may hold a newline).
    print(f"labshelf {command}: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return 1


def _os_error_text(exc: OSError) -> str:
    """``/proc/x: No such file or directory``: the path first, in the words of the system."""
    reason = exc.strerror or str(exc)
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(map(str, paths))}: {reason}" if paths else reason


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse paths no file system takes (empty, NUL) before anything opens them."""
    expected = {
        "path": ("PATH", "a shelf folder or a postgresql:// URL"),
        "file": ("FILE", "a file"),
        "root": ("--root", "a folder"),
        "trust_context": ("--trust-context", "the path of the context file"),
    }
    for option, (shown, what) in expected.items():
        value = getattr(args, option, None)
        if value is None:
            continue
        if value == "":
            raise ShelfError(f"{shown} is empty: give {what}")
        if "\0" in value:
            raise ShelfError(f"{shown} {value!r} contains a NUL character, which no path can hold")


def _at_least(option: str, value: int | None, low: int = 1, high: int | None = None) -> None:
    """Refuse an integer option outside [low, high] in one line (argparse only checks that it is an int)."""
    if value is None or (value >= low and (high is None or value <= high)):
        return
    top = f" and at most {high}" if high is not None else ""
    raise ShelfError(f"{option} must be at least {low}{top}, not {value}")


def _create(args: argparse.Namespace) -> None:
    from .opening import create

    with create(args.path, root=args.root, schema=args.schema, durable=args.durable) as shelf:
        print(f"created {shelf.where} (datastore {shelf.root})")


def _info(args: argparse.Namespace) -> None:
    from .opening import open as open_shelf

    with open_shelf(args.path, mode="r") as shelf:
        for key, value in shelf.info().items():
            print(f"{key:>12}: {value}")


def _ls(args: argparse.Namespace) -> None:
    from .names import MAX_RUN
    from .opening import open as open_shelf

    _at_least("--run", args.run, high=MAX_RUN)
    _at_least("--last", args.last)
    with open_shelf(args.path, mode="r") as shelf:
        if args.run is not None:
            print(_datasets_text(shelf, args.run))
            return
        table = shelf.runs.to_pandas(thumbnails=False)
        if args.last is not None:
            table = table.tail(args.last)
        print(_table_text(table))
        _print_damage(table.attrs.get("damaged", []))


def _print_damage(lines: list[str], shown: int = 10) -> None:
    """Damaged registry rows: the table lists every other row, and says which cells it could not read."""
    if lines:
        print(f"{len(lines)} value(s) could not be read from damaged registry rows:", file=sys.stderr)
        for line in lines[:shown]:
            print(f"  {line}", file=sys.stderr)
        if len(lines) > shown:
            print(f"  ... and {len(lines) - shown} more", file=sys.stderr)


def _datasets_text(shelf: Any, run: int) -> str:
    refs = shelf.run(run).datasets
    rows = [("name", "kind", "shape", "dtype", "size", "summary")]
    for ref in refs:
        summary = ref.summary
        if ref.damage is not None:
            summary = f"DAMAGED: {ref.damage}"
        elif isinstance(summary, bytes):
            summary = f"<thumbnail {len(summary)} B>"
        elif isinstance(summary, float):
            summary = f"{summary:.6g}"
        shape = "" if ref.shape is None else "x".join(map(str, ref.shape)) or "()"
        rows.append((ref.label, ref.kind, shape, ref.dtype or "", size_text(ref.nbytes), str(summary)[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _table_text(table: Any, max_rows: int = 20) -> str:
    import pandas as pd

    shown = table.copy()
    # Nobody has annotated yet: empty comment and tag columns only take room.
    if "comment" in shown and shown["comment"].isna().all():
        shown = shown.drop(columns="comment")
    if "tags" in shown and not any(len(t) for t in shown["tags"]):
        shown = shown.drop(columns="tags")
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
    from .opening import MARKER, create

    _at_least("--runs", args.runs)
    _at_least("--seed", args.seed, low=0)
    path = Path(args.path or demo.default_path())
    if path.is_symlink():
        # Replacing would delete what the link points to (a shelf, or any folder), wherever it is.
        raise ShelfError(f"{path} is a symbolic link; refusing to replace it or what it points to: give another PATH")
    if path.exists():
        if not args.overwrite:
            raise ShelfError(f"{path} exists; pass --overwrite to replace it, or give another PATH")
        if not path.is_dir() or not (path / MARKER).is_file():
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


def _simulate(args: argparse.Namespace) -> None:
    import os
    import signal

    from .errors import NotAShelf
    from .opening import create, is_postgres_url
    from .opening import open as open_shelf
    from .simulate import RunReport, Simulator, check_options

    check_options(
        rate=args.rate, image=args.image, frame_rate=args.frame_rate, run_length=args.run_length,
        runs=args.runs, duration=args.duration,
    )
    _at_least("--seed", args.seed, low=0)
    try:
        shelf = open_shelf(args.path, mode="rw", root=args.root, schema=args.schema)
    except NotAShelf:
        if not args.create:
            if not is_postgres_url(args.path) and not os.path.exists(args.path):
                raise NotAShelf(f"{args.path} does not exist; pass --create to make a new shelf there") from None
            raise
        shelf = create(args.path, root=args.root, schema=args.schema)

    def report(run: RunReport) -> None:
        print(run.line(), flush=True)

    with shelf:
        simulator = Simulator(
            shelf, rate=args.rate, image=args.image, frame_rate=args.frame_rate, run_length=args.run_length,
            runs=args.runs, duration=args.duration, seed=args.seed, report=report,
        )
        camera = f"{args.image}x{args.image} frames at {args.frame_rate:g}/s" if simulator.frame_rate else "no camera"
        print(f"simulating into {shelf.where}: {args.rate:g} points/s, {camera}, a new run every "
              f"{args.run_length:g} s (Ctrl-C to stop)", flush=True)
        # The handlers only set a flag: the run in progress ends as aborted between two writes.
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, lambda num, frame: simulator.stop(signal.Signals(num).name)) for s in signals}
        try:
            simulator.run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _upgrade(args: argparse.Namespace) -> None:
    from .opening import upgrade

    old, new = upgrade(args.path, schema=args.schema)
    if old == new:
        print(f"{args.path} is up to date (schema {new})")
    else:
        print(f"upgraded {args.path} from schema {old} to {new}")


#: Errors listed under the report line of `labshelf reprocess`; the rest are counted.
MAX_ERRORS_SHOWN = 20


def _reprocess(args: argparse.Namespace) -> None:
    from .opening import open as open_shelf

    _at_least("--jobs", args.jobs)
    with open_shelf(args.path) as shelf:
        report = shelf.reprocess(
            args.runs,
            args.variables,
            jobs=args.jobs,
            dask_scheduler=args.dask_scheduler,
            force=args.force,
            progress=sys.stderr.isatty(),
            trust_context=args.trust_context,
        )
    print(f"reprocessed {report}")
    for run, variable, error in report.errors[:MAX_ERRORS_SHOWN]:
        print(f"  run {run} {variable}: {error}")
    hidden = len(report.errors) - MAX_ERRORS_SHOWN
    if hidden > 0:
        print(f"  ... and {hidden} more errors (shelf.derived_status() lists them all)")


def _context(args: argparse.Namespace) -> None:
    from .derived import context_file, may_run, no_context
    from .opening import open as open_shelf
    from .outline import outline

    if args.action == "set":
        with open_shelf(args.path) as shelf:
            path = shelf.set_context(args.file)
        # Listed from the text: set_context has run the file once already.
        names = ", ".join(outline(path).variables) if path is not None else ""
        print(f"context file of {args.path}: {path} (variables: {names or 'none'})")
        return
    # Showing reads the file's text, never runs it; and reads a file outside the shelf only once confirmed.
    with open_shelf(args.path, mode="r") as shelf:
        file = context_file(shelf)
        if file is None:
            raise no_context(shelf)
        readable = may_run(shelf, file)
        rows = shelf.derived_status()
        root = shelf.root
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["variable"], row["status"])
        counts[key] = counts.get(key, 0) + 1

    def done(name: str) -> str:
        text = ", ".join(f"{counts[(name, s)]} {s}" for s in ("ok", "error", "missing") if (name, s) in counts)
        return text or "none computed yet"

    print(f"context file: {file.path}")
    if not readable:
        print(f"  outside the shelf's folder and not confirmed by you: not read. Check it, then confirm it with "
              f"`labshelf context set {root} {file.path}`")
        for name in dict.fromkeys(row["variable"] for row in rows):
            print(f"  {name}  runs: {done(name)}")
        return
    context = outline(file.path)
    print(f"{len(context.variables)} variables, in computing order:")
    for name, variable in context.variables.items():
        options = variable.options
        details = [f"{options.title!r}" if options.title else ""]
        details += [f"[{options.unit}]" if options.unit else "", f"summary={options.summary}" if options.summary else ""]
        details += [f"{key}=({text}: known when run)" for key, text in variable.option_expressions.items()]
        inputs = ", ".join(
            [f"{i.parameter}={'var:' + i.variable if i.variable else i.label}" for i in variable.inputs]
            + [f"{key}=({text}: known when run)" for key, text in variable.input_expressions.items()]
        )
        print(f"  {name} (line {variable.line})  {' '.join(d for d in details if d)}".rstrip())
        print(f"      inputs: {inputs or 'none'}; runs: {done(name)}")


def _verify(args: argparse.Namespace) -> int:
    from .opening import open as open_shelf

    with open_shelf(args.path, mode="r") as shelf:
        report = shelf.verify(args.runs, integrity_check=args.full)
    print(report)
    return 0 if report.ok else 1


def _data_id(items: list[str]) -> dict[str, Any] | None:
    """``["channel=2", "det=a"]`` -> ``{"channel": 2, "det": "a"}`` (see :func:`names.data_id_from_text`)."""
    from .names import data_id_from_text

    if not items:
        return None
    try:
        return dict(data_id_from_text(items))
    except ValueError as exc:
        raise ShelfError(f"--data-id takes KEY=VALUE pairs such as channel=2, not {str(exc)!r}") from None


def _time(text: str | None) -> Any:
    """A time option: seconds since the epoch if it is a number, else ISO 8601 text (checked by the shelf)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _describe(args: argparse.Namespace) -> None:
    from .opening import open as open_shelf

    given = {f: getattr(args, f) for f in META_FIELDS if getattr(args, f) is not None}
    both = sorted(set(given) & set(args.clear))
    if both:
        raise ShelfError(f"--{both[0]} is both set and cleared (--clear {both[0]}): give one of them")
    data_id = _data_id(args.data_id)
    if args.name is None:
        if given or args.clear or data_id is not None:
            raise ShelfError("setting metadata needs the dataset NAME: labshelf describe PATH NAME --unit ...")
        with open_shelf(args.path, mode="r") as shelf:
            records = shelf.metadata()
        if not records:
            print("no display metadata yet (labshelf describe PATH NAME --unit ... sets some)")
            return
        rows: list[tuple[str, ...]] = [("column", *META_FIELDS)]
        for key, meta in records.items():
            rows.append((key, *(_field_text(getattr(meta, f)) for f in META_FIELDS)))
        print(_columns(rows))
        return
    if not given and not args.clear:
        with open_shelf(args.path, mode="r") as shelf:
            meta = shelf.metadata(args.name, data_id=data_id)
    else:
        fields: dict[str, Any] = {**given, **dict.fromkeys(args.clear)}
        with open_shelf(args.path) as shelf:
            meta = shelf.describe(args.name, data_id=data_id, **fields)
    print(_meta_text(meta))


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _meta_text(meta: Any) -> str:
    from .names import label

    lines = [label(meta.name, meta.data_id)]
    said = meta.fields()
    if not said:
        lines.append("  no display metadata")
    for field, value in said.items():
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        lines.append(f"  {field:>11}: {' '.join(shown.splitlines())}")
    return "\n".join(lines)


def _columns(rows: Sequence[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns, the first row the header; control characters shown as spaces."""
    clean = [tuple(" ".join(cell.split()) if any(c < " " for c in cell) else cell for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in clean) for i in range(len(clean[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in clean)


def _tag_columns(args: argparse.Namespace) -> None:
    from .opening import open as open_shelf

    if args.name is None:
        if args.clear:
            raise ShelfError("--clear needs the column NAME: labshelf tag-columns PATH NAME --clear")
        with open_shelf(args.path, mode="r") as shelf:
            every = shelf.column_tags()
        if not every:
            print("no column has tags yet (labshelf tag-columns PATH NAME TAG... sets some)")
            return
        print(_columns([("column", "tags"), *((name, ", ".join(t)) for name, t in every.items())]))
        return
    if args.clear and args.tags:
        raise ShelfError("give TAGs or --clear, not both")
    if not args.tags and not args.clear:
        with open_shelf(args.path, mode="r") as shelf:
            tags = shelf.column_tags().get(args.name, [])
    else:
        with open_shelf(args.path) as shelf:
            tags = shelf.tag_columns(args.name, args.tags)
    print(f"{args.name}: {', '.join(tags) if tags else 'no tags'}")


def _log(args: argparse.Namespace) -> None:
    from .opening import open as open_shelf

    with open_shelf(args.path) as shelf:
        entry = shelf.log(args.text, at=_time(args.at))
        at = shelf.logbook().loc[entry, "time"]
    print(f"logged entry {entry} at {at:%Y-%m-%d %H:%M:%S} UTC")


def _logbook(args: argparse.Namespace) -> None:
    import pandas as pd

    from .opening import open as open_shelf

    with open_shelf(args.path, mode="r") as shelf:
        book = shelf.logbook(since=_time(args.since), until=_time(args.until))
    if book.empty:
        print("the logbook has no entries" + (" in that time" if args.since or args.until else ""))
        return
    rows: list[tuple[str, ...]] = [("entry", "time (UTC)", "user", "text")]
    for entry, row in book.iterrows():
        edited = " (edited)" if pd.notna(row["edited"]) else ""
        rows.append((str(entry), f"{row['time']:%Y-%m-%d %H:%M:%S}", str(row["user"]), f"{row['text']}{edited}"))
    print(_columns(rows))


def _import(args: argparse.Namespace) -> int:
    from .importers import artiq, damnit, labshelf_export
    from .opening import open as open_shelf

    what = {
        "artiq": ("RESULTS_DIR", "the ARTIQ results folder"),
        "damnit": ("DAMNIT_DIR", "the DAMNIT folder"),
        "labshelf": ("OUT_DIR", "the export folder"),
    }
    if not args.source or "\0" in args.source:
        shown, folder = what[args.action]
        raise ShelfError(f"{shown} {args.source!r} is not a path: give {folder}")
    with open_shelf(args.path, mode="r" if args.dry_run else "rw") as shelf:
        bar = sys.stderr.isatty()
        if args.action == "artiq":
            report = artiq(shelf, args.source, renumber=args.renumber, dry_run=args.dry_run, link=args.link,
                           progress=bar)
        elif args.action == "damnit":
            report = damnit(shelf, args.source, proposal=args.proposal, renumber=args.renumber, dry_run=args.dry_run,
                            progress=bar)
        else:
            report = labshelf_export(shelf, args.source, renumber=args.renumber, dry_run=args.dry_run, progress=bar)
    print(report)
    return 0 if report.ok else 1


def _export(args: argparse.Namespace) -> int:
    from .exporting import export
    from .opening import open as open_shelf

    if not args.out_dir or "\0" in args.out_dir:
        raise ShelfError(f"OUT_DIR {args.out_dir!r} is not a path: give a folder to export into")
    with open_shelf(args.path, mode="r") as shelf:
        report = export(
            shelf, args.out_dir, runs=args.runs, format=args.format, overwrite=args.overwrite,
            progress=sys.stderr.isatty(),
        )
    print(report)
    return 0 if report.ok else 1


def _ingest(args: argparse.Namespace) -> None:
    from .names import label
    from .opening import open as open_shelf

    data_id = _data_id(args.data_id)
    with open_shelf(args.path) as shelf:
        if args.run == "new":
            with shelf.new_run("ingest", {"ingested": args.file}) as run:
                ref = run.ingest(args.name, args.file, dataset=args.dataset, data_id=data_id, transfer=args.transfer)
        else:
            try:
                number = int(args.run)
            except ValueError:
                raise ShelfError(f"RUN is a run number or 'new', not {args.run!r}") from None
            ref = shelf.ingest(number, args.name, args.file, dataset=args.dataset, data_id=data_id,
                               transfer=args.transfer)
    shape = "x".join(map(str, ref.shape)) if ref.shape is not None else "-"
    print(f"ingested {label(ref.name, dict(ref.data_id))!r} into run {ref.run}: {ref.kind} {shape} {ref.dtype or ''} "
          f"({size_text(ref.nbytes)}), {args.transfer} from {ref.storage.ingested}")


def _trust_data(args: argparse.Namespace) -> None:
    from .ingest import trust_data

    if not args.file or "\0" in args.file:
        raise ShelfError(f"FILE {args.file!r} is not a path: give an ingested file or a folder")
    confirmed = trust_data(args.path, args.file)
    print(f"the shelf {args.path} may read {confirmed} for you (remembered in your labshelf configuration)")


_COMMANDS = {
    "create": _create,
    "info": _info,
    "ls": _ls,
    "demo": _demo,
    "simulate": _simulate,
    "upgrade": _upgrade,
    "reprocess": _reprocess,
    "context": _context,
    "verify": _verify,
    "describe": _describe,
    "tag-columns": _tag_columns,
    "log": _log,
    "logbook": _logbook,
    "import": _import,
    "ingest": _ingest,
    "trust-data": _trust_data,
    "export": _export,
}

if __name__ == "__main__":
    sys.exit(main())
