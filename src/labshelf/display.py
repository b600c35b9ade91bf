"""Rich HTML display of shelves, runs and datasets in notebooks (``_repr_html_``).

In the manner of xarray: a header line, then collapsible sections (plain
HTML ``<details>``, no JavaScript, so they work in nbconvert output and
untrusted notebooks alike) for a run's metadata, params and datasets, or a
shelf's facts and latest runs.  Everything shown comes from the registry,
read through :mod:`labshelf.browse` like every front end: no data file is
ever opened to draw a repr, and image datasets show the PNG thumbnail kept
there since put time.

Display metadata (``shelf.describe``) shape what a dataset's values look
like, by :meth:`DisplayMeta.format <labshelf.registry.meta.DisplayMeta.format>`
as everywhere else: a number scaled, with its precision and unit; an
array's mean and an image's thumbnail with the unit; a title beside the
name, the description as the name's tooltip.  A name nobody described
shows as it always did.

Lengths are capped (:data:`MAX_DATASETS` datasets, :data:`LATEST_RUNS`
runs, :data:`TEXT_CHARS` characters of any text) in the SQL queries
themselves, so a run of 10,000 datasets draws as fast as a run of ten.
Every text is HTML-escaped: experiment names, params and data IDs are the
user's and may hold ``<``.  The style sheet is ``static/display.css``
(package data), read once.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._format import size_text

if TYPE_CHECKING:
    from .registry.meta import DisplayMeta
    from .registry.records import DatasetRef
    from .run import Run
    from .shelf import Shelf

#: Datasets listed in a run's repr (the rest are counted).
MAX_DATASETS = 50
#: Runs listed in a shelf's repr, newest first.
LATEST_RUNS = 10
#: Params listed in a run's repr.
MAX_PARAMS = 50
#: Characters of any one text shown (longer ones end with an ellipsis).
TEXT_CHARS = 120
#: Data files listed in a dataset's repr.
MAX_FILES = 5

__all__ = ["shelf_html", "run_html", "ref_html", "refs_html"]


@functools.cache
def css() -> str:
    """The style sheet of these reprs (package data, read once per process)."""
    from importlib.resources import files

    return (files("labshelf") / "static" / "display.css").read_text(encoding="utf-8")


# -- the three objects -------------------------------------------------------------------------


def shelf_html(shelf: Shelf) -> str:
    """HTML of a shelf: where it is, its backend and counts, and its latest runs."""
    mode = f"<span class='ls-badge'>{_e(shelf.mode)}</span>"
    if shelf._closed:  # never reconnect just to describe a closed shelf
        return _frame("Shelf", f"{_e(shelf.where)} {mode} <span class='ls-badge'>closed</span>", [])
    info = shelf.info()
    facts = {
        "where": info.pop("where"),
        "root": info.pop("root"),
        "backend": info.pop("backend"),
        "mode": info.pop("mode"),
        "runs": f"{info.pop('runs'):,}",
        "datasets": f"{info.pop('datasets'):,}",
        **info,
    }
    rows, total = _latest_runs(shelf)
    if rows:
        head = _head(["run", "experiment", "status", "start", "duration", "datasets", "comment", "tags"])
        body = "".join(
            "<tr>"
            f"<td class='ls-num'>{r['number']}</td><td>{_e(r['experiment'])}</td><td>{_status(r['status'])}</td>"
            f"<td>{_e(_time(r['started']))}</td><td class='ls-num'>{_e(_duration(r['started'], r['ended']))}</td>"
            f"<td class='ls-num'>{r['datasets']:,}</td><td>{_e(r['comment'] or '')}</td>"
            f"<td>{_e(', '.join(r['tags']))}</td></tr>"
            for r in rows
        )
        latest = f"<table class='ls-table'>{head}<tbody>{body}</tbody></table>"
        if total > len(rows):
            latest += f"<div class='ls-more'>{total - len(rows):,} older runs: <code>shelf.runs</code></div>"
    else:
        latest = "<div class='ls-more'>no runs yet</div>"
    title = f"latest runs ({len(rows)} of {total:,})" if total > len(rows) else f"runs ({total:,})"
    sections = [("shelf", _kv(facts), True), (title, latest, True)]
    return _frame("Shelf", f"{_e(shelf.where)} {mode}", sections)


def run_html(run: Run) -> str:
    """HTML of a run: its metadata, params and datasets (the first :data:`MAX_DATASETS`)."""
    record = run.record  # read fresh: status and end change while it runs
    meta: dict[str, Any] = {
        "experiment": record.experiment,
        "status": record.status,
        "start": _time(record.started),
        "end": _time(record.ended),
        "duration": _duration(record.started, record.ended),
        "host": record.host,
        "user": record.user,
        "pid": record.pid,
        "collection": record.collection,
    }
    if record.error:
        meta["error"] = record.error
    params = dict(list(record.params.items())[:MAX_PARAMS])
    params_html = _kv({k: json.dumps(v, ensure_ascii=False) for k, v in params.items()}) if params else _none("no params")
    if len(record.params) > MAX_PARAMS:
        params_html += f"<div class='ls-more'>{len(record.params) - MAX_PARAMS} more: <code>run.params</code></div>"
    refs, total = _run_datasets(run._shelf, record.number)
    datasets = _refs_table(refs, _described([(run._shelf, refs)])) if refs else _none("no datasets yet")
    if total > len(refs):
        datasets += (
            f"<div class='ls-more'>{total - len(refs):,} more: "
            f"<code>shelf.datasets({record.number})</code></div>"
        )
    experiment = f" <span class='ls-name'>{_e(record.experiment)}</span>" if record.experiment else ""
    header = f"<span class='ls-name'>{record.number}</span>{experiment} {_status(record.status)}"
    sections = [
        ("metadata", _kv(meta), True),
        (f"params ({len(record.params)})", params_html, len(record.params) <= 12),
        (f"datasets ({total:,})", datasets, True),
    ]
    return _frame("Run", header, sections)


def ref_html(ref: DatasetRef) -> str:
    """HTML of one dataset: where it is, what it holds, its summary, and how to read it."""
    meta = _described_one(ref)
    facts: dict[str, Any] = {
        "run": ref.run,
        "name": ref.name,
        **(_meta_facts(meta) if meta is not None else {}),
        "data ID": _data_id(ref.data_id) or "(none)",
        "kind": ref.kind,
        "shape": _shape(ref.shape),
        "dtype": ref.dtype or "",
        "size": size_text(ref.nbytes),
        "version": ref.version,
        "created": _time(ref.created),
        "updated": _time(ref.updated),
    }
    storage = ref.storage
    if storage.inline is not None:
        facts["stored"] = "inline in the registry"
    elif storage.ingested is not None:
        facts["stored"] = f"ingested from {storage.ingested}"
    else:
        files = list(storage.files)
        shown = ", ".join(files[:MAX_FILES]) + (f" and {len(files) - MAX_FILES} more" if len(files) > MAX_FILES else "")
        facts["stored"] = f"{len(files)} file{'s' if len(files) != 1 else ''}: {shown}"
    if storage.options and storage.ingested is None:
        facts["HDF5 options"] = ", ".join(f"{k}={v!r}" for k, v in storage.options.items())
    from .browse.code import get_code

    code = get_code(ref.name, ref.run, ref.data_id)
    sections = [("dataset", _kv(facts) + f"<div class='ls-code'><code>{_e(code)}</code></div>", True)]
    if ref.summary is not None:
        sections.append(("summary", f"<div class='ls-summary'>{_summary(ref, meta, large=True)}</div>", True))
    header = f"{_name(ref.label, meta, 'span')} of run {ref.run} <span class='ls-badge'>{_e(ref.kind)}</span>"
    return _frame("DatasetRef", header, sections)


def refs_html(refs: Sequence[DatasetRef]) -> str:
    """HTML of a list of datasets (``shelf.datasets(12)``): a table of the first :data:`MAX_DATASETS`."""
    shown = list(refs[:MAX_DATASETS])
    body = _refs_table(shown, _described(_holders(shown)), with_run=len({r.run for r in shown}) > 1)
    if len(refs) > len(shown):
        body += f"<div class='ls-more'>{len(refs) - len(shown):,} more</div>"
    return _frame("datasets", f"{len(refs):,} dataset{'s' if len(refs) != 1 else ''}", [("", body, True)])


# -- registry reads (capped in SQL, through labshelf.browse) ----------------------------------------


def _run_datasets(shelf: Shelf, number: int) -> tuple[list[DatasetRef], int]:
    from .browse import Browser

    return Browser(shelf).first_datasets(number, MAX_DATASETS)


def _latest_runs(shelf: Shelf) -> tuple[list[dict[str, Any]], int]:
    from .browse import Browser

    found, total = Browser(shelf).latest_runs(LATEST_RUNS)
    return [row._asdict() for row in found], total


# -- display metadata (through the shelf that holds the datasets) ---------------------------------


def _holders(refs: Sequence[DatasetRef]) -> list[tuple[Shelf, list[DatasetRef]]]:
    """The refs grouped by the open shelf that holds their repository (a record knows where it is
    stored, not who read it); refs of no open shelf are left out."""
    from .shelf import holding

    by_repository: dict[str, list[DatasetRef]] = {}
    for ref in refs:
        by_repository.setdefault(ref.repository, []).append(ref)
    found: dict[int, tuple[Shelf, list[DatasetRef]]] = {}
    for repository, held in by_repository.items():
        shelf = holding(repository)
        if shelf is not None:
            found.setdefault(id(shelf), (shelf, []))[1].extend(held)
    return list(found.values())


def _described(groups: Iterable[tuple[Shelf, Sequence[DatasetRef]]]) -> dict[int, DisplayMeta]:
    """The metadata of each ref something is said of, by ``id(ref)`` (one read of each shelf's records)."""
    from .metadata import for_label

    out: dict[int, DisplayMeta] = {}
    for shelf, refs in groups:
        records = shelf.metadata()
        if not records:
            continue
        for ref in refs:
            meta = for_label(records, ref.name, ref.data_id)
            if meta is not None and not meta.empty:
                out[id(ref)] = meta
    return out


def _described_one(ref: DatasetRef) -> DisplayMeta | None:
    from .shelf import holding

    shelf = holding(ref.repository)
    meta = shelf.metadata(ref.name, data_id=dict(ref.data_id)) if shelf is not None else None
    return meta if meta is not None and not meta.empty else None


def _meta_facts(meta: DisplayMeta) -> dict[str, Any]:
    """What the metadata say, as facts of a dataset's repr (only the fields said)."""
    return {("display " + k if k == "precision" else k): v for k, v in meta.fields().items()}


def _name(text: str, meta: DisplayMeta | None, tag: str = "td") -> str:
    """A dataset's name, with its title beside it and its description as a tooltip (when said)."""
    if meta is None or (meta.title is None and meta.description is None):
        return f"<{tag} class='ls-name'>{_e(text)}</{tag}>"
    tip = f" title='{_e(_tip(meta.description))}'" if meta.description else ""
    title = f" <span class='ls-title'>{_e(_text(meta.title))}</span>" if meta.title else ""
    if tag == "span":
        return f"<span class='ls-name'{tip}>{_e(text)}</span>{title}"
    return f"<{tag} class='ls-name'{tip}>{_e(text)}{title}</{tag}>"


def _tip(text: str | None) -> str:
    """A tooltip's text: a description, capped (tooltips are no place for 10,000 characters)."""
    text = text or ""
    return text if len(text) <= 4 * TEXT_CHARS else text[: 4 * TEXT_CHARS - 1] + "\u2026"


# -- pieces ------------------------------------------------------------------------------------------


def _frame(kind: str, header: str, sections: Iterable[tuple[str, str, bool]]) -> str:
    parts = [
        f"<style>{css()}</style><div class='labshelf-repr'>",
        f"<div class='ls-header'><span class='ls-type'>labshelf.{_e(kind)}</span> {header}</div>",
    ]
    for title, body, is_open in sections:
        if not title:
            parts.append(f"<div class='ls-body'>{body}</div>")
            continue
        parts.append(
            f"<details class='ls-section'{' open' if is_open else ''}>"
            f"<summary>{_e(title)}</summary><div class='ls-body'>{body}</div></details>"
        )
    parts.append("</div>")
    return "".join(parts)


def _refs_table(
    refs: Sequence[DatasetRef], described: Mapping[int, DisplayMeta], *, with_run: bool = False
) -> str:
    columns = (["run"] if with_run else []) + ["name", "data ID", "kind", "shape", "dtype", "size", "summary"]
    rows = []
    for ref in refs:
        run = f"<td class='ls-num'>{ref.run}</td>" if with_run else ""
        meta = described.get(id(ref))
        rows.append(
            f"<tr>{run}{_name(ref.name, meta)}<td>{_e(_data_id(ref.data_id))}</td>"
            f"<td>{_e(ref.kind)}</td><td>{_e(_shape(ref.shape))}</td><td>{_e(ref.dtype or '')}</td>"
            f"<td class='ls-num'>{_e(size_text(ref.nbytes))}</td><td>{_summary(ref, meta)}</td></tr>"
        )
    return f"<table class='ls-table'>{_head(columns)}<tbody>{''.join(rows)}</tbody></table>"


def _head(columns: Sequence[str]) -> str:
    return "<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr></thead>"


def _kv(items: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_text(v))}</td></tr>" for k, v in items.items())
    return f"<table class='ls-kv'><tbody>{rows}</tbody></table>"


