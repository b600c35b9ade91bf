"""Import cost: ``import labshelf`` in a fresh interpreter.

Figure: the cumulative time of the top-level ``labshelf`` line of
``python -X importtime -c "import labshelf"`` (what the import itself costs,
interpreter start-up excluded), median of several fresh processes.
Target <= 150 ms.

Limit: a bare interpreter, ``python -c pass``.  Their wall times (whole
process, start-up included) are printed side by side too, with their ratio.

Also checked: that the import leaves the heavy modules alone.  labshelf
promises to load the registry, datastore and pandas only on first use, so
none of IPython, bokeh, anywidget, xarray, pandas, h5py, sqlalchemy may be
in ``sys.modules`` after ``import labshelf``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from _common import REPO, Target, main, median, note, now, report

BENCH = "import"
REPEATS = 9
HEAVY = ("IPython", "bokeh", "anywidget", "xarray", "pandas", "h5py", "sqlalchemy")
#: Not forbidden, but worth knowing about.
WATCH = ("numpy", "PIL", "pyarrow", "alembic", "psycopg", "importlib.metadata", "json", "difflib")


def env() -> dict[str, str]:
    e = dict(os.environ)
    for var in ("PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE", "PYTHONSTARTUP"):
        e.pop(var, None)
    return e


def python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env(), check=True)


def import_time_us(stderr: str, module: str = "labshelf") -> int:
    """Cumulative µs of ``module``'s own line in -X importtime output."""
    # Lines read "import time: <self> | <cumulative> | <name>", the name
    # indented by two spaces per level of nesting.
    for line in stderr.splitlines():
        cells = line.split("|")
        if line.startswith("import time:") and len(cells) == 3 and cells[2] == f" {module}":
            return int(cells[1])
    raise RuntimeError(f"no top-level {module!r} line in -X importtime output")


def top_children(stderr: str, module: str = "labshelf", n: int = 6) -> list[tuple[str, int]]:
    """The biggest direct imports under ``module`` (cumulative µs), for the notes.

    -X importtime prints a module after everything it imported, so the
    direct children of the top-level line are the depth-1 lines just above it.
    """
    parsed = []
    for line in stderr.splitlines():
        cells = line.split("|")
        if not line.startswith("import time:") or len(cells) != 3 or not cells[1].strip().isdigit():
            continue
        name = cells[2][1:]
        parsed.append((name.strip(), int(cells[1]), (len(name) - len(name.lstrip())) // 2))
    children: list[tuple[str, int]] = []
    inside = False
    for name, cumulative, depth in reversed(parsed):
        if depth == 0:
            if inside:
                break
            inside = name == module
        elif inside and depth == 1:
            children.append((name, cumulative))
    return sorted(children, key=lambda c: -c[1])[:n]


def body() -> None:
    # Warm the bytecode caches of both commands, untimed.
    python("-c", "import labshelf")
    python("-c", "pass")

    cumulative, lab_wall, bare_wall = [], [], []
    stderr = ""
    for i in range(REPEATS):
        stderr = python("-X", "importtime", "-c", "import labshelf").stderr
        cumulative.append(import_time_us(stderr) / 1e6)
        for first in ([True, False] if i % 2 == 0 else [False, True]):
            start = now()
            python("-c", "import labshelf" if first else "pass")
            (lab_wall if first else bare_wall).append(now() - start)

    report(BENCH, "import labshelf", median(cumulative), "s", targets=[Target("value", "<=", 0.150, "s")],
           source="-X importtime cumulative of the top-level labshelf line", repeats=REPEATS)
    report(BENCH, "import, wall time", median(lab_wall), "s", limit=("python -c pass", median(bare_wall)),
           repeats=REPEATS)
    kids = ", ".join(f"{name} {us / 1000:.1f} ms" for name, us in top_children(stderr))
    note(f"biggest imports under labshelf (last run, cumulative): {kids}")

    probe = "import sys, json, labshelf; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(python("-c", probe).stdout))

    def present(name: str) -> bool:
        return name in loaded or any(m.startswith(name + ".") for m in loaded)

    heavy = [m for m in HEAVY if present(m)]
    watch = [m for m in WATCH if present(m)]
    report(BENCH, "heavy modules imported", float(len(heavy)), "modules",
           targets=[Target("value", "<=", 0, "modules")], heavy=heavy, checked=list(HEAVY), also_loaded=watch)
    note(f"heavy modules loaded by 'import labshelf': {', '.join(heavy) or 'none'} "
         f"(checked {', '.join(HEAVY)}); also loaded: {', '.join(watch) or 'none'}; "
         f"{len(loaded)} modules in sys.modules")


if __name__ == "__main__":
    main(BENCH, body)
