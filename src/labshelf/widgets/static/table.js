// RunTable view (widgets/table.py): a virtualised grid over a run view.
// Only the rows in view plus a margin are in the DOM; rows come from Python a
// page at a time (request "rows") and are cached here per page until the
// model's `generation` says they may have changed (filter, sort, columns, new
// runs, edits).  Element classes follow the DOM contract in briefs/dom.md.
//
// The JupyterLab Shelves panel draws its run table with this view too, on a model of its
// own (labextension/src/table.ts).  The columns' order and which are shown are the user's:
// reordered by dragging a header or in the column chooser, remembered in the browser per
// shelf (localStorage, under the model's `layout_key`).
//
// What the numbers mean comes beside them (the model's `meta`: a column's heading with its unit,
// its group, scale and precision): cells hold the stored values, as sorting, filtering and editing
// use them, and are formatted here as value / scale.  What a cell shows is what a selection copies;
// its tooltip gives the stored value.  With the `logbook` toggle on, the logbook's entries (request
// "logbook": each placed before a row of the whole view) show as full-width rows between the runs;
// the virtual scroll counts them as rows of the same height ("slots"), so its math stays exact.

import { formatShown } from "./common.js";
import { makeRequester, pngURL } from "./rpc.js";

/**
 * @typedef {{runs: number[], cells: any[][], columns: string[], at: Map<string, number>,
 *            urls: string[], errors: Record<string, Record<string, string>>}} Page
 */

const ROW_HEIGHT = 28; // px, every row: the spacer math needs one fixed height
const IMAGE_ROW_HEIGHT = 56; // when an image column is shown
const MARGIN = 20; // rows rendered above and below the visible ones
const SLACK = 5; // re-render only when fewer than this many spare rows remain
const KEEP_PAGES = 40; // cached pages kept (the farthest go first)
/** @type {Record<string, number>} */
const WIDTH = { run: 64, time: 104, text: 140, comment: 220, tags: 140, number: 96, int: 88, bool: 64, complex: 150, image: 72 };
/** Notes people write: narrow until some row has one. */
const NOTES = new Set(["comment", "tags"]);
const NARROW = 76;
const WIDEST_HEADING = 220; // px a heading may widen its column to
const NUMERIC = new Set(["number", "int"]);
/** Where a table's column layout is remembered (localStorage, + the model's layout_key). */
export const LAYOUT_STORE = "labshelf.columns.";

const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");

