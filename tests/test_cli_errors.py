"""The command line and bad input: one line naming the problem, status 1 (2 for usage), never a traceback.

Every subcommand gets a table of inputs a person could type: paths that are
missing, empty, files, forbidden, too long, symbolic links; numbers out of
range.  Each case runs ``main([...])`` in this process (the console script is
``main``; a few cases also run it as a real process) and checks the exit
status, that stderr is one line starting ``labshelf <command>: error:`` and
naming the problem, and that nothing on disk was created, changed or deleted.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import labshelf
from labshelf import cli

#: Placeholders of the table, filled per test (see ``sandbox``).
LONG = "a" * 300
HUGE = "1" + "0" * 30

# (arguments, exit status, phrase the error line must contain)
CASES: list[tuple[tuple[str, ...], int, str]] = [
    # create
    (("create", "/proc/x"), 1, "/proc/x"),
    (("create", "/sys/x"), 1, "/sys/x"),
    (("create", "{file}/x"), 1, "{file}/x"),
    (("create", "{file}"), 1, "{file}"),
    (("create", ""), 1, "PATH is empty"),
    (("create", "{box}/" + LONG), 1, LONG),
    (("create", "{shelf}"), 1, "is a shelf already"),
    # info
    (("info", ""), 1, "PATH is empty"),
    (("info", "{missing}"), 1, "does not exist"),
    (("info", "{file}"), 1, "is not a labshelf shelf"),
    (("info", "{file}/x"), 1, "{file}/x"),
    (("info", "{plain}"), 1, "is not a labshelf shelf"),
    (("info", "/proc/1/fd/0"), 1, "/proc/1/fd/0"),
    (("info", "{box}/" + LONG), 1, LONG),
    # ls
    (("ls", "{shelf}", "--run", HUGE), 1, f"--run must be at least 1 and at most {2**31 - 1}, not {HUGE}"),
    (("ls", "{shelf}", "--run", "0"), 1, "--run must be at least 1"),
    (("ls", "{shelf}", "--run", "-1"), 1, "--run must be at least 1"),
    (("ls", "{shelf}", "--run", "99"), 1, "no run 99"),
    (("ls", "{shelf}", "--last", "-5"), 1, "--last must be at least 1, not -5"),
    (("ls", "{shelf}", "--last", "0"), 1, "--last must be at least 1, not 0"),
    (("ls", "{shelf}", "--run", "x"), 2, "argument --run: invalid int value: 'x'"),
    (("ls", "{shelf}", "--last", "1.5"), 2, "argument --last: invalid int value"),
    (("ls", ""), 1, "PATH is empty"),
    (("ls", "{file}"), 1, "is not a labshelf shelf"),
    (("ls", "/proc/1/fd/0"), 1, "/proc/1/fd/0"),
    # demo
    (("demo", "{shelf_link}", "--overwrite", "--runs", "1"), 1, "is a symbolic link; refusing to replace it"),
    (("demo", "{folder_link}", "--overwrite", "--runs", "1"), 1, "is a symbolic link"),
    (("demo", "{dangling_link}", "--overwrite", "--runs", "1"), 1, "is a symbolic link"),
    (("demo", "{shelf_link}", "--runs", "1"), 1, "is a symbolic link"),
    (("demo", "{plain}", "--overwrite", "--runs", "1"), 1, "is not a shelf; refusing to delete it"),
    (("demo", "{file}", "--overwrite", "--runs", "1"), 1, "is not a shelf; refusing to delete it"),
    (("demo", "{shelf}", "--runs", "1"), 1, "pass --overwrite"),
    (("demo", "", "--runs", "1"), 1, "PATH is empty"),
    (("demo", "{new}", "--runs", "0"), 1, "--runs must be at least 1, not 0"),
    (("demo", "{new}", "--runs", "-3"), 1, "--runs must be at least 1, not -3"),
    (("demo", "{new}", "--runs", "1", "--seed", "-1"), 1, "--seed must be at least 0, not -1"),
    (("demo", "{new}", "--runs", "many"), 2, "argument --runs: invalid int value"),
    # simulate
    (("simulate", "{shelf}", "--rate", "nan"), 1, "--rate must be between 0 and 10000"),
    (("simulate", "{shelf}", "--rate", "-1"), 1, "--rate must be between 0 and 10000"),
    (("simulate", "{shelf}", "--rate", "inf"), 1, "--rate must be between 0 and 10000"),
    (("simulate", "{shelf}", "--runs", "0"), 1, "--runs must be at least 1"),
    (("simulate", "{shelf}", "--image", "-4"), 1, "--image must be 0"),
    (("simulate", "{shelf}", "--duration", "-1"), 1, "--duration must be a positive number"),
    (("simulate", "{shelf}", "--seed", "-1"), 1, "--seed must be at least 0, not -1"),
    (("simulate", "{shelf}", "--rate", "fast"), 2, "argument --rate: invalid float value"),
    (("simulate", "{new}", "--runs", "1"), 1, "does not exist; pass --create"),
    (("simulate", "", "--runs", "1"), 1, "PATH is empty"),
    (("simulate", "{file}", "--runs", "1"), 1, "is not a labshelf shelf"),
    # upgrade
    (("upgrade", ""), 1, "PATH is empty"),
    (("upgrade", "{missing}"), 1, "does not exist"),
    (("upgrade", "{file}"), 1, "is not a labshelf shelf"),
    # reprocess
    (("reprocess", "{shelf}", "--jobs", "0"), 1, "--jobs must be at least 1, not 0"),
    (("reprocess", "{shelf}", "--jobs", "-2"), 1, "--jobs must be at least 1, not -2"),
    (("reprocess", "{shelf}", "--runs", "x"), 1, "has no context file"),
    (("reprocess", "{shelf}", "--trust-context", ""), 1, "--trust-context is empty"),
    (("reprocess", ""), 1, "PATH is empty"),
    (("reprocess", "{file}"), 1, "is not a labshelf shelf"),
    # context
    (("context", "set", "{shelf}", ""), 1, "FILE is empty"),
    (("context", "set", "{shelf}", "{missing}"), 1, "cannot read the context file"),
    (("context", "set", "{shelf}", "{plain}"), 1, "not a regular file"),
    (("context", "set", "{file}", "{file}"), 1, "is not a labshelf shelf"),
    (("context", "show", ""), 1, "PATH is empty"),
    (("context", "show", "{file}"), 1, "is not a labshelf shelf"),
    (("context", "show", "{shelf}"), 1, "has no context file"),
    (("context", "drop", "{shelf}"), 2, "invalid choice: 'drop'"),
    # describe
    (("describe", ""), 1, "PATH is empty"),
    (("describe", "{missing}"), 1, "does not exist"),
    (("describe", "{file}", "x", "--unit", "V"), 1, "is not a labshelf shelf"),
    (("describe", "{shelf}", "x", "--unit", " V"), 1, "unit= takes short text"),
    (("describe", "{shelf}", "x", "--unit", "m\tV"), 1, "control characters"),
    (("describe", "{shelf}", "x", "--scale", "0"), 1, "scale= takes a finite, non-zero number"),
    (("describe", "{shelf}", "x", "--scale", "nan"), 1, "scale= takes a finite, non-zero number"),
    (("describe", "{shelf}", "x", "--scale", "inf"), 1, "scale= takes a finite, non-zero number"),
    (("describe", "{shelf}", "x", "--scale", "micro"), 2, "argument --scale: invalid float value"),
    (("describe", "{shelf}", "x", "--precision", "16"), 1, "precision= takes an int from 0 to 15"),
    (("describe", "{shelf}", "x", "--precision", "-1"), 1, "precision= takes an int from 0 to 15"),
    (("describe", "{shelf}", "x", "--precision", "2.5"), 2, "argument --precision: invalid int value"),
    (("describe", "{shelf}", "x", "--title", "a\nb"), 1, "title= is one line"),
    (("describe", "{shelf}", "x", "--title", ""), 1, "title= takes non-empty text"),
    (("describe", "{shelf}", "x", "--clear", "units"), 2, "argument --clear: invalid choice: 'units'"),
    (("describe", "{shelf}", "x", "--unit", "V", "--clear", "unit"), 1, "--unit is both set and cleared"),
    (("describe", "{shelf}", "--unit", "V"), 1, "setting metadata needs the dataset NAME"),
    (("describe", "{shelf}", "x", "--data-id", "channel"), 1, "--data-id takes KEY=VALUE pairs"),
    (("describe", "{shelf}", "x", "--data-id", "=2"), 1, "--data-id takes KEY=VALUE pairs"),
    (("describe", "{shelf}", "a b", "--unit", "V"), 1, "a column is named by its dataset name"),
    (("describe", "{shelf}", "../x", "--unit", "V"), 1, "a column is named by its dataset name"),
    # tag-columns
    (("tag-columns", ""), 1, "PATH is empty"),
    (("tag-columns", "{file}"), 1, "is not a labshelf shelf"),
    (("tag-columns", "{shelf}", "a b", "beam"), 1, "a column is named by its dataset name"),
    (("tag-columns", "{shelf}", "x", "beam", "--clear"), 1, "give TAGs or --clear, not both"),
    (("tag-columns", "{shelf}", "--clear"), 1, "--clear needs the column NAME"),
    (("tag-columns", "{shelf}", "x", ""), 1, "a tag is a non-empty str"),
    # log, logbook
    (("log", "{shelf}", ""), 1, "a log entry is non-empty text"),
    (("log", "{shelf}", "   "), 1, "a log entry is non-empty text"),
    (("log", "{shelf}", "x", "--at", "yesterday"), 1, "'yesterday' is not an ISO 8601 time"),
    (("log", "{shelf}", "x", "--at", "9999-01-01"), 1, "outside the times a run table can show"),
    (("log", "{shelf}", "x", "--at", "nan"), 1, "outside the times a run table can show"),
    (("log", "{shelf}", "x", "--at", "1e400"), 1, "outside the times a run table can show"),
    (("log", "{missing}", "x"), 1, "does not exist"),
    (("log", "", "x"), 1, "PATH is empty"),
    (("log", "{shelf}"), 2, "the following arguments are required: TEXT"),
    (("logbook", "{shelf}", "--since", "last week"), 1, "since= 'last week' is not an ISO 8601 time"),
    (("logbook", "{shelf}", "--until", "inf"), 1, "outside the times"),
    (("logbook", "{file}"), 1, "is not a labshelf shelf"),
]


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with what it is: a link's target, a file's hash, or a folder.

    A registry's own files are only listed: SQLite may checkpoint its WAL
    (and, opened read-only, leave -wal/-shm: the business of the read-only
    tests), which changes no data.
    """
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.name.endswith(("-wal", "-shm")):
            continue
        if path.is_symlink():
            found[key] = "link " + os.readlink(path)
        elif path.is_dir():
            found[key] = "folder"
        elif path.name.startswith("registry.sqlite3"):
            found[key] = "registry"
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    box = tmp_path / "box"
    box.mkdir()
    shelf = box / "s.shelf"
    labshelf.create(shelf).close()
    plain = box / "plain"
    plain.mkdir()
    (plain / "precious.txt").write_text("keep me")
    file = box / "afile"
    file.write_text("not a shelf")
    (box / "shelf-link").symlink_to(shelf, target_is_directory=True)
    (box / "folder-link").symlink_to(plain, target_is_directory=True)
    (box / "dangling-link").symlink_to(box / "gone")
    return {
        "box": str(box), "shelf": str(shelf), "plain": str(plain), "file": str(file),
        "missing": str(box / "nope"), "new": str(box / "new.shelf"),
        "shelf_link": str(box / "shelf-link"), "folder_link": str(box / "folder-link"),
        "dangling_link": str(box / "dangling-link"),
    }


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = cli.main(args)
    except SystemExit as stop:  # argparse's usage errors
        status = int(stop.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(("args", "status", "phrase"), CASES, ids=[" ".join(c[0]) or "empty" for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(
    sandbox: dict[str, str], capsys: pytest.CaptureFixture[str], args: tuple[str, ...], status: int, phrase: str
) -> None:
    if "/proc/1/fd/0" in args and os.access("/proc/1/fd/0", os.R_OK):
        pytest.fail("this test expects /proc/1/fd/0 to be unreadable (another user's process)")
    box = Path(sandbox["box"])
    before = snapshot(box)
    cwd = os.getcwd()
    os.chdir(box)  # where an empty PATH or the demo's default would land
    try:
        got, out, err = run_main([a.format(**sandbox) for a in args], capsys)
    finally:
        os.chdir(cwd)
    assert got == status, (got, out, err)
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    command = " ".join(args[:2] if args[0] == "context" and args[1] in ("set", "show") else args[:1])
    if status == 1:
        assert len(lines) == 1, err
        assert lines[0].startswith(f"labshelf {command}: error: "), err
    else:
        assert lines[0].startswith("usage: labshelf") and lines[-1].startswith("labshelf ") and "error:" in lines[-1]
    assert phrase.format(**sandbox) in err, err
    assert snapshot(box) == before
    # The links' targets are whole: the shelf opens, the folder keeps its file.
    with labshelf.open(sandbox["shelf"], mode="r") as shelf:
        assert shelf.info()["runs"] == 0
        # Nothing described, tagged or logged either.
        assert shelf.metadata() == {} and shelf.column_tags() == {} and len(shelf.logbook()) == 0
        assert shelf.history() == []
    assert (Path(sandbox["plain"]) / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("ls", "{root}", "--run", HUGE), "--run must be at least 1"),
        (("ls", "{root}", "--run", "7"), "no run 7"),
        (("ls", "{root}", "--last", "-5"), "--last must be at least 1"),
        (("reprocess", "{root}", "--jobs", "0"), "--jobs must be at least 1"),
        (("reprocess", "{root}", "--runs", "1-" + HUGE), "has no context file"),
        (("context", "show", "{root}"), "has no context file"),
    ],
)
def test_bad_numbers_on_both_registries(
    shelf: labshelf.Shelf, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], phrase: str
) -> None:
    with shelf.new_run() as run:
        run.put("x", 1.0)
    status, _, err = run_main([a.format(root=shelf.root) for a in args], capsys)
    assert status == 1 and len(err.strip().splitlines()) == 1 and phrase in err, err
    assert shelf.get("x", run=1) == 1.0


