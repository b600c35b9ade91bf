"""labshelf.server as installed: enabled by the wheel's config file alone, configured by ``c.LabShelf``.

Every server of this module is configured by the very file the wheel
installs in ``etc/jupyter/jupyter_server_config.d/`` (plus ``c.LabShelf``),
so these tests fail if that file stops enabling the extension.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from _serving import SHELF, fill
from traitlets import TraitError
from traitlets.config import Config

import labshelf
from _shelves import make_shelf
from labshelf.server import LabShelf

REPO = Path(__file__).resolve().parents[2]
WHEEL_CONFIG = REPO / "jupyter-config" / "server-config" / "labshelf.json"


def test_the_wheel_installs_the_config_file_that_enables_the_extension() -> None:
    assert json.loads(WHEEL_CONFIG.read_text()) == {"ServerApp": {"jpserver_extensions": {"labshelf": True}}}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    shared = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared["jupyter-config/server-config/labshelf.json"] == "etc/jupyter/jupyter_server_config.d/labshelf.json"
    assert any(r.startswith("pytest-jupyter[server]") for r in pyproject["project"]["optional-dependencies"]["dev"])
    assert labshelf._jupyter_server_extension_points() == [{"module": "labshelf.server"}]


@pytest.fixture
def elsewhere(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A shelf outside the server's root: only a configured name reaches it."""
    (tmp_path / "elsewhere").mkdir()
    fill(make_shelf(backend, tmp_path / "elsewhere", request, name="archive.shelf")).close()
    return tmp_path / "elsewhere" / "archive.shelf"


@pytest.fixture
def labshelf_config(elsewhere: Path) -> dict[str, Any]:
    marker = json.loads((elsewhere / "labshelf.json").read_text())
    shelves: dict[str, Any] = {"archive": str(elsewhere), "frozen": {"registry": str(elsewhere), "mode": "r"}}
    if marker["registry"].startswith("postgresql://"):  # by URL, the data folder and schema in its query
        shelves["by-url"] = f"{marker['registry']}?{urlencode({'root': str(elsewhere), 'schema': marker['schema']})}"
    return {"shelves": shelves}


@pytest.fixture
def jp_server_config(labshelf_config: dict[str, Any]) -> Config:
    config = Config(json.loads(WHEEL_CONFIG.read_text()))
    config.LabShelf = Config(labshelf_config)
    return config


async def test_a_server_configured_by_that_file_serves_the_api(jp_serverapp: Any, api: Any) -> None:
    extension = jp_serverapp.extension_manager.extensions["labshelf"]
    assert extension.enabled and extension.extension_points["labshelf.server"].linked
    assert isinstance(jp_serverapp.web_app.settings["labshelf"], LabShelf)
    status, answer = await api("shelves")
    assert status == 200 and answer["truncated"] is False


async def test_configured_shelves_are_served_by_name(lab: Path, api: Any, backend: str) -> None:
    status, answer = await api("shelves")
    assert status == 200, answer
    names = [s["shelf"] for s in answer["shelves"]]
    configured = ["archive", "frozen", *(["by-url"] if backend == "postgres" else [])]
    assert names == [*configured, SHELF]
    by_name = {s["shelf"]: s for s in answer["shelves"]}
    assert all(by_name[n]["configured"] and by_name[n]["runs"] == 3 for n in configured), answer
    assert by_name["archive"]["writable"] is True and by_name["frozen"]["writable"] is False
    for name in configured:
        status, page = await api("runs", shelf=name, columns='["temperature"]')
        assert status == 200 and page["cells"] == [[300.0], [301.0], [302.0]], (name, page)
    status, error = await api("annotate", method="POST", shelf="frozen", body={"run": 1, "comment": "no"})
    assert status == 403 and error["error"] == "ReadOnlyShelf"
    status, answer = await api("annotate", method="POST", shelf="archive", body={"run": 1, "comment": "yes"})
    assert status == 200 and answer["cells"]["comment"] == "yes"


@pytest.mark.parametrize(
    ("shelves", "says"),
    [
        ({"a.shelf": "/x"}, "does not end in '.shelf'"),
        ({"a/b": "/x"}, "without '/'"),
        ({"lab": 3}, "a shelf folder, a postgresql:// URL"),
        ({"lab": {"root": "/x"}}, "'registry' required"),
        ({"lab": {"registry": "/x", "colour": "red"}}, "with keys registry, root, schema, mode"),
        ({"lab": {"registry": "/x", "mode": "w"}}, "mode is 'r' or 'rw'"),
        ({"lab": {"registry": "/x", "root": 5}}, "every value is a str"),
    ],
)
def test_bad_configuration_says_what_is_allowed(tmp_path: Path, shelves: dict[str, Any], says: str) -> None:
    with pytest.raises(TraitError) as caught:
        LabShelf(tmp_path, config=Config({"LabShelf": {"shelves": shelves}}))
    assert says in str(caught.value)
    with pytest.raises(TraitError, match="at least 1"):
        LabShelf(tmp_path, config=Config({"LabShelf": {"workers": 0}}))


def test_every_configuration_option_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    options = LabShelf.class_trait_names(config=True)
    assert set(options) >= {"shelves", "allow_annotate"}
    for name in options:
        assert f"c.LabShelf.{name}" in readme, name