/** Seconds since the epoch as local ISO time, "2024-05-01 14:03:22". */
export function formatTime(/** @type {number} */ seconds) {
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * A time as a table cell shows it, short: "05-01 14:03" this year, "2023-11-14" before
 * (the cell's tooltip has the whole time).
 * @param {number} seconds
 * @param {Date} [now]
 */
export function shortTime(seconds, now = new Date()) {
  const d = new Date(seconds * 1000);
  if (d.getFullYear() !== now.getFullYear()) return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * The columns to show from a remembered layout: its order and choice for the columns it
 * knew, columns new since then added at the end (as a new column shows up in Python).
 * @param {{columns: string[], known: string[]}} saved
 * @param {string[]} all  every column the table has now
 * @returns {string[]}
 */
export function layoutColumns(saved, all) {
  const have = new Set(all);
  const known = new Set(saved.known);
  const columns = saved.columns.filter((c, i) => have.has(c) && saved.columns.indexOf(c) === i);
  for (const c of all) if (!known.has(c) && !columns.includes(c)) columns.push(c);
  return columns;
}

/**
 * ``columns`` with ``column`` moved before ``before`` (null: to the end).
 * @param {string[]} columns
 * @param {string} column
 * @param {string | null} before
 */
export function moveColumn(columns, column, before) {
  const rest = columns.filter((c) => c !== column);
  const at = before === null ? rest.length : rest.indexOf(before);
  rest.splice(at < 0 ? rest.length : at, 0, column);
  return rest;
}

/** Drop trailing zeros of a fixed or exponent notation: "2.50000" -> "2.5", "1.20000e+7" -> "1.2e+7". */
function trimZeros(/** @type {string} */ text) {
  const [mantissa, exponent] = text.split("e");
  const trimmed = mantissa.includes(".") ? mantissa.replace(/0+$/, "").replace(/\.$/, "") : mantissa;
  return exponent === undefined ? trimmed : `${trimmed}e${exponent}`;
}

/** A float with six significant digits, like Python's "%.6g". */
export function formatNumber(/** @type {number|string} */ value) {
  if (typeof value === "string") return value; // "inf", "-inf", or a big int kept exact as text
  if (value === 0) return "0";
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  const exponent = Math.floor(Math.log10(Math.abs(value)));
  return trimZeros(exponent < -4 || exponent >= 6 ? value.toExponential(5) : value.toPrecision(6));
}

/**
 * @typedef {{unit?: string, scale?: number, precision?: number, title?: string, description?: string,
 *            heading?: string, group?: string}} ColumnMeta
 */

/**
 * A number as its column shows it, scaled and rounded (common.js's formatShown, the rule of
 * Python's DisplayMeta.format), or null where the column says neither scale nor precision.
 * @param {any} value
 * @param {ColumnMeta | null | undefined} meta
 * @returns {string | null}
 */
export function scaledText(value, meta) {
  if (typeof value !== "number" || !meta || (meta.scale == null && meta.precision == null)) return null;
  return formatShown(value, meta, false);
}

/**
 * What a column's header says: its heading (title's last part and unit, "delay [ps]") or its name.
 * @param {string} column
 * @param {Record<string, ColumnMeta>} meta
 */
export function headingOf(column, meta) {
  const said = meta && meta[column];
  return said && typeof said.heading === "string" && said.heading ? said.heading : column;
}

/**
 * The group header row: runs of neighbouring columns that share a group (null: none).
 * @param {string[]} columns
 * @param {Record<string, ColumnMeta>} meta
 * @returns {{group: string | null, span: number}[]}
 */
export function columnGroups(columns, meta) {
  /** @type {{group: string | null, span: number}[]} */
  const out = [];
  for (const column of columns) {
    const said = meta && meta[column];
    const group = said && typeof said.group === "string" && said.group ? said.group : null;
    const last = out[out.length - 1];
    if (last && last.group === group) last.span += 1;
    else out.push({ group, span: 1 });
  }
  return out;
}

/**
 * Rows of runs and rows of log entries as one list of slots: the entries (each placed before
 * the run at `row`, in order) take the slots before those runs.
 * @param {number[]} rows  each entry's row, non-decreasing
 * @param {number} count   how many runs
 */
export function slotMap(rows, count) {
  const at = rows.map((row, j) => Math.max(0, Math.min(row, count)) + j);
  return {
    total: count + rows.length,
    /** What slot `slot` shows: the `log`-th entry, or the run at `index`. */
    find(/** @type {number} */ slot) {
      let lo = 0;
      let hi = at.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (at[mid] < slot) lo = mid + 1;
        else hi = mid;
      }
      return lo < at.length && at[lo] === slot ? { log: lo, index: -1 } : { log: -1, index: slot - lo };
    },
  };
}

/**
 * The text a cell shows.
 * @param {string} kind  time, number, int, bool, tags, text, complex, image
 * @param {any} value    the JSON value from Python (null for missing)
 * @param {ColumnMeta | null} [meta]  the column's display metadata: numbers shown scaled
 */
export function formatCell(kind, value, meta = null) {
  if (value === null || value === undefined) return "";
  if (kind === "time" && typeof value === "number") return formatTime(value);
  const shown = kind === "time" ? null : scaledText(value, meta);
  if (shown !== null) return shown;
  if (typeof value === "number") return kind === "int" ? String(value) : formatNumber(value);
  if (typeof value === "boolean") return value ? "True" : "False";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

/** The text an edit box starts with: every digit of a number, tags comma-separated. */
export function editText(/** @type {any} */ value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "boolean") return value ? "true" : "false";
  return String(value);
}

/** @param {string} tag @param {string} [className] @returns {any} */
function make(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

/** Keep key presses in an input (Lumino would otherwise run notebook shortcuts on them). */
function quiet(/** @type {HTMLElement} */ input) {
  input.setAttribute("data-lm-suppress-shortcuts", "true");
  input.addEventListener("keydown", (event) => event.stopPropagation());
  input.addEventListener("keyup", (event) => event.stopPropagation());
  input.addEventListener("keypress", (event) => event.stopPropagation());
}

export default {
  /** @param {{model: any, el: HTMLElement}} context */
  render({ model, el }) {
    const { request, close } = makeRequester(model);
    el.replaceChildren();
    el.classList.add("labshelf-widget", "labshelf-runtable");

    const bar = make("div", "ls-toolbar");
    /** @type {HTMLInputElement} */
    const filter = make("input", "ls-filter");
    filter.type = "text";
    filter.placeholder = "filter: temperature > 300 and 'good' in tags   (Enter)";
    filter.spellcheck = false;
    filter.value = model.get("filter");
    quiet(filter);
    const count = make("span", "ls-count");
    const columnsButton = make("button", "ls-columns");
    columnsButton.type = "button";
    columnsButton.textContent = "Columns";
    // The logbook between the runs: a toggle, and a word when the sort gives entries no place.
    const logToggle = make("label", "ls-logbook");
    /** @type {HTMLInputElement} */
    const logBox = make("input", "ls-logbook-toggle");
    logBox.type = "checkbox";
    logBox.checked = Boolean(model.get("logbook"));
    logToggle.append(logBox, document.createTextNode(" Logbook"));
    logToggle.title = "Show the logbook's entries as rows between the runs, by time";
    const logNote = make("span", "ls-log-note");
    logNote.hidden = true;
    bar.append(filter, count, logToggle, logNote, columnsButton);
    const panel = make("div", "ls-columns-panel");
    panel.hidden = true;
    const errorLine = make("div", "ls-error");
    errorLine.setAttribute("role", "alert");
    const scroll = make("div", "ls-scroll");
    const table = make("table", "ls-grid");
    const colgroup = make("colgroup");
    const thead = make("thead");
    const groupRow = make("tr", "ls-groups");
    groupRow.hidden = true;
    const headRow = make("tr", "ls-heads");
    thead.append(groupRow, headRow);
    const tbody = make("tbody");
    table.append(colgroup, thead, tbody);
    scroll.append(table);
    el.append(bar, panel, errorLine, scroll);

    /** @type {Map<number, Page>} pages of the current generation */
    const pages = new Map();
    /** @type {Map<number, Page>} pages of an older generation, shown until their replacement comes */
    const stale = new Map();
    /** @type {Map<number, number>} page -> generation it was requested for */
    const pending = new Map();
    let generation = model.get("generation");
    let selected = new Set(/** @type {number[]} */ (model.get("selected_runs")));
    /** @type {number|null} */
    let anchor = null;
    let rendered = { first: 0, last: 0, height: 0 };
    /** @type {{td: HTMLElement, index: number, run: number, column: string, input: HTMLInputElement, saving: boolean}|null} */
    let editing = null;
    let localError = "";
    let frame = 0;
    let closed = false;
    /** @type {Set<string>} notes columns (comment, tags) some row has a value in: shown wide */
    const used = new Set();
    /** @type {string|null} the column whose header is being dragged */
    let dragging = null;
    /** @type {{id: number, time: number, text: string, user: string, row: number}[]} log entries shown */
    let logEntries = [];
    let logOrder = /** @type {string|null} */ ("run");
    let logAsked = -1; // the generation a logbook request is out for
    let metaDrawn = 0; // bumped when the columns' metadata change: rows are formatted again
    /** @type {string} the column tag the chooser shows ("" for every column) */
    let tagFilter = "";

    const pageSize = () => Math.max(1, model.get("page_size"));
    const kindOf = (/** @type {string} */ column) => model.get("kinds")[column] || "text";
    const shown = () => /** @type {string[]} */ (model.get("columns"));
    const rowHeight = () => (shown().some((c) => kindOf(c) === "image") ? IMAGE_ROW_HEIGHT : ROW_HEIGHT);
    const metaAll = () => /** @type {Record<string, ColumnMeta>} */ (model.get("meta") || {});
    const metaOf = (/** @type {string} */ column) => metaAll()[column] || null;

    function showError() {
      const text = localError || model.get("error") || "";
      errorLine.replaceChildren(text);
      errorLine.hidden = !text;
      // A filter that does not parse: show where, under the text of the filter.
      const position = localError ? null : model.get("error_position");
      const query = model.get("filter") || "";
      if (text && typeof position === "number" && position >= 0 && position <= query.length) {
        const where = make("pre", "ls-error-where");
        where.textContent = `${query}\n${" ".repeat(position)}^`;
        errorLine.append(where);
        if (document.activeElement === filter && filter.value.trim() === query) {
          const start = filter.value.indexOf(query) + position;
          filter.setSelectionRange(start, Math.min(filter.value.length, start + 1));
        }
      }
    }
    function setLocalError(/** @type {string} */ text) {
      localError = text;
      showError();
    }

    function showCount() {
      count.textContent = `${model.get("count")} runs`;
    }

    function dropPage(/** @type {Map<number, Page>} */ from, /** @type {number} */ p) {
      const page = from.get(p);
      if (!page) return;
      for (const url of page.urls) URL.revokeObjectURL(url);
      from.delete(p);
    }

    /** The page holding row `index`, and the row within it (current pages first, then stale ones). */
    function rowAt(/** @type {number} */ index) {
      const p = Math.floor(index / pageSize());
      const page = pages.get(p) || stale.get(p);
      if (!page) return null;
      const r = index - p * pageSize();
      return r < page.runs.length ? { page, r } : null;
    }

    function fetchPage(/** @type {number} */ p) {
      if (pending.get(p) === generation) return;
      const asked = generation;
      pending.set(p, asked);
      request("rows", { offset: p * pageSize(), limit: pageSize() }).then(
        ({ result, buffers }) => {
          if (pending.get(p) === asked) pending.delete(p);
          if (closed || result.generation !== generation) return; // rows of an older filter/sort
          const urls = buffers.map((b) => pngURL(b));
          const at = new Map(result.columns.map((/** @type {string} */ c, /** @type {number} */ i) => [c, i]));
          dropPage(pages, p);
          dropPage(stale, p);
          pages.set(p, { runs: result.runs, cells: result.cells, columns: result.columns, at, urls, errors: result.errors });
          evict();
          if (noteNewlyUsed(result.columns, result.cells)) buildHeader();
          schedule(true);
        },
        (error) => {
          if (pending.get(p) === asked) pending.delete(p);
          if (!closed) setLocalError(error.message);
        },
      );
    }

    /**
     * Whether a comment or tags column got its first value on screen (it widens then).
     * @param {string[]} columns
     * @param {any[][]} cells
     */
    function noteNewlyUsed(columns, cells) {
      let changed = false;
      columns.forEach((column, i) => {
        if (!NOTES.has(column) || used.has(column)) return;
        if (cells.some((row) => row[i] !== null && row[i] !== "" && !(Array.isArray(row[i]) && row[i].length === 0))) {
          used.add(column);
          changed = true;
        }
      });
      return changed;
    }

    /** Forget the cached pages farthest from the rows in view. */
    function evict() {
      if (pages.size <= KEEP_PAGES) return;
      const middle = (rendered.first + rendered.last) / 2 / pageSize();
      const far = [...pages.keys()].sort((a, b) => Math.abs(b - middle) - Math.abs(a - middle));
      for (const p of far.slice(0, pages.size - KEEP_PAGES)) dropPage(pages, p);
    }

    function fillCell(/** @type {HTMLElement} */ td, /** @type {Page} */ page, /** @type {number} */ r, /** @type {string} */ column) {
      const kind = kindOf(column);
      const run = page.runs[r];
      const failed = page.errors[String(run)];
      td.replaceChildren();
      td.removeAttribute("title");
      if (failed && failed[column]) {
        td.classList.add("ls-failed");
        td.textContent = "\u26a0 error";
        td.title = failed[column];
        return;
      }
      const i = page.at.get(column);
      const value = i === undefined ? null : page.cells[r][i];
      if (value && typeof value === "object" && !Array.isArray(value) && "png" in value) {
        const img = make("img", "ls-thumb");
        img.src = page.urls[value.png];
        img.alt = `${column} of run ${run}`;
        img.draggable = false;
        td.append(img);
        return;
      }
      if (kind === "time" && typeof value === "number") {
        td.textContent = shortTime(value);
        td.title = formatTime(value);
        return;
      }
      const meta = metaOf(column);
      const text = formatCell(kind, value, meta);
      td.textContent = text;
      if (column === "status" && typeof value === "string") td.dataset.status = value;
      if (meta && typeof value === "number" && scaledText(value, meta) !== null) {
        // Shown scaled: the tooltip keeps the stored value (what filters and Python compare).
        td.title = `${text}${meta.unit ? ` ${meta.unit}` : ""} (stored ${value})`;
      } else if (text.length > 16) td.title = text;
    }

    function makeRow(/** @type {number} */ index, /** @type {Page} */ page, /** @type {number} */ r) {
      const tr = make("tr");
      const run = page.runs[r];
      tr.dataset.run = String(run);
      tr.dataset.index = String(index);
      if (selected.has(run)) tr.classList.add("ls-selected");
      const first = make("td", "ls-run");
      first.dataset.column = "run";
      first.textContent = String(run);
      tr.append(first);
      const editable = new Set(model.get("editable"));
      for (const column of shown()) {
        const kind = kindOf(column);
        const td = make("td", NUMERIC.has(kind) ? "ls-num" : `ls-${kind}`);
        td.dataset.column = column;
        if (editable.has(column)) td.classList.add("ls-editable");
        fillCell(td, page, r, column);
        tr.append(td);
      }
      tr._lsPage = page; // a row is rebuilt only when its page object changes
      tr._lsMeta = metaDrawn; // ... or the columns' metadata
      return tr;
    }

    /** A log entry's full-width row: its time, who wrote it, what they wrote. */
    function makeLogRow(/** @type {{id: number, time: number, text: string, user: string}} */ entry) {
      const tr = make("tr", "ls-log");
      tr.dataset.log = String(entry.id);
      const td = make("td", "ls-log-cell");
      td.colSpan = shown().length + 1;
      const when = make("span", "ls-log-time");
      when.textContent = typeof entry.time === "number" ? shortTime(entry.time) : String(entry.time);
      const who = make("span", "ls-log-user");
      who.textContent = entry.user;
      const what = make("span", "ls-log-text");
      what.textContent = entry.text;
      td.append(when, who, what);
      td.title = `${typeof entry.time === "number" ? formatTime(entry.time) : entry.time} ${entry.user}: ${entry.text}`;
      tr.append(td);
      tr._lsEntry = entry;
      tr._lsWidth = shown().length;
      return tr;
    }

    /** Ask for the log entries of this generation (when the toggle is on). */
    function fetchLog() {
      if (!model.get("logbook")) {
        logEntries = [];
        showLogNote();
        return;
      }
      if (logAsked === generation) return;
      const asked = generation;
      logAsked = asked;
      request("logbook", {}).then(
        ({ result }) => {
          if (logAsked === asked) logAsked = -1;
          if (closed || result.generation !== generation) {
            if (!closed && result.generation !== generation) fetchLog(); // a newer view came meanwhile
            return;
          }
          logEntries = model.get("logbook") ? result.entries : [];
          logOrder = result.order;
          logAsked = generation; // this generation's entries are here
          showLogNote();
          schedule(true);
        },
        (error) => {
          if (logAsked === asked) logAsked = -1;
          if (!closed) setLocalError(error.message);
        },
      );
    }

    function showLogNote() {
      const on = Boolean(model.get("logbook"));
      logBox.checked = on;
      logNote.hidden = !(on && logOrder === null);
      logNote.textContent = on && logOrder === null ? "log entries show when sorted by run or start" : "";
    }

    function placeholder(/** @type {number} */ index) {
      const tr = make("tr", "ls-placeholder");
      tr.dataset.index = String(index);
      const td = make("td");
      td.colSpan = shown().length + 1;
      td.textContent = "\u2026";
      tr.append(td);
      return tr;
    }

    function spacer(/** @type {number} */ height) {
      const tr = make("tr", "ls-spacer");
      const td = make("td");
      td.colSpan = shown().length + 1;
      td.style.height = `${height}px`;
      tr.append(td);
      tr.hidden = height <= 0;
      return tr;
    }

    /** Render the rows in view (plus the margin); `force` even if the window did not move. */
    function render(/** @type {boolean} */ force) {
      if (closed) return;
      const count = model.get("count");
      const log = count > 0 && model.get("logbook") ? logEntries : [];
      const slots = slotMap(log.map((e) => e.row), count);
      const total = slots.total; // rows on screen: the runs and the log entries between them
      const height = rowHeight();
      const viewport = scroll.clientHeight || 400;
      const visibleFirst = Math.min(total, Math.floor(scroll.scrollTop / height));
      const visibleLast = Math.min(total, Math.ceil((scroll.scrollTop + viewport) / height));
      const covered =
        rendered.first <= Math.max(0, visibleFirst - SLACK) && rendered.last >= Math.min(total, visibleLast + SLACK) && rendered.height === height;
      if (!force && covered) return;
      const first = Math.max(0, visibleFirst - MARGIN);
      const last = Math.min(total, visibleLast + MARGIN);
      el.style.setProperty("--ls-row-height", `${height}px`);

      /** @type {Map<number, HTMLElement>} */
      const existing = new Map();
      for (const tr of tbody.querySelectorAll("tr[data-index]")) existing.set(Number(tr.dataset.index), tr);
      /** @type {Map<string, HTMLElement>} */
      const existingLog = new Map();
      for (const tr of tbody.querySelectorAll("tr[data-log]")) existingLog.set(String(tr.dataset.log), tr);
      const rows = [];
      const wanted = new Set();
      for (let slot = first; slot < last; slot++) {
        const at = slots.find(slot);
        if (at.log >= 0) {
          const entry = log[at.log];
          const old = existingLog.get(String(entry.id));
          rows.push(old && old._lsEntry === entry && old._lsWidth === shown().length ? old : makeLogRow(entry));
          continue;
        }
        const index = at.index;
        const p = Math.floor(index / pageSize());
        wanted.add(p);
        if (!pages.has(p)) fetchPage(p);
        const old = existing.get(index);
        if (editing && editing.index === index && old) {
          rows.push(old); // keep the edit box
          continue;
        }
        const found = rowAt(index);
        if (!found) rows.push(old && old.classList.contains("ls-placeholder") ? old : placeholder(index));
        else if (old && old._lsPage === found.page && old._lsMeta === metaDrawn && old.dataset.run === String(found.page.runs[found.r])) rows.push(old);
        else rows.push(makeRow(index, found.page, found.r));
      }
      if (editing && !rows.includes(editing.td.parentElement)) cancelEdit();
      for (const p of [...stale.keys()]) if (!wanted.has(p)) dropPage(stale, p);
      if (count === 0) {
        const empty = make("tr", "ls-empty");
        const td = make("td");
        td.colSpan = shown().length + 1;
        td.textContent = model.get("filter") ? "no run matches the filter" : "no runs yet";
        empty.append(td);
        rows.push(empty);
      }
      tbody.replaceChildren(spacer(first * height), ...rows, spacer((total - last) * height));
      rendered = { first, last, height };
    }

    function schedule(/** @type {boolean} */ force) {
      if (frame) {
        if (force) pendingForce = true;
        return;
      }
      pendingForce = force;
      frame = requestAnimationFrame(() => {
        frame = 0;
        render(pendingForce);
      });
    }
    let pendingForce = false;

    function buildHeader() {
      const columns = shown();
      const sort = model.get("sort");
      const [sortColumn, ascending] = sort.length ? sort[0] : [null, true];
      const meta = metaAll();
      colgroup.replaceChildren();
      headRow.replaceChildren();
      let width = 0;
      for (const column of ["run", ...columns]) {
        const kind = column === "run" ? "run" : kindOf(column);
        const wide = column === "comment" ? WIDTH.comment : WIDTH[kind] || WIDTH.text;
        const heading = column === "run" ? column : headingOf(column, meta);
        // A heading with a unit or a title may be longer than the kind's width: room for it, within reason.
        const room = heading !== column ? Math.min(WIDEST_HEADING, heading.length * 7.5 + 24) : 0;
        const px = NOTES.has(column) && !used.has(column) ? NARROW : Math.max(wide, room);
        width += px;
        const col = make("col");
        col.style.width = `${px}px`;
        colgroup.append(col);
        const th = make("th", column === "run" ? "ls-run" : NUMERIC.has(kind) ? "ls-num" : "");
        th.dataset.column = column;
        th.textContent = heading;
        const description = column !== "run" && meta[column] && meta[column].description;
        const named = column === "run" ? "run: click to sort" : `${column} (${kind}): click to sort, drag to move`;
        th.title = description ? `${description}\n${named}` : named;
        th.draggable = column !== "run";
        if (column === sortColumn) th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        headRow.append(th);
      }
      table.style.width = `${width}px`;
      // Titles with "/" group their columns under a row of group headers (DAMNIT's habit).
      const groups = columnGroups(columns, meta);
      const grouped = groups.some((g) => g.group !== null);
      groupRow.replaceChildren();
      groupRow.hidden = !grouped;
      table.classList.toggle("ls-grouped", grouped);
      if (grouped) {
        const corner = make("th", "ls-run ls-group");
        groupRow.append(corner);
        for (const { group, span } of groups) {
          const th = make("th", group === null ? "ls-group ls-no-group" : "ls-group");
          th.colSpan = span;
          th.textContent = group ?? "";
          if (group !== null) th.title = group;
          groupRow.append(th);
        }
      }
    }

    /**
     * The column chooser: shown columns in their order (movable), then the hidden ones.
     * Built when open (a shelf may have thousands of columns).
     */
    function buildPanel() {
      if (panel.hidden) {
        panel.replaceChildren();
        return;
      }
      const columns = shown();
      const on = new Set(columns);
      const all = /** @type {string[]} */ (model.get("all_columns"));
      const tagsOf = /** @type {Record<string, string[]>} */ (model.get("column_tags") || {});
      const tags = [...new Set(Object.values(tagsOf).flat())].sort();
      if (tagFilter && !tags.includes(tagFilter)) tagFilter = "";
      const tagged = (/** @type {string} */ c) => !tagFilter || (tagsOf[c] || []).includes(tagFilter);
      const meta = metaAll();
      panel.replaceChildren();
      if (tags.length) {
        // Column tags (Shelf.tag_columns): the chooser lists the columns of one tag.
        const pick = make("span", "ls-tag-pick");
        /** @type {HTMLSelectElement} */
        const select = make("select", "ls-tag-filter");
        select.title = "List the columns with this tag";
        for (const tag of ["", ...tags]) {
          const option = make("option");
          option.value = tag;
          option.textContent = tag || "every tag";
          select.append(option);
        }
        select.value = tagFilter;
        quiet(select);
        pick.append(select);
        if (tagFilter) {
          const only = make("button", "ls-show-tagged");
          only.type = "button";
          only.textContent = "Show only these";
          only.title = `Show the columns tagged ${tagFilter}, and no other`;
          pick.append(only);
        }
        panel.append(pick);
      }
      for (const column of [...columns.filter((c) => all.includes(c)), ...all.filter((c) => !on.has(c))]) {
        if (!tagged(column)) continue;
        const item = make("span", "ls-column-item");
        const label = make("label");
        /** @type {HTMLInputElement} */
        const box = make("input");
        box.type = "checkbox";
        box.dataset.columnToggle = column;
        box.checked = on.has(column);
        label.append(box, document.createTextNode(` ${column}`));
        const heading = headingOf(column, meta);
        if (heading !== column) label.title = heading;
        if (tagsOf[column]) item.dataset.tags = tagsOf[column].join(" ");
        item.append(label);
        if (on.has(column)) {
          for (const [step, arrow, what] of /** @type {[number, string, string][]} */ ([[-1, "\u25c2", "earlier"], [1, "\u25b8", "later"]])) {
            const move = make("button", "ls-move");
            move.type = "button";
            move.textContent = arrow;
            move.title = `move ${column} ${what}`;
            move.setAttribute("aria-label", move.title);
            move.dataset.move = String(step);
            move.dataset.column = column;
            item.append(move);
          }
        }
        panel.append(item);
      }
      const reset = make("button", "ls-reset-columns");
      reset.type = "button";
      reset.textContent = "Reset";
      reset.title = "Show the first screen's columns in their first order again (and forget this table's layout)";
      panel.append(reset);
    }

    // -- the columns' layout, remembered per shelf ---------------------------------------

    function layoutKey() {
      const key = model.get("layout_key");
      return typeof key === "string" && key ? LAYOUT_STORE + key : null;
    }

    /** Show ``columns``, as the user chose (so remembered). */
    function chooseColumns(/** @type {string[]} */ columns) {
      model.set("columns", columns);
      model.save_changes();
      const key = layoutKey();
      if (!key) return;
      try {
        localStorage.setItem(key, JSON.stringify({ columns, known: model.get("all_columns") }));
      } catch {
        // storage full or refused (a private window): the layout lasts this view only
      }
    }

    function resetColumns() {
      const key = layoutKey();
      if (key) {
        try {
          localStorage.removeItem(key);
        } catch {
          // nothing remembered, nothing to forget
        }
      }
      const first = model.get("default_columns");
      model.set("columns", Array.isArray(first) && first.length ? first : model.get("all_columns"));
      model.save_changes();
    }

    /** The layout remembered for this table's shelf, if any, applied. */
    function restoreColumns() {
      const key = layoutKey();
      if (!key) return;
      let saved = null;
      try {
        saved = JSON.parse(localStorage.getItem(key) || "null");
      } catch {
        saved = null;
      }
      if (!saved || !Array.isArray(saved.columns) || !Array.isArray(saved.known)) return;
      const columns = layoutColumns(saved, model.get("all_columns"));
      if (JSON.stringify(columns) !== JSON.stringify(shown())) {
        model.set("columns", columns);
        model.save_changes();
      }
    }

    function markSelection() {
      for (const tr of tbody.querySelectorAll("tr[data-run]")) tr.classList.toggle("ls-selected", selected.has(Number(tr.dataset.run)));
    }

    function commitSelection() {
      markSelection();
      model.set("selected_runs", [...selected]);
      model.save_changes();
    }

    // -- editing ------------------------------------------------------------------

    function startEdit(/** @type {HTMLElement} */ td) {
      const tr = /** @type {HTMLElement} */ (td.parentElement);
      const index = Number(tr.dataset.index);
      const found = rowAt(index);
      if (!found) return;
      if (editing) cancelEdit();
      const column = /** @type {string} */ (td.dataset.column);
      const i = found.page.at.get(column);
      /** @type {HTMLInputElement} */
      const input = make("input", "ls-edit");
      input.type = "text";
      input.spellcheck = false;
      input.value = editText(i === undefined ? null : found.page.cells[found.r][i]);
      if (column === "tags") input.placeholder = "tag, tag, ...";
      quiet(input);
      editing = { td, index, run: found.page.runs[found.r], column, input, saving: false };
      td.classList.add("ls-editing");
      td.replaceChildren(input);
      input.focus();
      input.select();
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          saveEdit();
        } else if (event.key === "Escape") {
          event.preventDefault();
          cancelEdit();
        }
      });
      input.addEventListener("blur", () => {
        if (editing && editing.input === input && !editing.saving) cancelEdit();
      });
    }

    function endEdit() {
      if (!editing) return;
      const { td, index } = editing;
      editing = null;
      td.classList.remove("ls-editing");
      const found = rowAt(index);
      if (found && td.isConnected) fillCell(td, found.page, found.r, /** @type {string} */ (td.dataset.column));
    }

    function cancelEdit() {
      endEdit();
    }

    function saveEdit() {
      if (!editing || editing.saving) return;
      const current = editing;
      current.saving = true;
      current.input.disabled = true;
      request("edit", { run: current.run, column: current.column, value: current.input.value }).then(
        ({ result }) => {
          // Every cached copy of the row shows the stored value at once; the
          // next poll brings the rest (a new order, other viewers' edits).
          for (const page of [...pages.values(), ...stale.values()]) {
            const r = page.runs.indexOf(result.run);
            const i = page.at.get(result.column);
            if (r >= 0 && i !== undefined) page.cells[r][i] = result.value;
          }
          if (noteNewlyUsed([result.column], [[result.value]])) buildHeader();
          setLocalError("");
          if (editing === current) endEdit();
        },
        (error) => {
          setLocalError(error.message);
          if (editing === current) endEdit(); // the cell shows its old value again
        },
      );
    }

    // -- events -------------------------------------------------------------------

    filter.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      setLocalError("");
      const text = filter.value.trim();
      if (text === model.get("filter")) {
        showError();
        return;
      }
      scroll.scrollTop = 0;
      model.set("filter", text);
      model.save_changes();
    });

    headRow.addEventListener("click", (event) => {
      const th = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (event.target).closest("th[data-column]"));
      if (!th) return;
      const column = /** @type {string} */ (th.dataset.column);
      const sort = model.get("sort");
      const ascending = sort.length && sort[0][0] === column ? !sort[0][1] : true;
      setLocalError("");
      scroll.scrollTop = 0;
      model.set("sort", [[column, ascending]]);
      model.save_changes();
    });

    columnsButton.addEventListener("click", () => {
      panel.hidden = !panel.hidden;
      buildPanel();
      columnsButton.setAttribute("aria-expanded", String(!panel.hidden));
    });
    panel.addEventListener("change", (event) => {
      const target = /** @type {HTMLElement} */ (event.target);
      if (target.classList.contains("ls-tag-filter")) {
        tagFilter = /** @type {HTMLSelectElement} */ (target).value;
        buildPanel();
        return;
      }
      const box = /** @type {HTMLInputElement} */ (target);
      const column = box.dataset.columnToggle;
      if (!column) return;
      const columns = shown().filter((c) => c !== column);
      if (box.checked) {
        // Back where the first screen has it: after the shown column that precedes it there.
        const all = /** @type {string[]} */ (model.get("all_columns"));
        const before = all.slice(0, all.indexOf(column)).filter((c) => columns.includes(c));
        columns.splice(before.length ? columns.indexOf(before[before.length - 1]) + 1 : 0, 0, column);
      }
      chooseColumns(columns);
    });
    panel.addEventListener("click", (event) => {
      const target = /** @type {HTMLElement} */ (event.target);
      if (target.closest(".ls-reset-columns")) {
        resetColumns();
        return;
      }
      if (target.closest(".ls-show-tagged") && tagFilter) {
        const tagsOf = /** @type {Record<string, string[]>} */ (model.get("column_tags") || {});
        const all = /** @type {string[]} */ (model.get("all_columns"));
        const only = all.filter((c) => (tagsOf[c] || []).includes(tagFilter));
        if (only.length) chooseColumns(only);
        return;
      }
      const move = /** @type {HTMLElement|null} */ (target.closest("button[data-move]"));
      if (!move || !move.dataset.column) return;
      const columns = [...shown()]; // a copy: the model's own list must not change under it
      const i = columns.indexOf(move.dataset.column);
      const j = i + Number(move.dataset.move);
      if (i < 0 || j < 0 || j >= columns.length) return;
      [columns[i], columns[j]] = [columns[j], columns[i]];
      chooseColumns(columns);
    });

    // Headers move by drag and drop: dropped on the left half of a header, before it.
    headRow.addEventListener("dragstart", (event) => {
      const th = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (event.target).closest("th[data-column]"));
      if (!th || th.dataset.column === "run" || !event.dataTransfer) return;
      dragging = th.dataset.column || null;
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragging || "");
    });
    /** @param {DragEvent} event */
    const dropPlace = (event) => {
      const th = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (event.target).closest("th[data-column]"));
      if (!th || !dragging || th.dataset.column === "run") return null;
      const box = th.getBoundingClientRect();
      const columns = shown();
      const at = columns.indexOf(th.dataset.column || "");
      const after = event.clientX > box.left + box.width / 2;
      return { th, before: after ? (columns[at + 1] ?? null) : th.dataset.column || null };
    };
    headRow.addEventListener("dragover", (event) => {
      const place = dropPlace(event);
      if (!place) return;
      event.preventDefault();
      for (const th of headRow.querySelectorAll(".ls-drop")) th.classList.remove("ls-drop");
      place.th.classList.add("ls-drop");
    });
    headRow.addEventListener("drop", (event) => {
      const place = dropPlace(event);
      if (!place || !dragging) return;
      event.preventDefault();
      if (place.before !== dragging) chooseColumns(moveColumn(shown(), dragging, place.before));
    });
    headRow.addEventListener("dragend", () => {
      dragging = null;
      for (const th of headRow.querySelectorAll(".ls-drop")) th.classList.remove("ls-drop");
    });

    tbody.addEventListener("mousedown", (event) => {
      if (event.shiftKey) event.preventDefault(); // no text selection on shift-click
    });
    tbody.addEventListener("click", (event) => {
      const target = /** @type {HTMLElement} */ (event.target);
      if (target.closest("input.ls-edit")) return;
      const tr = /** @type {HTMLElement|null} */ (target.closest("tr[data-run]"));
      if (!tr) return;
      const index = Number(tr.dataset.index);
      const run = Number(tr.dataset.run);
      if (event.shiftKey && anchor !== null) {
        const from = Math.min(anchor, index);
        const to = Math.max(anchor, index);
        const runs = [];
        for (let i = from; i <= to; i++) {
          const found = rowAt(i);
          if (!found) break;
          runs.push(found.page.runs[found.r]);
        }
        if (runs.length === to - from + 1) {
          selected = new Set(runs);
          commitSelection();
        } else {
          // Rows never scrolled to: Python knows their numbers.
          request("numbers", { offset: from, limit: to - from + 1 }).then(
            ({ result }) => {
              selected = new Set(result);
              commitSelection();
            },
            (error) => setLocalError(error.message),
          );
        }
        return;
      }
      if (event.ctrlKey || event.metaKey) {
        if (selected.has(run)) selected.delete(run);
        else selected.add(run);
      } else {
        selected = new Set([run]);
      }
      anchor = index;
      commitSelection();
    });
    tbody.addEventListener("dblclick", (event) => {
      const td = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (event.target).closest("td[data-column]"));
      if (!td || td.classList.contains("ls-editing")) return;
      if (!model.get("editable").includes(td.dataset.column)) return;
      startEdit(td);
    });
    scroll.addEventListener("scroll", () => schedule(false), { passive: true });
    const resized = new ResizeObserver(() => schedule(false));
    resized.observe(scroll);

    // -- model changes --------------------------------------------------------------

    logBox.addEventListener("change", () => {
      model.set("logbook", logBox.checked);
      model.save_changes();
    });

    const onGeneration = () => {
      generation = model.get("generation");
      fetchLog();
      // What is on screen stays until its fresh rows come: no flash of empty rows.
      for (const [p, page] of pages) {
        dropPage(stale, p);
        stale.set(p, page);
      }
      pages.clear();
      pending.clear();
      schedule(true);
    };
    const onCount = () => {
      showCount();
      schedule(true);
    };
    const onColumns = () => {
      buildHeader();
      buildPanel();
      schedule(true);
    };
    const onSort = () => buildHeader();
    const onMeta = () => {
      metaDrawn += 1; // every row is formatted again
      buildHeader();
      buildPanel();
      schedule(true);
    };
    const onLogbook = () => {
      logAsked = -1;
      fetchLog();
      showLogNote();
      schedule(true);
    };
    const onFilter = () => {
      if (document.activeElement !== filter) filter.value = model.get("filter");
    };
    const onSelected = () => {
      selected = new Set(model.get("selected_runs"));
      markSelection();
    };
    const onError = () => {
      localError = "";
      showError();
    };
    const handlers = /** @type {[string, () => void][]} */ ([
      ["change:generation", onGeneration],
      ["change:count", onCount],
      ["change:columns", onColumns],
      ["change:all_columns", buildPanel],
      ["change:kinds", onColumns],
      ["change:editable", () => schedule(true)],
      ["change:sort", onSort],
      ["change:filter", onFilter],
      ["change:selected_runs", onSelected],
      ["change:error", onError],
      ["change:error_position", onError],
      ["change:poll", () => startPolling()],
      ["change:meta", onMeta],
      ["change:column_tags", buildPanel],
      ["change:logbook", onLogbook],
    ]);
    for (const [name, handler] of handlers) model.on(name, handler);

    // -- polling for new runs and other people's edits ---------------------------------------

    /** @type {ReturnType<typeof setInterval>|undefined} */
    let timer;
    let polling = false;
    function startPolling() {
      clearInterval(timer);
      const seconds = model.get("poll");
      if (!(seconds > 0)) return;
      timer = setInterval(() => {
        if (polling || document.hidden) return; // never pile requests on a busy kernel
        polling = true;
        request("version")
          .catch(() => undefined) // a restarting kernel: try again next time
          .finally(() => {
            polling = false;
          });
      }, Math.max(250, seconds * 1000));
    }

    restoreColumns();
    buildHeader();
    buildPanel();
    showCount();
    showError();
    showLogNote();
    fetchLog();
    startPolling();
    render(true);

    return () => {
      closed = true;
      clearInterval(timer);
      if (frame) cancelAnimationFrame(frame);
      resized.disconnect();
      for (const [name, handler] of handlers) model.off(name, handler);
      close();
      for (const p of [...pages.keys()]) dropPage(pages, p);
      for (const p of [...stale.keys()]) dropPage(stale, p);
    };
  },
};