def _none(text: str) -> str:
    return f"<div class='ls-more'>{_e(text)}</div>"


def _summary(ref: DatasetRef, meta: DisplayMeta | None = None, *, large: bool = False) -> str:
    """A dataset's summary: a value (scaled, with precision and unit when described), an array's mean,
    an image's thumbnail (with its unit)."""
    import numbers

    value = ref.summary
    if isinstance(value, bytes) and value.startswith(b"\x89PNG"):
        data = base64.b64encode(value).decode("ascii")
        css_class = "ls-thumb ls-thumb-large" if large else "ls-thumb"
        unit = f" <span class='ls-unit'>{_e(meta.unit)}</span>" if meta is not None and meta.unit else ""
        return f"<img class='{css_class}' src='data:image/png;base64,{data}' alt='{_e(f'thumbnail of {ref.label}')}'/>{unit}"
    if value is None:
        return ""
    if meta is not None and isinstance(value, numbers.Number) and not isinstance(value, bool):
        text = meta.format(value, unit=True)
        return _e(f"mean {text}" if ref.kind in ("ndarray", "image") else text)
    if isinstance(value, float):
        text = f"{value:.6g}"
        return f"mean {text}" if ref.kind in ("ndarray", "image") else text
    return _e(_text(value))


def _status(status: str) -> str:
    return f"<span class='ls-status ls-status-{_e(status)}'>{_e(status)}</span>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "\u2026"


def _data_id(data_id: Mapping[str, Any]) -> str:
    from .names import format_data_id

    return format_data_id(data_id)


def _shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return ""
    return "\u00d7".join(str(n) for n in shape) if shape else "()"


def _time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return _dt.datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(started: float, ended: float | None) -> str:
    if ended is None:
        return "running"
    seconds = max(0.0, ended - started)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
