"""Run every benchmarks/bench_*.py, print the table, write results/latest.json.

    python benchmarks/run_all.py              # all of them (what `make bench` runs)
    python benchmarks/run_all.py small import # only bench_small.py and bench_import.py
    python benchmarks/run_all.py load_ext     # only bench_load_ext.py (%load_ext labshelf)

Each benchmark runs in its own fresh interpreter (so one's imports, caches
and memory do not colour the next one's figures) and prints its lines as it
goes; at the end comes one table of every figure.  The exit status is 0 even
when targets are MISSED: speed is reported, never a failure.  It is 1 only
if a benchmark itself crashed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import BENCH_DIR, REPO, RESULTS_DIR, Result, from_json, heading, machine, now, write_json

#: Run first: cheap, and the most sensitive to a machine still busy with other work.
FIRST = ["bench_import.py", "bench_load_ext.py"]


def discover(only: list[str]) -> list[Path]:
    found = sorted(BENCH_DIR.glob("bench_*.py"), key=lambda p: (p.name not in FIRST, p.name))
    short = {p: p.stem.removeprefix("bench_") for p in found}
    if only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in only}
        unknown = wanted - set(short.values())
        if unknown:
            sys.exit(f"no benchmark {', '.join(sorted(unknown))}; there are {', '.join(short.values())}")
        found = [p for p in found if short[p] in wanted]
    return found


def main() -> int:
    started = now()
    scripts = discover(sys.argv[1:])
    info = machine()
    print(f"labshelf {info['labshelf']} at {info['commit']}: {', '.join(p.stem for p in scripts)}")
    print(f"machine: {info['cpu']}, {info['cpus']} CPUs, {info['platform']}")
    print(f"python {info['python']}, sqlite {info['sqlite']}, numpy {info['numpy']}, h5py {info['h5py']}, "
          f"SQLAlchemy {info['sqlalchemy']}, pandas {info['pandas']}; scratch {info['scratch']}")
    load_before = os.getloadavg()
    print(f"load average {load_before[0]:.2f} (1 min) on {info['cpus']} CPUs: figures get noisier as it nears "
          "the CPU count; ratios suffer least (both sides are timed alternately)")

    results: list[Result] = []
    crashed: list[str] = []
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="labshelf-bench-") as tmp:
        for script in scripts:
            out = Path(tmp) / f"{script.stem}.json"
            t = now()
            proc = subprocess.run([sys.executable, str(script)], env=dict(os.environ, LABSHELF_BENCH_JSON=str(out)))
            seconds[script.stem] = round(now() - t, 2)
            if proc.returncode != 0 or not out.exists():
                crashed.append(script.stem)
                print(f"!! {script.name} crashed (exit status {proc.returncode}); going on with the others",
                      flush=True)
                continue
            results += from_json(json.loads(out.read_text())["results"])

    heading("summary (ratio = labshelf cost / limit cost; 1.00 = as fast as the limit)")
    for r in results:
        print(r.line())
    missed = [r.figure for r in results if r.status == "MISSED"]
    ok = sum(r.status == "OK" for r in results)
    total = now() - started
    print(f"\n{ok} OK, {len(missed)} MISSED{' (' + ', '.join(missed) + ')' if missed else ''}"
          f"{f', {len(crashed)} CRASHED (' + ', '.join(crashed) + ')' if crashed else ''}; {total:.0f} s in all")

    latest = RESULTS_DIR / "latest.json"
    write_json(latest, results, seconds=round(total, 1), bench_seconds=seconds, crashed=crashed,
               load_average_before=load_before, load_average_after=os.getloadavg())
    print(f"written: {latest.relative_to(REPO)}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
