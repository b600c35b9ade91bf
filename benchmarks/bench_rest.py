"""The sidebar's REST API: a runs page and an image preview from a real Jupyter server.

A jupyter server runs as a subprocess on 127.0.0.1 with token auth and
labshelf.server enabled (the other extensions of the environment turned
off: they only slow its start), its root a scratch folder holding:

- ``runs.shelf``: 10,000 runs x 30 scalars, filled like ``bench_run_table.py``
  (its builder, validated against the public API);
- ``images.shelf``: one 2048x2048 uint16 beam-spot image per run (Poisson
  noise, not zeros), put through ``run.put``, a new one for every timed
  request, so each preview reads its file (the server's read cache never
  has it).

Figures (medians of alternating rounds; one keep-alive HTTP connection, as
a browser keeps one, the token in the Authorization header; the time is
from sending the request to having read the whole body):

- **REST runs page**: ``GET labshelf/api/runs?shelf=runs.shelf&columns=<the
  30 columns>&offset=O&limit=50``, O walking through the table.  Limit: the
  same page from ``Browser.runs(...).to_json()`` in this process, on the
  same shelf opened once (as the server keeps it open).  Targets: p50 <= 20
  ms and <= 2x the limit.
- **REST picture 512**: ``GET labshelf/api/picture?shelf=images.shelf&node=
  run/N/camera&size=512``: the image read, shrunk by block means, coloured
  and encoded as PNG by the server.  Limit: Pillow alone on the same array
  already in memory, ``Image.fromarray(a).resize((512, 512), BOX)`` (16-bit) and a PNG
  encode (``compress_level=1``, as the server's).  Target: <= 150 ms (the
  ratio is information: the server also reads 8 MiB from HDF5 and maps
  the values to colours).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _common import Target, interleaved, main, median, note, now, report, scratch, spread
from bench_run_table import NAMES, RUNS, Values, fill, validate

import labshelf
from labshelf.browse import Browser
from labshelf.demo import beam_image

BENCH = "rest"
PAGE = 50
REPEATS = 40
IMAGE = 2048
PICTURE = 512
PICTURE_REPEATS = 12
WARMUP = 2
#: Extensions this environment may enable besides labshelf: off, so the server starts fast.
OTHERS_OFF = ("jupyterlab", "notebook", "notebook_shim", "jupyter_lsp", "jupyter_server_terminals", "nbclassic")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jupyter_server(root: Path, folder: Path) -> Iterator[tuple[int, str]]:
    """A jupyter server subprocess serving ``root``: (port, token); stopped (its process group) afterwards."""
    port, token = free_port(), secrets.token_hex(16)
    extensions = {"labshelf": True, **dict.fromkeys(OTHERS_OFF, False)}
    home = folder / "jupyter"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(labshelf.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
        JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_PLATFORM_DIRS="1",
    )
    command = [
        sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={root}", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False", "--ServerApp.allow_root=True", "--ServerApp.log_level=WARN",
        *(f"--ServerApp.jpserver_extensions={name}={on}" for name, on in extensions.items()),
    ]
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the jupyter server exited: {(folder / 'server.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/labshelf/api/shelves", headers={"Authorization": f"token {token}"})
                if connection.getresponse().status == 200:
                    connection.close()
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the jupyter server did not answer within 60 s")
            time.sleep(0.2)
        yield port, token
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


class Client:
    """One keep-alive HTTP connection to the server, as a browser tab keeps one."""

    def __init__(self, port: int, token: str):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"token {token}"}

    def get(self, endpoint: str, **params: Any) -> tuple[int, str, bytes]:
        self.connection.request("GET", f"/labshelf/api/{endpoint}?{urllib.parse.urlencode(params)}", headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()

    def close(self) -> None:
        self.connection.close()


def build(root: Path) -> int:
    """runs.shelf (10,000 x 30, validated builder) and images.shelf (one 2048x2048 image per run); image runs made."""
    start = now()
    values = Values(RUNS)
    problems, _learned, fixed = validate(root / "runs.shelf", values)
    fill(root / "runs.shelf", values, fixed)
    note(f"runs.shelf: {RUNS:,} runs x {len(NAMES)} scalars in {now() - start:.1f} s"
         + (f"; BUILDER VALIDATION FAILED: {problems}" if problems else " (builder validated)"))
    start = now()
    rng = np.random.default_rng(3)
    count = PICTURE_REPEATS + WARMUP
    with labshelf.create(root / "images.shelf") as shelf:
        for i in range(count):
            with shelf.new_run("camera") as run:
                run.put("camera", beam_image(rng, IMAGE, x0=900 + 10 * i, y0=1100, width=120, peak=3000))
    note(f"images.shelf: {count} runs with a {IMAGE}x{IMAGE} uint16 image (8 MiB each) in {now() - start:.1f} s")
    return count


def body() -> None:
    from PIL import Image

    with scratch(BENCH) as tmp:
        root = tmp / "root"
        root.mkdir()
        images = build(root)
        started = now()
        with jupyter_server(root, tmp) as (port, token):
            note(f"jupyter server (token auth, labshelf.server only) answering in {now() - started:.1f} s")
            client = Client(port, token)
            shelf = labshelf.open(root / "runs.shelf", mode="r")
            try:
                browser = Browser(shelf)
                columns = json.dumps(NAMES)
                status, kind, page = client.get("runs", shelf="runs.shelf", columns=columns, offset=0, limit=PAGE)
                answer = json.loads(page)
                local = browser.runs("", (), NAMES, 0, PAGE).to_json()
                assert status == 200 and "json" in kind, page[:300]
                assert answer["cells"] == local["cells"] and len(answer["columns"]) == 30 and answer["total"] == RUNS, \
                    "the REST page differs from the in-process one"
                note(f"a page: {PAGE} rows x {len(answer['columns'])} columns, {len(page):,} bytes of JSON")

                def offset(i: int) -> int:
                    return (i * 197 % (RUNS // PAGE)) * PAGE

                def rest(i: int) -> None:
                    status, _, _ = client.get("runs", shelf="runs.shelf", columns=columns, offset=offset(i), limit=PAGE)
                    assert status == 200

                def in_process(i: int) -> None:
                    browser.runs("", (), NAMES, offset(i), PAGE).to_json()

                times = interleaved({"rest": rest, "local": in_process}, REPEATS, WARMUP)
                report(BENCH, "REST runs page", median(times["rest"]), "s",
                       limit=("Browser.runs", median(times["local"])),
                       targets=[Target("value", "<=", 0.020, "s"), Target("ratio", "<=", 2.0)],
                       spread=spread(times["rest"]), limit_spread=spread(times["local"]))
            finally:
                shelf.close()

            # Each picture from a new image (a file read), and the limit on that same array in memory.
            with labshelf.open(root / "images.shelf", mode="r") as reader:
                arrays = [np.asarray(reader.get("camera", run=n)) for n in range(1, images + 1)]
            status, kind, png = client.get("picture", shelf="images.shelf", node="run/1/camera", size=PICTURE)
            assert status == 200 and kind == "image/png", png[:300]
            with Image.open(io.BytesIO(png)) as shown:
                assert shown.size == (PICTURE, PICTURE), shown.size
            note(f"a picture: {IMAGE}x{IMAGE} uint16 -> {PICTURE}x{PICTURE} PNG of {len(png):,} bytes")

            def picture(i: int) -> None:
                status, _, _ = client.get("picture", shelf="images.shelf", node=f"run/{i + WARMUP + 1}/camera", size=PICTURE)
                assert status == 200

            def pillow(i: int) -> None:
                small = Image.fromarray(arrays[i + WARMUP]).resize((PICTURE, PICTURE), Image.Resampling.BOX)
                small.save(io.BytesIO(), format="PNG", compress_level=1)

            times = interleaved({"rest": picture, "pillow": pillow}, PICTURE_REPEATS, warmup=0)
            report(BENCH, "REST picture 512", median(times["rest"]), "s", limit=("Pillow alone", median(times["pillow"])),
                   targets=[Target("value", "<=", 0.150, "s")], spread=spread(times["rest"]),
                   limit_spread=spread(times["pillow"]))
            client.close()


if __name__ == "__main__":
    main(BENCH, body)
