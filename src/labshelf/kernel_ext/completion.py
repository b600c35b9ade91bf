"""Tab completion: dataset names and run numbers, from the registry.

One IPython matcher (the v2 matcher API: ``IPCompleter.custom_matchers``)
completes

- dataset names after ``%ds`` and ``%gallery``, run numbers after ``%ds ...
  --run`` (runs that have that dataset) and ``%browse``;
- dataset names inside ``shelf.get("...`` / ``shelf.find("...`` strings (and
  ``run.get("...``, ``shelf[12].get("...``, ``shelf.run(12).get("...``),
  and run numbers after ``shelf.get("name", run=``.

A v2 matcher rather than a ``complete_command`` hook because a dataset name
holds ``/``, which IPython's token splitter cuts at: the matcher says itself
which fragment it completes (``matched_fragment``), so ``camera/im`` becomes
``camera/image`` as a whole.  Each Tab costs a few index probes
(:meth:`labshelf.browse.Browser.names` and ``run_numbers``), at most 50
answers, and never opens a data file.  Without an active shelf the magics offer nothing (and the
completion opens none, except silently the one ``$LABSHELF`` or the working
folder names).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from ..errors import ShelfError

_MAGIC = re.compile(r"^\s*(?:[\w.\[\], ]+=\s*)?%(?P<magic>ds|gallery|browse|subscribe)\s(?P<args>.*)\Z")
_OBJECT = r"(?P<obj>[A-Za-z_]\w*)(?:\[\s*(?P<item>\d+)\s*\]|\.run\(\s*(?P<call>\d+)\s*\))?\s*\.\s*(?:get|find)\("
_GET_NAME = re.compile(_OBJECT + r"\s*(?P<quote>['\"])(?P<prefix>[^'\"]*)\Z")
_GET_RUN = re.compile(_OBJECT + r"\s*(?P<quote>['\"])(?P<name>[^'\"]+)(?P=quote)\s*,\s*run\s*=\s*(?P<prefix>\d*)\Z")

#: Options offered after "-" in the magics that take them.
_OPTIONS = {
    "ds": ("--run", "--data-id", "--help"),
    "subscribe": ("--run", "--kind", "--x", "--data-id", "--help"),
}


def register(ip: Any) -> Any:
    """Add the matcher to ``ip``'s completer; returns the undo."""
    from IPython.core.completer import context_matcher

    @context_matcher(identifier="labshelf", priority=10)
    def labshelf_matcher(context: Any) -> Any:
        return matcher_result(ip, context.text_until_cursor)

    ip.Completer.custom_matchers.append(labshelf_matcher)

    def undo() -> None:
        matchers = ip.Completer.custom_matchers
        if labshelf_matcher in matchers:
            matchers.remove(labshelf_matcher)

    return undo


def matcher_result(ip: Any, line: str) -> dict[str, Any]:
    """The matcher's answer for the text before the cursor (a v2 ``SimpleMatcherResult``)."""
    from IPython.core.completer import SimpleCompletion

    try:
        found = complete(ip, line)
    except ShelfError:  # a shelf gone or locked: no completions rather than a traceback on Tab
        found = None
    if not found:
        return {"completions": []}
    fragment, texts, kind = found
    return {
        "completions": [SimpleCompletion(text, type=kind) for text in texts],
        "matched_fragment": fragment,
        # Files, Python names and Jedi's guesses are noise here.
        "suppress": True,
        # Names come sorted, run numbers newest first: keep that order.
        "ordered": True,
    }


def complete(ip: Any, line: str) -> tuple[str, list[str], str] | None:
    """(fragment replaced, completions, their type) for ``line`` up to the cursor, or None."""
    match = _MAGIC.match(line)
    if match is not None:
        return _complete_magic(ip, match["magic"], match["args"])
    match = _GET_RUN.search(line)
    if match is not None:
        shelf = _shelf_of(ip, match)
        if shelf is None:
            return None
        numbers = _browser(shelf).run_numbers(match["prefix"], name=match["name"])
        return match["prefix"], [str(n) for n in numbers], "run"
    match = _GET_NAME.search(line)
    if match is not None:
        shelf = _shelf_of(ip, match)
        if shelf is None:
            return None
        run = _run_of(ip, match)
        return match["prefix"], _browser(shelf).names(match["prefix"], run=run), "dataset"
    return None


def _complete_magic(ip: Any, magic: str, args: str) -> tuple[str, list[str], str] | None:
    from .magics import state

    words = args.split()
    current = "" if not args or args[-1].isspace() else words.pop()
    if magic in _OPTIONS and current.startswith("-"):
        return current, [o for o in _OPTIONS[magic] if o.startswith(current)], "option"
    shelf = state(ip).peek()
    if shelf is None:
        return None
    browser = _browser(shelf)
    if magic == "browse":
        if words:
            return None
        return current, [str(n) for n in browser.run_numbers(current)], "run"
    positional, run, option = _read_words(words)
    if option == "--run":
        return current, [str(n) for n in browser.run_numbers(current, name=positional)], "run"
    if option is not None or positional is not None:
        return None  # a data ID, the labels, or a query: nothing to offer
    return current, browser.names(current, run=run), "dataset"


def _browser(shelf: Any) -> Any:
    from ..browse import Browser

    return Browser(shelf)


def _read_words(words: list[str]) -> tuple[str | None, int | None, str | None]:
    """What a magic's complete words say: (dataset name, --run value, what the next word is for).

    The last item is an option still waiting for its value (``--run``,
    ``--data-id``, ``--labels``), ``"query"`` once the name is followed by
    more words (``%gallery NAME QUERY``), or None when the next word is free.
    """
    positional: str | None = None
    run: int | None = None
    option: str | None = None
    for word in words:
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            option = None if eq else name
            if name == "--run" and eq:
                run = int(value) if value.isdigit() else None
        elif option == "--run":
            run = int(word) if word.isdigit() else None
            option = None
        elif option == "--labels":
            option = None
        elif option == "--data-id":
            continue  # --data-id takes KEY=VALUE words until the next option
        elif positional is None:
            positional = word
        else:
            return positional, run, "query"
    return positional, run, option


def _shelf_of(ip: Any, match: re.Match[str]) -> Any:
    """The Shelf (or the Run's shelf) that ``match["obj"]`` names in the user namespace, or None."""
    obj = ip.user_ns.get(match["obj"])
    if _is(obj, "labshelf.shelf", "Shelf"):
        return obj
    if _is(obj, "labshelf.run", "Run") and match["item"] is None and match["call"] is None:
        return obj._shelf
    return None


def _run_of(ip: Any, match: re.Match[str]) -> int | None:
    obj = ip.user_ns.get(match["obj"])
    if _is(obj, "labshelf.run", "Run"):
        return int(obj.number)
    number = match["item"] or match["call"]
    return int(number) if number else None


def _is(obj: Any, module: str, name: str) -> bool:
    # Never import labshelf's modules for a Tab press: an object of a class
    # whose module is not loaded cannot be an instance of it anyway.
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(obj, getattr(loaded, name))
