"""``%load_ext labshelf``: the time of the load_ext call in a fresh IPython shell.

Figure: in a fresh interpreter that has made an IPython ``InteractiveShell``,
the wall time of ``ip.run_line_magic("load_ext", "labshelf")`` alone (the
import of labshelf included, the shell's own start-up not), median of
several fresh processes.  Target <= 300 ms.

Limit: the same call loading a trivial extension, a module whose
``load_ipython_extension`` does nothing; the ratio says what labshelf's
registration costs beyond IPython's own extension machinery.

Also checked: the heavy modules the load leaves alone.  The magics import
the registry, pandas and the widgets when first used, so none of pandas,
anywidget, ipywidgets, bokeh, h5py, sqlalchemy, xarray may be in
``sys.modules`` after the load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _common import REPO, Target, main, median, note, report, scratch

BENCH = "load_ext"
REPEATS = 9
HEAVY = ("pandas", "anywidget", "ipywidgets", "bokeh", "h5py", "sqlalchemy", "xarray")

PROBE = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
before = set(sys.modules)
start = time.perf_counter()
ip.run_line_magic("load_ext", sys.argv[1])
elapsed = time.perf_counter() - start
assert ip.extension_manager.loaded >= {sys.argv[1]}
print(json.dumps({"seconds": elapsed, "added": sorted(set(sys.modules) - before)}))
"""


def load(extension: str, folder: Path) -> tuple[float, list[str]]:
    """(seconds of the load_ext call, modules it added) in a fresh interpreter."""
    env = dict(os.environ, IPYTHONDIR=str(folder / "ipython"), PYTHONPATH=str(folder))
    for var in ("PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE", "PYTHONSTARTUP", "LABSHELF"):
        env.pop(var, None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, extension], capture_output=True, text=True, cwd=folder, env=env, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), list(result["added"])


def body() -> None:
    with scratch("load-ext") as folder:
        (folder / "empty_ext.py").write_text("def load_ipython_extension(ip):\n    pass\n")
        # Warm the bytecode caches of both, untimed.
        load("labshelf", folder)
        load("empty_ext", folder)
        ours, empty = [], []
        added: list[str] = []
        for i in range(REPEATS):
            for first in ([True, False] if i % 2 == 0 else [False, True]):
                if first:
                    seconds, added = load("labshelf", folder)
                    ours.append(seconds)
                else:
                    empty.append(load("empty_ext", folder)[0])

    report(BENCH, "%load_ext labshelf", median(ours), "s", limit=("empty extension", median(empty)),
           targets=[Target("value", "<=", 0.300, "s")], repeats=REPEATS, cwd=str(REPO))
    roots = sorted({name.split(".")[0] for name in added})
    heavy = [m for m in HEAVY if m in roots]
    report(BENCH, "heavy modules loaded", float(len(heavy)), "modules",
           targets=[Target("value", "<=", 0, "modules")], heavy=heavy, checked=list(HEAVY))
    note(f"modules the load added (top level): {', '.join(roots)}")
    note(f"heavy modules loaded by %load_ext labshelf: {', '.join(heavy) or 'none'} (checked {', '.join(HEAVY)})")


if __name__ == "__main__":
    main(BENCH, body)