def test_reprocess_takes_huge_run_ranges_without_listing_every_number(shelf: labshelf.Shelf) -> None:
    for _ in range(3):
        with shelf.new_run() as run:
            run.put("b", 2.0)
    (shelf.root / "context.py").write_text(
        "from labshelf import variable\n\n@variable()\ndef twice(run, b='b'):\n    return 2 * b\n"
    )
    report = shelf.reprocess("2-" + HUGE, progress=False)
    assert report.runs == 2 and report.computed == 2
    assert shelf.reprocess(range(1, 10**18), progress=False).runs == 3


def test_the_console_script_prints_one_line(sandbox: dict[str, str]) -> None:
    """The same as a real process: what a person at a terminal sees."""
    for args, phrase in [
        (["create", "/proc/x"], "/proc/x"),
        (["demo", sandbox["shelf_link"], "--overwrite", "--runs", "1"], "is a symbolic link"),
        (["ls", sandbox["shelf"], "--run", HUGE], "--run must be at least 1"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "labshelf.cli", *args], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 1 and result.stdout == "", result
        assert result.stderr.count("\n") == 1 and phrase in result.stderr, result.stderr
    assert Path(sandbox["shelf_link"]).is_symlink() and labshelf.open(sandbox["shelf"], mode="r").info()["runs"] == 0


# -- a genuine bug still shows its traceback ------------------------------------------------------


@pytest.mark.parametrize(
    "raised",
    [
        RuntimeError("a bug"),
        OSError(errno.EIO, "Input/output error"),
        OSError("Cannot call rmtree on a symbolic link"),  # no errno: not about what the user typed
        ValueError("a bug"),
    ],
    ids=["RuntimeError", "EIO", "OSError without errno", "ValueError"],
)
def test_an_unexpected_error_is_not_swallowed(
    sandbox: dict[str, str], monkeypatch: pytest.MonkeyPatch, raised: Exception
) -> None:
    def broken(args: object) -> None:
        raise raised

    monkeypatch.setitem(cli._COMMANDS, "info", broken)
    with pytest.raises(type(raised)) as caught:
        cli.main(["info", sandbox["shelf"]])
    assert caught.value is raised


@pytest.mark.parametrize(
    "raised",
    [
        FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y"),
        PermissionError(errno.EACCES, "Permission denied", "/x/y"),
        OSError(errno.EROFS, "Read-only file system", "/x/y"),
        OSError(errno.ENOSPC, "No space left on device", "/x/y"),
        OSError(errno.ENAMETOOLONG, "File name too long", "/x/y"),
        OSError(errno.ELOOP, "Too many levels of symbolic links", "/x/y"),
    ],
    ids=["ENOENT", "EACCES", "EROFS", "ENOSPC", "ENAMETOOLONG", "ELOOP"],
)
def test_what_a_path_can_cause_is_one_line(
    sandbox: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raised: OSError
) -> None:
    def failing(args: object) -> None:
        raise raised

    monkeypatch.setitem(cli._COMMANDS, "info", failing)
    status, _, err = run_main(["info", sandbox["shelf"]], capsys)
    assert status == 1 and err == f"labshelf info: error: /x/y: {raised.strerror}\n"
