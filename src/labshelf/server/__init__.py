"""labshelf.server: the jupyter-server extension behind JupyterLab's Shelves sidebar.

Enabled by ``pip install labshelf[jupyter]`` alone: the wheel installs
``etc/jupyter/jupyter_server_config.d/labshelf.json``, which turns on the
server extension ``labshelf`` (its ``_jupyter_server_extension_points``
points here).  No kernel is involved: the handlers answer from the shelves
under the server's ``root_dir`` and those named in ``c.LabShelf.shelves``.

::

    {base_url}labshelf/api/shelves | shelf | runs | children | search | preview | picture | pixel | code
                          annotate (POST) | events (WebSocket)

The layer is thin: ``handlers.py`` reads URL parameters and turns labshelf
errors into JSON, ``events.py`` forwards change events, ``places.py`` keeps
every path inside root_dir, ``extension.py`` (LabShelf) holds the
configuration and the shelves opened.  What is shown comes from
:class:`labshelf.browse.Browser`; nothing here builds SQL or opens a data
file.  The REST contract with the labextension is labextension/API.md.
"""

from __future__ import annotations

from typing import Any

from .extension import LabShelf

__all__ = ["LabShelf"]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Add the sidebar's handlers to a Jupyter server (called by jupyter_server when the extension is enabled)."""
    from jupyter_server.utils import url_path_join

    from .events import EventsHandler
    from .handlers import HANDLERS

    labshelf = LabShelf(serverapp.root_dir, allow_hidden=serverapp.contents_manager.allow_hidden, parent=serverapp)
    web_app = serverapp.web_app
    web_app.settings["labshelf"] = labshelf
    base = url_path_join(web_app.settings["base_url"], "labshelf", "api")
    routes: list[tuple[str, Any]] = [(url_path_join(base, path), handler) for path, handler in HANDLERS]
    routes.append((url_path_join(base, "events"), EventsHandler))
    web_app.add_handlers(".*$", routes)
    _stop_with(serverapp, labshelf)
    serverapp.log.info(
        "labshelf: the Shelves sidebar's API is at %s (shelves under %s%s; annotating %s)",
        base, labshelf.root, f" and {len(labshelf.shelves)} configured" if labshelf.shelves else "",
        "allowed" if labshelf.allow_annotate else "turned off",
    )


def _stop_with(serverapp: Any, labshelf: LabShelf) -> None:
    """Stop ``labshelf`` (feeds, shelves, sockets) when the server shuts down.

    jupyter_server calls shutdown hooks of ExtensionApp extensions only; a
    module extension like this one chains its own onto the server's cleanup
    of extensions, which every shutdown runs (a signal, /api/shutdown, the
    end of a test).
    """
    cleanup = serverapp.cleanup_extensions

    async def cleanup_extensions() -> None:
        try:
            labshelf.stop()
        finally:
            await cleanup()

    serverapp.cleanup_extensions = cleanup_extensions
