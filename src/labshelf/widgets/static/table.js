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
 * The text a cell shows.
 * @param {string} kind  time, number, int, bool, tags, text, complex, image
 * @param {any} value    the JSON value from Python (null for missing)
 */
export function formatCell(kind, value) {
  if (value === null || value === undefined) return "";
  if (kind === "time" && typeof value === "number") return formatTime(value);
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
    bar.append(filter, count, columnsButton);
    const panel = make("div", "ls-columns-panel");
    panel.hidden = true;
    const errorLine = make("div", "ls-error");
    errorLine.setAttribute("role", "alert");
    const scroll = make("div", "ls-scroll");
    const table = make("table", "ls-grid");
    const colgroup = make("colgroup");
    const thead = make("thead");
    const headRow = make("tr");
    thead.append(headRow);
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

    const pageSize = () => Math.max(1, model.get("page_size"));
    const kindOf = (/** @type {string} */ column) => model.get("kinds")[column] || "text";
    const shown = () => /** @type {string[]} */ (model.get("columns"));
    const rowHeight = () => (shown().some((c) => kindOf(c) === "image") ? IMAGE_ROW_HEIGHT : ROW_HEIGHT);

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
      const text = formatCell(kind, value);
      td.textContent = text;
      if (column === "status" && typeof value === "string") td.dataset.status = value;
      if (text.length > 16) td.title = text;
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
      return tr;
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
      const total = model.get("count");
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
      const rows = [];
      const wanted = new Set();
      for (let index = first; index < last; index++) {
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
        else if (old && old._lsPage === found.page && old.dataset.run === String(found.page.runs[found.r])) rows.push(old);
        else rows.push(makeRow(index, found.page, found.r));
      }
      if (editing && (editing.index < first || editing.index >= last)) cancelEdit();
      for (const p of [...stale.keys()]) if (!wanted.has(p)) dropPage(stale, p);
      if (total === 0) {
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
      colgroup.replaceChildren();
      headRow.replaceChildren();
      let width = 0;
      for (const column of ["run", ...columns]) {
        const kind = column === "run" ? "run" : kindOf(column);
        const wide = column === "comment" ? WIDTH.comment : WIDTH[kind] || WIDTH.text;
        const px = NOTES.has(column) && !used.has(column) ? NARROW : wide;
        width += px;
        const col = make("col");
        col.style.width = `${px}px`;
        colgroup.append(col);
        const th = make("th", column === "run" ? "ls-run" : NUMERIC.has(kind) ? "ls-num" : "");
        th.dataset.column = column;
        th.textContent = column;
        th.title = column === "run" ? "run: click to sort" : `${column} (${kind}): click to sort, drag to move`;
        th.draggable = column !== "run";
        if (column === sortColumn) th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        headRow.append(th);
      }
      table.style.width = `${width}px`;
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
      panel.replaceChildren();
      for (const column of [...columns.filter((c) => all.includes(c)), ...all.filter((c) => !on.has(c))]) {
        const item = make("span", "ls-column-item");
        const label = make("label");
        /** @type {HTMLInputElement} */
        const box = make("input");
        box.type = "checkbox";
        box.dataset.columnToggle = column;
        box.checked = on.has(column);
        label.append(box, document.createTextNode(` ${column}`));
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
      const box = /** @type {HTMLInputElement} */ (event.target);
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

    const onGeneration = () => {
      generation = model.get("generation");
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
