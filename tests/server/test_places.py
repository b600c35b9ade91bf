"""The server never opens a path outside its root_dir: shelf paths checked, walks bounded.

First :mod:`labshelf.server.places` alone, then the same attacks through a
real server, with a real shelf outside the root that each attack aims at:
every one is refused with a JSON 403/404, and nothing is opened (the
opening function is watched, and the outside shelf's folder is unchanged).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from _serving import SHELF

import labshelf
from labshelf.errors import NotAShelf, UnsafePath
from labshelf.server.places import find_shelves, shelf_folder


def make(folder: Path) -> Path:
    """A shelf folder as the server sees one (a marker is all a path check looks at)."""
    folder.mkdir(parents=True)
    (folder / "labshelf.json").write_text("{}")
    return folder


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): root/a/b/in.shelf, root/.hidden/h.shelf, outside/secret.shelf, and links both ways."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    make(root / "a" / "b" / "in.shelf")
    make(root / ".hidden" / "h.shelf")
    make(outside / "secret.shelf")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "linked.shelf").symlink_to(outside / "secret.shelf", target_is_directory=True)
    (root / "a" / "alias.shelf").symlink_to(root / "a" / "b" / "in.shelf", target_is_directory=True)
    (root / "a" / "up").symlink_to(root / "a", target_is_directory=True)
    return Path(os.path.realpath(root)), outside


def test_a_plain_path_under_the_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert shelf_folder(root, "a/b/in.shelf") == root / "a" / "b" / "in.shelf"
    assert shelf_folder(root, "a/alias.shelf") == root / "a" / "b" / "in.shelf"  # a link that stays inside
    assert shelf_folder(root, "a/up/b/in.shelf") == root / "a" / "b" / "in.shelf"
    assert shelf_folder(root, ".hidden/h.shelf", allow_hidden=True) == root / ".hidden" / "h.shelf"


@pytest.mark.parametrize(
    ("text", "error", "says"),
    [
        ("../outside/secret.shelf", UnsafePath, "without '.', '..'"),
        ("a/../../outside/secret.shelf", UnsafePath, "without '.', '..'"),
        ("a/./b/in.shelf", UnsafePath, "without '.', '..'"),
        ("a//b/in.shelf", UnsafePath, "without '.', '..'"),
        ("/etc/x.shelf", UnsafePath, "not absolute"),
        ("~/x.shelf", UnsafePath, "not absolute"),
        ("C:/x.shelf", UnsafePath, "not absolute"),
        ("a\\b\\in.shelf", UnsafePath, "never '\\'"),
        ("..\\outside\\secret.shelf", UnsafePath, "never '\\'"),
        ("a/b/in.shelf\x00", UnsafePath, "control characters"),
        ("%2e%2e/outside/secret.shelf", UnsafePath, "percent escapes"),
        ("..%2foutside%2fsecret.shelf", UnsafePath, "percent escapes"),
        ("a%2Fb/in.shelf", UnsafePath, "percent escapes"),
        ("out/secret.shelf", UnsafePath, "'out' is a link that leads outside"),
        ("linked.shelf", UnsafePath, "'linked.shelf' is a link that leads outside"),
        (".hidden/h.shelf", UnsafePath, "hidden folders"),
        ("x" * 2000 + ".shelf", UnsafePath, "at most 1024 characters"),
        ("a/b", NotAShelf, "end in '.shelf'"),
        ("a/.shelf", UnsafePath, "hidden"),
        ("a/b/none.shelf", NotAShelf, "no shelf"),
        ("", NotAShelf, "a shelf is a path"),
        (None, NotAShelf, "a shelf is a path"),
    ],
)
def test_refused_paths(tree: tuple[Path, Path], text: Any, error: type[Exception], says: str) -> None:
    root, _ = tree
    with pytest.raises(error) as caught:
        shelf_folder(root, text)
    assert says in str(caught.value)


def test_a_folder_without_a_marker_is_not_a_shelf(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "plain.shelf").mkdir()
    with pytest.raises(NotAShelf, match="has no labshelf.json"):
        shelf_folder(root, "plain.shelf")


def test_the_walk_finds_shelves_without_leaving_the_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    make(root / "node_modules" / "n.shelf")
    make(root / "a" / "b" / "in.shelf" / "nested.shelf")  # never looked for inside a shelf
    make(root / "d1" / "d2" / "d3" / "four.shelf")
    make(root / "d1" / "d2" / "d3" / "d4" / "five.shelf")
    found = find_shelves(root)
    assert found.shelves == ("a/alias.shelf", "a/b/in.shelf", "d1/d2/d3/four.shelf")
    assert found.truncated is False
    assert find_shelves(root, allow_hidden=True).shelves[0] == ".hidden/h.shelf"
    assert "d1/d2/d3/d4/five.shelf" in find_shelves(root, depth=5).shelves
    small = find_shelves(root, folders=2)
    assert small.truncated is True and small.shelves == ("a/alias.shelf",)


# -- the same attacks through a real server -------------------------------------------------------------------


@pytest.fixture
def outside(lab: Path, jp_root_dir: Path, tmp_path: Path) -> Path:
    """A real shelf outside the root, and links to it from inside: what the attacks aim at."""
    secret = tmp_path / "outside" / "secret.shelf"
    secret.parent.mkdir()
    with labshelf.create(secret) as shelf, shelf.new_run("secret") as run:
        run.put("password", "hunter2")
    (jp_root_dir / "out").symlink_to(secret.parent, target_is_directory=True)
    (jp_root_dir / "linked.shelf").symlink_to(secret, target_is_directory=True)
    return secret


ATTACKS = [
    "../outside/secret.shelf",
    "data/../../outside/secret.shelf",
    "{secret}",  # the absolute path
    "out/secret.shelf",
    "linked.shelf",
    "%2e%2e/outside/secret.shelf",
    "..%2Foutside%2Fsecret.shelf",
    "%252e%252e/outside/secret.shelf",
    "..\\outside\\secret.shelf",
    "data/lab.shelf\x00",
]


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("endpoint", ["shelf", "picture"])
async def test_paths_out_of_the_root_are_refused_and_nothing_opens(
    outside: Path, api: Any, monkeypatch: pytest.MonkeyPatch, attack: str, endpoint: str
) -> None:
    import labshelf.opening

    opened: list[str] = []
    real = labshelf.opening.open_alone

    def watched(path: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(labshelf.opening, "open_alone", watched)
    before = sorted(p.name for p in outside.iterdir())
    status, error = await api(endpoint, shelf=attack.format(secret=outside), node="run/1/password")
    assert status in (403, 404), error
    assert error["error"] in ("UnsafePath", "NotAShelf") and error["message"]
    assert "hunter2" not in str(error)
    assert opened == []
    assert sorted(p.name for p in outside.iterdir()) == before  # no -wal, no -shm: never opened
    status, _ = await api("shelf", shelf=SHELF)  # the server still serves its own
    assert status == 200 and opened and all(str(outside) not in p for p in opened)


async def test_the_list_never_shows_what_lies_outside(outside: Path, api: Any) -> None:
    status, answer = await api("shelves")
    assert status == 200
    assert [s["shelf"] for s in answer["shelves"]] == [SHELF]
