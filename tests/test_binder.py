"""binder/ would build: its requirements resolve and its postBuild makes the demo shelf.

No Docker engine runs here, so a real Binder (repo2docker) build cannot be
tried.  What can be checked cheaply and honestly:

- ``pip install --dry-run --ignore-installed -r binder/requirements.txt``,
  run from the repository root as repo2docker does, resolves a whole
  environment from the package index (nothing installed is reused) and it
  holds labshelf and what the notebooks need;
- ``binder/postBuild`` (``set -e``, executable) run in a copy of the
  repository, with this venv's scripts on PATH standing in for the image's
  environment, builds ``notebooks/demo.shelf`` where the quickstart opens it;
- the README's Binder link opens the quickstart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import labshelf

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"


def test_requirements_resolve_to_labshelf_and_the_notebooks_needs(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--disable-pip-version-check", "--report", str(report), "-r", "binder/requirements.txt"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower().replace("_", "-") for item in json.loads(report.read_text())["install"]}
    needed = {"labshelf", "jupyterlab", "ipykernel", "ipywidgets", "anywidget", "bokeh", "jupyter-bokeh"}
    assert needed <= resolved, f"missing from the resolved environment: {sorted(needed - resolved)}"


def test_postbuild_builds_the_demo_shelf_next_to_the_notebooks(tmp_path: Path) -> None:
    post_build = BINDER / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    lines = [line.strip() for line in post_build.read_text().splitlines()]
    assert lines[0].startswith("#!"), "postBuild needs a shebang line"
    assert any(re.match(r"set -[a-z]*e", line) for line in lines), "postBuild must stop at the first error (set -e)"

    repo = tmp_path / "repo"
    shutil.copytree(BINDER, repo / "binder")
    shutil.copytree(REPO / "notebooks", repo / "notebooks", ignore=shutil.ignore_patterns("*.shelf"))
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    env.pop("LABSHELF", None)
    proc = subprocess.run(["./binder/postBuild"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    with labshelf.open(repo / "notebooks" / "demo.shelf", mode="r") as shelf:
        assert len(shelf) == 200
        assert shelf.find("camera/image", run=1).kind == "image"


def test_readme_binder_link_opens_the_quickstart() -> None:
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"https://mybinder\.org/v2/\S+?\)", readme)
    assert links, "the README has no mybinder.org link"
    assert all("urlpath=lab/tree/notebooks/quickstart.ipynb" in link for link in links), links
    assert (REPO / "notebooks" / "quickstart.ipynb").exists()
