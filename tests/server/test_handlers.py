"""The REST endpoints of labshelf.server (labextension/API.md) against a real Jupyter server, on SQLite and PostgreSQL.

Every endpoint is called as the sidebar calls it, through the server's own
token auth; errors are checked for their status and JSON body.  What an
annotation changed is read back from the shelf with labshelf itself.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from _serving import SHELF
from PIL import Image

import labshelf
from labshelf.browse import Browser


def png_size(body: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(body)) as picture:
        assert picture.format == "PNG"
        return picture.size


# -- every endpoint ---------------------------------------------------------------------------------------------


async def test_shelves_lists_what_is_under_the_root(lab: Path, jp_root_dir: Path, api: Any, backend: str) -> None:
    (jp_root_dir / "notes").mkdir()
    (jp_root_dir / "notes" / "broken.shelf").mkdir()
    (jp_root_dir / "notes" / "broken.shelf" / "labshelf.json").write_text("{not json")
    (jp_root_dir / "node_modules" / "x.shelf").mkdir(parents=True)
    (jp_root_dir / "node_modules" / "x.shelf" / "labshelf.json").write_text("{}")
    status, answer = await api("shelves")
    assert status == 200, answer
    listed = {s["shelf"]: s for s in answer["shelves"]}
    assert set(listed) == {SHELF, "notes/broken.shelf"}
    shown = listed[SHELF]
    assert shown["name"] == "lab" and shown["configured"] is False and shown["runs"] == 3 and shown["writable"] is True
    assert shown["backend"] == ("sqlite" if backend == "sqlite" else "postgresql")
    assert shown["last_change"].endswith("+00:00") and shown["version"]
    broken = listed["notes/broken.shelf"]
    assert broken["runs"] is None and "labshelf.json" in broken["error"]
    assert answer["root"] and answer["truncated"] is False


async def test_shelf_gives_columns_in_first_screen_order(lab: Path, api: Any) -> None:
    status, answer = await api("shelf", shelf=SHELF)
    assert status == 200, answer
    assert answer["shelf"] == SHELF and answer["runs"] == 3
    assert answer["columns"] == ["status", "start", "end", "experiment", "temperature", "camera/image", "trace", "scan/x",
                                 "comment", "tags", "quality"]
    assert answer["default_columns"] == [c for c in answer["columns"] if c != "end"]
    assert answer["kinds"]["camera/image"] == "image" and answer["kinds"]["start"] == "time"
    assert answer["editable"] == ["comment", "tags", "quality"] and answer["user_columns"] == {"quality": "int"}
    assert answer["version"] == answer["version"].strip() != ""


async def test_runs_pages_sort_filter_and_choose_columns(lab: Path, api: Any) -> None:
    status, page = await api("runs", shelf=SHELF)
    assert status == 200, page
    assert page["total"] == 3 and page["runs"] == [1, 2, 3] and "end" not in page["columns"]
    assert page["columns"][:4] == ["status", "start", "experiment", "temperature"]
    image = page["columns"].index("camera/image")
    assert page["cells"][0][image] == {"png": 0}
    assert png_size(base64.b64decode(page["thumbnails"][0]))[0] > 0
    status, page = await api("runs", shelf=SHELF, query="temperature > 300", sort='[["temperature", false]]',
                             columns='["temperature", "comment"]', offset="0", limit="1")
    assert status == 200, page
    assert (page["total"], page["runs"], page["columns"], page["cells"]) == (2, [3], ["temperature", "comment"], [[302.0, None]])


async def test_children_search_preview_pixel_and_code(lab: Path, api: Any) -> None:
    status, page = await api("children", shelf=SHELF)
    assert status == 200 and [n["id"] for n in page["nodes"]] == ["run/3", "run/2", "run/1"]
    status, page = await api("children", shelf=SHELF, node="run/1", limit="2")
    assert status == 200 and [n["id"] for n in page["nodes"]] == ["run/1/camera", "run/1/scan"] and page["more"] is True
    status, page = await api("children", shelf=SHELF, node="run/1", search="trace")
    assert [n["id"] for n in page["nodes"]] == ["run/1/trace"]
    status, page = await api("search", shelf=SHELF, pattern="*/image", limit="2")
    assert status == 200 and [n["id"] for n in page["nodes"]] == ["run/3/camera/image", "run/2/camera/image"]
    status, preview = await api("preview", shelf=SHELF, node="run/1/camera/image", size="32")
    assert status == 200 and preview["picture"]["width"] == 32 and preview["picture"]["shape"] == [48, 64]
    status, pixel = await api("pixel", shelf=SHELF, node="run/2/camera/image", x="5", y="2")
    assert status == 200 and pixel == {"x": 5, "y": 2, "value": 2 * 64 + 5 + 1, "shape": [48, 64]}
    status, snippet = await api("code", shelf=SHELF, node="run/2/temperature")
    assert status == 200 and snippet["code"] == "shelf.get('temperature', run=2)"
    assert "labshelf.open(" in snippet["setup"]


async def test_picture_is_a_png_cached_by_the_shelf_version(lab: Path, api: Any) -> None:
    status, response = await api("picture", shelf=SHELF, node="run/1/camera/image", size="40")
    assert status == 200 and response.headers["Content-Type"] == "image/png"
    assert png_size(response.body) == (32, 24)  # 48x64 shrunk by a whole factor to fit 40
    etag, cache = response.headers["Etag"], response.headers["Cache-Control"]
    assert "private" in cache
    _, shelf = await api("shelf", shelf=SHELF)
    assert etag == json.dumps(shelf["version"])
    status, again = await api("picture", shelf=SHELF, node="run/1/camera/image", size="40", headers={"If-None-Match": etag})
    assert status == 304
    with labshelf.open(lab) as writer:  # the shelf changes: the picture is drawn again
        writer.annotate(1, comment="changed")
    status, fresh = await api("picture", shelf=SHELF, node="run/1/camera/image", size="40", headers={"If-None-Match": etag})
    assert status == 200 and fresh.headers["Etag"] != etag
    status, error = await api("picture", shelf=SHELF, node="run/1/temperature")
    assert status == 400 and "no picture" in error["message"]


async def test_annotate_writes_the_shelf(lab: Path, api: Any) -> None:
    status, answer = await api("annotate", method="POST", shelf=SHELF,
                               body={"run": 2, "comment": "focus moved", "tags": ["good"], "columns": {"quality": 4}})
    assert status == 200, answer
    assert answer == {"run": 2, "cells": {"comment": "focus moved", "tags": ["good"], "quality": 4}}
    with labshelf.open(lab, mode="r") as reader:
        table = reader.runs.to_pandas()
        assert table.loc[2, "comment"] == "focus moved" and list(table.loc[2, "tags"]) == ["good"]
        assert table.loc[2, "quality"] == 4
    status, answer = await api("annotate", method="POST", shelf=SHELF, body={"run": 2, "comment": None})
    assert status == 200 and answer["cells"]["comment"] is None


# -- errors -------------------------------------------------------------------------------------------------------


async def test_a_bad_query_gives_400_with_its_position(lab: Path, api: Any) -> None:
    status, error = await api("runs", shelf=SHELF, query="temperature >")
    assert status == 400 and error["error"] == "QuerySyntaxError" and error["position"] == 13
    status, error = await api("runs", shelf=SHELF, query="temprature > 3")
    assert status == 400 and "temperature" in error["message"]


async def test_an_unknown_run_or_dataset_gives_404_with_close_matches(lab: Path, api: Any) -> None:
    status, error = await api("children", shelf=SHELF, node="run/7")
    assert status == 404 and error["error"] == "RunNotFound" and error["matches"] == ["run/3", "run/2", "run/1"]
    status, error = await api("preview", shelf=SHELF, node="run/2/temprature")
    assert status == 404 and error["error"] == "DatasetNotFound" and error["matches"] == ["run/2/temperature"]
    status, error = await api("annotate", method="POST", shelf=SHELF, body={"run": 9, "comment": "x"})
    assert status == 404 and error["error"] == "RunNotFound" and error["matches"][0] == "run/3"
    status, error = await api("shelf", shelf="data/none.shelf")
    assert status == 404 and error["error"] == "NotAShelf"


@pytest.mark.parametrize(
    ("endpoint", "params", "says"),
    [
        ("runs", {"limit": "abc"}, "limit is an integer from 1 to 1000, not 'abc'"),
        ("runs", {"limit": "5000"}, "limit is an integer from 1 to 1000"),
        ("runs", {"offset": "-1"}, "offset is an integer from 0"),
        ("runs", {"sort": "temperature"}, "sort is a JSON list, like"),
        ("runs", {"sort": '[["temperature", "down"]]'}, "sort is a list of [column, ascending] pairs"),
        ("runs", {"columns": '{"a": 1}'}, "columns is a JSON list"),
        ("runs", {"columns": '["nope"]'}, "unknown column 'nope'"),
        ("preview", {"node": "run/1/camera/image", "size": "5"}, "size is an integer from 16 to 2048"),
        ("pixel", {"node": "run/1/camera/image", "x": "64", "y": "0"}, "columns x from 0 to 63 and rows y from 0 to 47"),
        ("pixel", {"node": "run/1/camera/image", "x": "1.5", "y": "0"}, "x is an integer"),
        ("pixel", {"node": "run/1/camera/image"}, "x and y are required"),
        ("pixel", {"node": "run/1/trace", "x": "0", "y": "0"}, "image datasets and 2-D array datasets"),
        ("children", {"node": "run/1/\x01"}, "is not a node id"),
        ("search", {}, "the parameter pattern is required"),
        ("runs", {"logbook": "yes"}, "logbook is true or false (1 or 0), not 'yes'"),
        ("logbook", {"sort": "start"}, "sort is a JSON list, like"),
        ("logbook", {"query": "temperature >> 3"}, "unexpected '>' at position 13"),
        ("logbook", {"sort": '[["nope", true]]'}, "nope"),
    ],
)
async def test_bad_parameters_give_400_saying_what_is_allowed(
    lab: Path, api: Any, endpoint: str, params: dict[str, str], says: str
) -> None:
    status, error = await api(endpoint, shelf=SHELF, **params)
    assert status == 400, error
    assert says in error["message"], error
    assert set(error) <= {"error", "message", "position", "matches"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("not json", "the body is a JSON object"),
        ({"comment": "no run"}, "'run' required"),
        ({"run": 1, "colour": "red"}, "the body is a JSON object with keys run, comment, tags, columns"),
        ('{"run": 1, "columns": {"quality": NaN}}', "numbers finite"),
        ({"run": "1"}, "run is a run number"),
        ({"run": 1, "tags": "good"}, "tags= takes a list of tags"),
        ({"run": 1, "columns": {"quality": "high"}}, "quality"),
        ({"run": 1, "columns": {"start": 3}}, "one of the run table's own columns"),
    ],
)
async def test_bad_annotations_give_400(lab: Path, api: Any, body: Any, says: str) -> None:
    status, error = await api("annotate", method="POST", shelf=SHELF, body=body)
    assert status == 400, error
    assert says in error["message"], error


async def test_an_unexpected_error_is_500_without_details(
    lab: Path, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Browser, node: Any) -> Any:
        raise RuntimeError("secret detail from /somewhere")

    monkeypatch.setattr(Browser, "code", broken)
    status, error = await api("code", shelf=SHELF, node="run/1")
    assert status == 500 and error["error"] == "RuntimeError"
    assert "secret" not in error["message"] and "Traceback" not in json.dumps(error)


async def test_a_slow_preview_does_not_hold_other_requests(
    lab: Path, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Browser.preview

    def slow(self: Browser, node: Any, size: Any = None) -> Any:
        time.sleep(1.5)
        return original(self, node, size)

    monkeypatch.setattr(Browser, "preview", slow)
    await api("shelf", shelf=SHELF)  # opened before the race
    preview = asyncio.ensure_future(api("preview", shelf=SHELF, node="run/1/temperature"))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    status, _ = await api("runs", shelf=SHELF)
    assert status == 200 and time.monotonic() - started < 1.0
    assert not preview.done()
    status, answer = await preview
    assert status == 200 and answer["kind"] == "scalar"


# -- auth ---------------------------------------------------------------------------------------------------------


async def test_no_token_no_answer(lab: Path, http_server_client: Any, jp_base_url: str, api: Any) -> None:
    for endpoint in ("shelves", f"shelf?shelf={SHELF}", f"runs?shelf={SHELF}", f"picture?shelf={SHELF}&node=run/1/camera/image"):
        response = await http_server_client.fetch(f"{jp_base_url}labshelf/api/{endpoint}", raise_error=False)
        assert response.code == 403, endpoint
        assert json.loads(response.body)["error"] == "HTTPError"
    status, _ = await api("shelves", headers={"Authorization": "token wrong"})
    assert status == 403
    response = await http_server_client.fetch(
        f"{jp_base_url}labshelf/api/annotate?shelf={SHELF}", method="POST", body=json.dumps({"run": 1, "comment": "x"}),
        raise_error=False,
    )
    assert response.code == 403
    with labshelf.open(lab, mode="r") as reader:
        assert reader.runs.to_pandas().loc[1, "comment"] == "aligned"


async def test_a_post_with_a_login_cookie_needs_the_xsrf_token(
    lab: Path, http_server_client: Any, jp_base_url: str, jp_serverapp: Any
) -> None:
    token = jp_serverapp.identity_provider.token
    login = await http_server_client.fetch(f"{jp_base_url}labshelf/api/shelves?token={token}")
    cookie = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    url = f"{jp_base_url}labshelf/api/annotate?shelf={SHELF}"
    body = json.dumps({"run": 1, "comment": "from a page"})
    page = await http_server_client.fetch(f"{jp_base_url}labshelf/api/shelves", headers={"Cookie": cookie})
    assert page.code == 200  # the cookie logs in
    refused = await http_server_client.fetch(url, method="POST", body=body, headers={"Cookie": cookie}, raise_error=False)
    assert refused.code == 403 and "_xsrf" in json.loads(refused.body)["message"]
    with labshelf.open(lab, mode="r") as reader:
        assert reader.runs.to_pandas().loc[1, "comment"] == "aligned"
    xsrf = "0123456789abcdef"
    allowed = await http_server_client.fetch(
        url, method="POST", body=body, headers={"Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf}, raise_error=False
    )
    assert allowed.code == 200, allowed.body
    assert json.loads(allowed.body)["cells"]["comment"] == "from a page"


# -- read-only shelves and configuration ------------------------------------------------------------------------------


async def test_a_read_only_shelf_refuses_annotate(lab: Path, api: Any) -> None:
    with labshelf.open(lab) as owner:
        owner.set_repo_mode("r")  # the shelf itself says: never written
    status, shown = await api("shelf", shelf=SHELF)
    assert status == 200 and shown["writable"] is False
    status, error = await api("annotate", method="POST", shelf=SHELF, body={"run": 1, "comment": "no"})
    assert status == 403 and error["error"] == "ReadOnlyShelf" and "read-only on this server" in error["message"]
    with labshelf.open(lab, mode="r") as reader:
        assert reader.runs.to_pandas().loc[1, "comment"] == "aligned"


async def test_a_shelf_the_server_cannot_write_opens_read_only(
    lab: Path, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labshelf.place
    import labshelf.registry.engine

    real_access = os.access
    inside = str(lab)

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        # As for another account's folder (tests run as root, whom permissions do not stop).
        if mode & os.W_OK and str(path).startswith(inside):
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(labshelf.place.os, "access", access)
    monkeypatch.setattr(labshelf.registry.engine.os, "access", access)
    status, shown = await api("shelf", shelf=SHELF)
    assert status == 200 and shown["writable"] is False and shown["runs"] == 3
    status, error = await api("annotate", method="POST", shelf=SHELF, body={"run": 1, "comment": "no"})
    assert status == 403 and "cannot be written by the server" in error["message"]


@pytest.mark.parametrize("labshelf_config", [{"allow_annotate": False}])
async def test_allow_annotate_false_refuses_annotate(lab: Path, api: Any, labshelf_config: dict[str, Any]) -> None:
    status, shown = await api("shelves")
    assert status == 200 and shown["shelves"][0]["writable"] is False
    status, error = await api("annotate", method="POST", shelf=SHELF, body={"run": 1, "comment": "no"})
    assert status == 403 and "c.LabShelf.allow_annotate = False" in error["message"]
    with labshelf.open(lab, mode="r") as reader:
        assert reader.runs.to_pandas().loc[1, "comment"] == "aligned"


# -- what the columns mean, and the logbook between the runs -----------------------------------------------------


def describe_and_log(lab: Path) -> dict[str, int]:
    """Metadata on two columns, a tag, and log entries between runs 1 and 2 and after run 3."""
    with labshelf.open(lab) as shelf:
        shelf.describe("temperature", unit="K", precision=1, title="Cryo/temperature", description="cold finger")
        shelf.describe("scan/x", unit="mm", scale=1e-3)
        shelf.tag_columns("temperature", ["cryo"])
        frame = shelf.runs[["start"]].to_pandas(thumbnails=False)
        t = [stamp.timestamp() for stamp in frame["start"]]
        return {"1-2": shelf.log("pumped down", at=(t[0] + t[1]) / 2), "after": shelf.log("end", at=t[2] + 10)}


async def test_shelf_and_runs_carry_metadata_and_tags(lab: Path, api: Any) -> None:
    describe_and_log(lab)
    status, answer = await api("shelf", shelf=SHELF)
    assert status == 200, answer
    assert answer["meta"]["temperature"] == {"unit": "K", "precision": 1, "title": "Cryo/temperature",
                                             "description": "cold finger", "heading": "temperature [K]", "group": "Cryo"}
    assert answer["meta"]["scan/x"] == {"unit": "mm", "scale": 0.001, "heading": "scan/x [mm]"}
    assert answer["column_tags"] == {"temperature": ["cryo"]}
    status, page = await api("runs", shelf=SHELF, columns='["temperature", "scan/x"]')
    assert status == 200, page
    assert set(page["meta"]) == {"temperature", "scan/x"} and page["column_tags"] == {"temperature": ["cryo"]}
    assert page["cells"] == [[300.0, 0.0], [301.0, 1.0], [302.0, 2.0]]  # stored values, never scaled
    assert "log" not in page


async def test_runs_with_the_logbook_and_the_whole_logbook(lab: Path, api: Any) -> None:
    ids = describe_and_log(lab)
    status, page = await api("runs", shelf=SHELF, columns='["temperature"]', logbook="true", offset="0", limit="2")
    assert status == 200, page
    assert page["log_order"] == "run"
    assert [(e["id"], e["row"], e["before"], e["text"]) for e in page["log"]] == [(ids["1-2"], 1, 1, "pumped down")]
    status, page = await api("runs", shelf=SHELF, columns='["temperature"]', logbook="1", offset="2", limit="2")
    assert [(e["id"], e["row"], e["before"]) for e in page["log"]] == [(ids["after"], 3, 1)]
    status, page = await api("runs", shelf=SHELF, sort='[["start", false]]', logbook="true")
    assert page["runs"] == [3, 2, 1] and [(e["id"], e["row"]) for e in page["log"]] == [(ids["after"], 0), (ids["1-2"], 2)]
    status, page = await api("runs", shelf=SHELF, sort='[["temperature", true]]', logbook="true")
    assert (page["log"], page["log_order"]) == ([], None)
    status, answer = await api("logbook", shelf=SHELF, query="run >= 2", sort='[["run", false]]')
    assert status == 200, answer
    assert answer["log_order"] == "run"
    # Run 1 is filtered out: "pumped down", noted before run 2 started, is older than the table and left out.
    assert [(e["id"], e["row"]) for e in answer["log"]] == [(ids["after"], 0)]
    assert answer["log"][0]["time"].endswith("+00:00") and answer["log"][0]["user"]
