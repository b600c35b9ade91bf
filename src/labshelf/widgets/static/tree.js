// DatasetTree view (Python side: labshelf/widgets/tree.py).
// Children are asked for when a node opens, a page at a time; a preview when
// a node is selected.  Selectors used by the browser tests: .labshelf-tree,
// input.ls-search, [data-node], .ls-toggle, .ls-label, .ls-meta, .ls-more,
// .ls-selected, .ls-preview, .ls-code, button.ls-copy, .ls-error, .ls-picture img,
// .ls-colorbar, .ls-pixel, button.ls-insert (when the host can insert code),
// .ls-dtitle and .ls-unit (a described dataset's title and unit, beside its name).
//
// The JupyterLab Shelves panel draws its tree with this view too, on a model of its own
// (labextension/src/tree.ts) and with a `host` that inserts code into notebooks.

import { makeRequester, pngURL } from "./rpc.js";
import { ANCHORS, errorLine, formatShown, formatValue, h } from "./common.js";

/**
 * @typedef {{id: string, name: string, kind: string, meta: string, expandable: boolean, expand?: boolean,
 *            unit?: string, title?: string, description?: string}} TreeNode
 * @typedef {{nodes: TreeNode[], more: boolean, offset: number}} Page
 * @typedef {{width: number, height: number, shape?: number[], factor?: number, vmin?: number, vmax?: number}} Picture
 * @typedef {{node: string, title: string, kind: string, fields?: [string, string][], text?: string | null,
 *            note?: string, image?: number, table?: {columns: string[], dtypes: string[], rows: string[][]},
 *            code?: string, picture?: Picture, display?: import("./common.js").Display}} Preview
 * @typedef {{x: number, y: number, value: any, shape: number[], text?: string}} Pixel
 * @typedef {{insert?: (node: string) => Promise<string>, copy?: (node: string) => Promise<string>}} Host
 *   What a host page adds: insert a node's code into a notebook, copy it its own way.
 */

/** Milliseconds the search waits after the last key before asking (Enter asks at once). */
const SEARCH_DELAY_MS = 300;
/** The most children one request may ask for (browse/tree.py MAX_PAGE). */
const MAX_PAGE = 1000;

export default {
  /** @param {{model: any, el: HTMLElement, host?: Host}} context */
  render({ model, el, host }) {
    const rpc = makeRequester(model);
    const root = h("div", "labshelf-widget labshelf-tree");
    const bar = h("div", "ls-bar");
    const search = /** @type {HTMLInputElement} */ (h("input", "ls-search"));
    search.type = "search";
    search.placeholder = "Filter dataset names";
    search.setAttribute("aria-label", "Filter dataset names");
    bar.append(search);
    const error = h("div", "ls-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    const body = h("div", "ls-body");
    const scroll = h("div", "ls-scroll");
    const top = h("ul", "ls-children ls-top");
    top.setAttribute("role", "tree");
    scroll.append(top);
    const preview = h("div", "ls-preview");
    preview.setAttribute("aria-live", "polite");
    preview.append(h("div", "ls-hint", "Select a run or a dataset to preview it."));
    body.append(scroll, preview);
    root.append(bar, error, body);
    el.append(root);

    let term = "";
    // Bumped when the search changes: answers for an older listing are dropped.
    let generation = 0;
    let previewToken = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let searchTimer;
    /** @type {string[]} */
    let objectURLs = [];
    let closed = false;

    const { show: showError, clear: clearError } = errorLine(error, () => closed);

    /**
     * Ask for one page of a node's children and add it to ``container``; the nodes
     * in ``reopen`` (id -> children shown) open again with as many children.
     * @param {HTMLElement} container
     * @param {string} nodeId
     * @param {number} offset
     * @param {Map<string, number>} [reopen]
     * @param {number} [shown]  children shown before: ask for as many
     */
    async function loadPage(container, nodeId, offset, reopen, shown) {
      const asked = generation;
      const size = model.get("page_size");
      const { result } = await rpc.request("children", {
        node: nodeId,
        offset,
        limit: Math.min(MAX_PAGE, Math.max(size, shown || 0)),
        search: term,
      });
      if (asked !== generation || closed) return;
      const page = /** @type {Page} */ (result);
      const opened = [];
      for (const node of page.nodes) {
        const item = renderNode(node);
        container.append(item);
        if (node.expand || (reopen && reopen.has(node.id))) opened.push(item);
      }
      if (page.more) {
        const holder = h("li", "ls-more-item");
        const more = /** @type {HTMLButtonElement} */ (h("button", "ls-more", "more…"));
        more.type = "button";
        more.dataset.offset = String(offset + page.nodes.length);
        more.dataset.parent = nodeId;
        holder.append(more);
        container.append(holder);
      }
      clearError();
      await Promise.all(opened.map((item) => expand(item, reopen)));
    }

    /**
     * @param {TreeNode} node
     * @returns {HTMLElement}
     */
    function renderNode(node) {
      const item = h("li", `ls-node ls-kind-${node.kind}`);
      item.dataset.node = node.id;
      item.setAttribute("role", "treeitem");
      const row = h("div", "ls-row");
      if (node.expandable) {
        const toggle = h("span", "ls-toggle", "▸");
        toggle.setAttribute("role", "button");
        toggle.setAttribute("aria-label", `open ${node.name}`);
        toggle.tabIndex = 0;
        item.setAttribute("aria-expanded", "false");
        row.append(toggle);
      } else {
        row.append(h("span", "ls-spacer"));
      }
      const label = h("span", "ls-label");
      label.tabIndex = 0;
      label.title = node.description ? `${node.id}\n${node.description}` : node.id;
      label.append(h("span", "ls-name", node.name));
      // A described dataset: its title and unit beside its name.
      if (node.title) label.append(h("span", "ls-dtitle", node.title));
      if (node.unit) label.append(h("span", "ls-unit", `[${node.unit}]`));
      label.append(h("span", "ls-meta", node.meta));
      row.append(label);
      item.append(row);
      if (node.id === model.get("selected")) item.classList.add("ls-selected");
      return item;
    }

    /**
     * @param {HTMLElement} item
     * @param {Map<string, number>} [reopen]
     */
    async function expand(item, reopen) {
      if (item.classList.contains("ls-open")) return;
      item.classList.add("ls-open");
      item.setAttribute("aria-expanded", "true");
      const toggle = item.querySelector(":scope > .ls-row > .ls-toggle");
      if (toggle) toggle.textContent = "▾";
      const children = h("ul", "ls-children");
      children.setAttribute("role", "group");
      const loading = h("li", "ls-loading", "loading…");
      children.append(loading);
      item.append(children);
      try {
        const id = item.dataset.node || "";
        await loadPage(children, id, 0, reopen, reopen && reopen.get(id));
        if (!children.querySelector(":scope > [data-node]")) {
          children.append(h("li", "ls-empty", term ? "no matching datasets" : "(empty)"));
        }
      } catch (problem) {
        showError(problem);
        collapse(item);
      } finally {
        loading.remove();
      }
    }

    /** @param {HTMLElement} item */
    function collapse(item) {
      item.classList.remove("ls-open");
      item.setAttribute("aria-expanded", "false");
      const toggle = item.querySelector(":scope > .ls-row > .ls-toggle");
      if (toggle) toggle.textContent = "▸";
      item.querySelector(":scope > .ls-children")?.remove();
    }

    /** @param {HTMLElement} item */
    function select(item) {
      const id = item.dataset.node || "";
      markSelected(id);
      if (model.get("selected") === id) {
        loadPreview(id);
        return;
      }
      // The change event (onSelectedChange) loads the preview.
      model.set("selected", id);
      model.save_changes();
    }

    /** @param {string} id */
    function markSelected(id) {
      for (const old of root.querySelectorAll(".ls-selected")) {
        old.classList.remove("ls-selected");
        old.removeAttribute("aria-selected");
      }
      const item = id ? root.querySelector(`[data-node="${CSS.escape(id)}"]`) : null;
      if (item) {
        item.classList.add("ls-selected");
        item.setAttribute("aria-selected", "true");
      }
    }

    /** @param {string} id */
    async function loadPreview(id) {
      const token = ++previewToken;
      if (!id) {
        renderPreview(null, []);
        return;
      }
      preview.classList.add("ls-busy");
      try {
        const { result, buffers } = await rpc.request("preview", { node: id });
        if (token !== previewToken || closed) return;
        renderPreview(/** @type {Preview} */ (result), buffers);
        clearError();
      } catch (problem) {
        if (token === previewToken) showError(problem);
      } finally {
        if (token === previewToken) preview.classList.remove("ls-busy");
      }
    }

    function revokeURLs() {
      for (const url of objectURLs) URL.revokeObjectURL(url);
      objectURLs = [];
    }

    /**
     * @param {Preview | null} found
     * @param {DataView[]} buffers
     */
    function renderPreview(found, buffers) {
      revokeURLs();
      preview.replaceChildren();
      if (!found) {
        preview.append(h("div", "ls-hint", "Select a run or a dataset to preview it."));
        return;
      }
      preview.append(h("div", "ls-title", found.title));
      if (found.fields && found.fields.length) {
        const table = h("table", "ls-fields");
        for (const [key, value] of found.fields) {
          const row = h("tr");
          row.append(h("th", "", key), h("td", "", value));
          table.append(row);
        }
        preview.append(table);
      }
      if (found.note) preview.append(h("div", "ls-note", found.note));
      if (typeof found.image === "number" && buffers[found.image]) {
        const url = pngURL(buffers[found.image]);
        objectURLs.push(url);
        preview.append(renderPicture(found, url));
      }
      if (found.table) {
        const table = h("table", "ls-head");
        const names = h("tr");
        const dtypes = h("tr", "ls-dtypes");
        found.table.columns.forEach((name, i) => {
          names.append(h("th", "", name));
          dtypes.append(h("th", "", found.table?.dtypes[i] ?? ""));
        });
        const head = h("thead");
        head.append(names, dtypes);
        const rows = h("tbody");
        for (const cells of found.table.rows) {
          const row = h("tr");
          for (const cell of cells) row.append(h("td", "", cell));
          rows.append(row);
        }
        table.append(head, rows);
        const holder = h("div", "ls-table-scroll");
        holder.append(table);
        preview.append(holder);
      }
      if (found.text) preview.append(h("pre", "ls-values", found.text));
      if (found.code) {
        const codebar = h("div", "ls-codebar");
        const code = h("pre", "ls-code", found.code);
        const actions = h("div", "ls-code-actions");
        if (host && host.insert) {
          const insert = /** @type {HTMLButtonElement} */ (h("button", "ls-insert", "Insert into notebook"));
          insert.type = "button";
          insert.title = "Insert the code that loads this (with the shelf's opening lines) below the current notebook cell";
          insert.dataset.target = found.node;
          actions.append(insert);
        }
        const copy = /** @type {HTMLButtonElement} */ (h("button", "ls-copy", "copy"));
        copy.type = "button";
        copy.title = host && host.copy ? "Copy the code, with the shelf's opening lines" : "Copy the code";
        copy.dataset.target = found.node;
        actions.append(copy);
        codebar.append(code, actions);
        preview.append(codebar);
      }
    }

    /**
     * An image preview with its colour scale, and the value of the pixel under the
     * mouse (or clicked: it stays) read at full resolution from the data (request "pixel").
     * @param {Preview} found
     * @param {string} url
     */
    function renderPicture(found, url) {
      const figure = h("div", "ls-picture");
      const img = /** @type {HTMLImageElement} */ (h("img", "ls-thumbnail"));
      img.src = url;
      img.alt = found.title;
      img.draggable = false;
      figure.append(img);
      const picture = found.picture;
      if (!picture) return figure;
      const shape = picture.shape && picture.shape.length >= 2 ? picture.shape : [picture.height, picture.width];
      const [rows, columns] = shape;
      const colour = shape.length === 3;
      if (!colour && typeof picture.vmin === "number" && typeof picture.vmax === "number") {
        const scale = h("div", "ls-colorbar");
        scale.title = "colour scale of the shown values";
        const gradient = h("div", "ls-gradient");
        gradient.style.background = `linear-gradient(to right, ${ANCHORS.join(", ")})`;
        scale.append(
          h("span", "ls-scale-low", formatShown(picture.vmin, found.display)),
          gradient,
          h("span", "ls-scale-high", formatShown(picture.vmax, found.display)),
        );
        figure.append(scale);
      }
      const factor = picture.factor || 1;
      const hint = `${columns}×${rows}${colour ? " colour" : ""}` + (factor > 1 ? ` · shown at ${picture.width}×${picture.height}` : "");
      const pixel = h("div", "ls-pixel", `${hint} · point at the image for a pixel's value`);
      figure.append(pixel);
      /** @type {{x: number, y: number} | null} */
      let wanted = null;
      let asking = false;
      let pinned = false;

      /** @param {MouseEvent} event */
      const at = (event) => {
        const box = img.getBoundingClientRect();
        if (box.width === 0 || box.height === 0) return null;
        // Full-resolution pixel coordinates, whatever the shrink and the CSS scale.
        const x = Math.min(columns - 1, Math.max(0, Math.floor(((event.clientX - box.left) / box.width) * columns)));
        const y = Math.min(rows - 1, Math.max(0, Math.floor(((event.clientY - box.top) / box.height) * rows)));
        return { x, y };
      };
      const ask = async () => {
        if (asking || !wanted) return;
        asking = true;
        const { x, y } = wanted;
        wanted = null;
        try {
          const { result } = await rpc.request("pixel", { node: found.node, x, y });
          const answer = /** @type {Pixel} */ (result);
          if (!closed && figure.isConnected) {
            const value = answer.text ?? (Array.isArray(answer.value) ? `(${answer.value.map(formatValue).join(", ")})` : formatValue(answer.value));
            pixel.textContent = `x ${answer.x}, y ${answer.y}: ${value}`;
            pixel.dataset.x = String(answer.x);
            pixel.dataset.y = String(answer.y);
            pixel.dataset.value = JSON.stringify(answer.value);
          }
        } catch (problem) {
          if (!closed && figure.isConnected) pixel.textContent = problem instanceof Error ? problem.message : String(problem);
        } finally {
          asking = false;
        }
        if (wanted) ask(); // the mouse moved on meanwhile: the newest point only
      };
      img.addEventListener("mousemove", (event) => {
        if (pinned) return;
        wanted = at(event);
        ask();
      });
      img.addEventListener("click", (event) => {
        pinned = true; // the value stays until the mouse leaves the image
        figure.classList.add("ls-pinned");
        wanted = at(event);
        ask();
      });
      img.addEventListener("mouseleave", () => {
        pinned = false;
        figure.classList.remove("ls-pinned");
      });
      return figure;
    }

    /**
     * Copy the code: the clipboard API where the page may use it, else select
     * the text and try the older copy command (the user can press Ctrl+C).
     * @param {HTMLButtonElement} button
     */
    async function copyCode(button) {
      const code = button.parentElement?.querySelector(".ls-code");
      if (!code) return;
      const text = code.textContent || "";
      let copied = false;
      if (navigator.clipboard && window.isSecureContext) {
        try {
          await navigator.clipboard.writeText(text);
          copied = true;
        } catch {
          copied = false;
        }
      }
      if (!copied) {
        const range = document.createRange();
        range.selectNodeContents(code);
        const selection = window.getSelection();
        selection?.removeAllRanges();
        selection?.addRange(range);
        try {
          copied = document.execCommand("copy");
        } catch {
          copied = false;
        }
      }
      button.textContent = copied ? "copied" : "press Ctrl+C";
      setTimeout(() => {
        if (!closed) button.textContent = "copy";
      }, 1500);
    }

    /**
     * Run a host's action on the node a button is for; the button says how it went.
     * @param {HTMLButtonElement} button
     * @param {(node: string) => Promise<string>} action
     * @param {string} label
     */
    function hostAction(button, action, label) {
      button.disabled = true;
      action(button.dataset.target || "").then(
        (said) => {
          button.textContent = said.startsWith("Inserted") ? "inserted" : said;
          button.title = said;
          clearError();
        },
        (problem) => showError(problem),
      ).finally(() => {
        button.disabled = false;
        setTimeout(() => {
          if (!closed) button.textContent = label;
        }, 1500);
      });
    }

    /**
     * Look again at what the tree shows (the shelf changed): the same nodes open, with as
     * many children as were shown, swapped in at once so nothing jumps.
     */
    async function refresh() {
      if (closed) return;
      /** @type {Map<string, number>} */
      const reopen = new Map();
      for (const item of top.querySelectorAll(".ls-node.ls-open")) {
        const list = item.querySelector(":scope > .ls-children");
        reopen.set(/** @type {HTMLElement} */ (item).dataset.node || "", list ? list.querySelectorAll(":scope > [data-node]").length : 0);
      }
      const shown = top.querySelectorAll(":scope > [data-node]").length;
      generation += 1;
      const mine = generation;
      const fresh = h("ul");
      try {
        await loadPage(fresh, "", 0, reopen, shown);
      } catch (problem) {
        if (mine === generation) showError(problem);
        return;
      }
      if (mine !== generation || closed) return;
      const scrolled = scroll.scrollTop;
      top.replaceChildren(...fresh.childNodes);
      scroll.scrollTop = scrolled;
      markSelected(model.get("selected") || "");
      // A run's preview counts its datasets and says its status: show it afresh.
      const selected = model.get("selected") || "";
      if (/^run\/\d+$/.test(selected)) loadPreview(selected);
    }

    function reload() {
      generation += 1;
      const mine = generation;
      top.replaceChildren();
      loadPage(top, "", 0)
        .then(() => {
          if (mine === generation && !top.querySelector("[data-node]")) {
            top.append(h("li", "ls-empty", term ? "no run has a matching dataset" : "no runs yet"));
          }
        })
        .catch(showError);
    }

    /** @param {MouseEvent} event */
    function onClick(event) {
      const target = /** @type {HTMLElement} */ (event.target);
      const more = /** @type {HTMLButtonElement | null} */ (target.closest(".ls-more"));
      if (more) {
        more.disabled = true;
        const holder = more.parentElement;
        const container = /** @type {HTMLElement} */ (holder?.parentElement);
        loadPage(container, more.dataset.parent || "", Number(more.dataset.offset))
          .then(() => holder?.remove())
          .catch((problem) => {
            more.disabled = false;
            showError(problem);
          });
        return;
      }
      const copy = /** @type {HTMLButtonElement | null} */ (target.closest(".ls-copy"));
      if (copy) {
        if (host && host.copy) hostAction(copy, host.copy, "copy");
        else copyCode(copy);
        return;
      }
      const insert = /** @type {HTMLButtonElement | null} */ (target.closest(".ls-insert"));
      if (insert && host && host.insert) {
        hostAction(insert, host.insert, "Insert into notebook");
        return;
      }
      const item = /** @type {HTMLElement | null} */ (target.closest("[data-node]"));
      if (!item) return;
      if (target.closest(".ls-toggle")) {
        if (item.classList.contains("ls-open")) collapse(item);
        else expand(item);
      } else if (target.closest(".ls-label")) {
        select(item);
      }
    }

    /** @param {KeyboardEvent} event */
    function onKey(event) {
      const target = /** @type {HTMLElement} */ (event.target);
      const item = /** @type {HTMLElement | null} */ (target.closest("[data-node]"));
      if (!item || target === search) return;
      const open = item.classList.contains("ls-open");
      const expandable = item.querySelector(":scope > .ls-row > .ls-toggle") !== null;
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        if (target.classList.contains("ls-toggle")) {
          if (open) collapse(item);
          else expand(item);
        } else {
          select(item);
        }
      } else if (event.key === "ArrowRight" && expandable && !open) {
        expand(item);
      } else if (event.key === "ArrowLeft" && open) {
        collapse(item);
      }
    }

    function onSearchInput() {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(applySearch, SEARCH_DELAY_MS);
    }

    /** @param {KeyboardEvent} event */
    function onSearchKey(event) {
      if (event.key === "Enter") {
        clearTimeout(searchTimer);
        applySearch();
      }
    }

    function applySearch() {
      const value = search.value.trim();
      if (value === term) return;
      term = value;
      reload();
    }

    // A notebook may set tree.selected from Python: show that node's preview.
    function onSelectedChange() {
      const id = model.get("selected") || "";
      markSelected(id);
      loadPreview(id);
    }

    root.addEventListener("click", onClick);
    root.addEventListener("keydown", onKey);
    search.addEventListener("input", onSearchInput);
    search.addEventListener("keydown", onSearchKey);
    model.on("change:selected", onSelectedChange);
    // A host may point the tree at another run (scope), or say the shelf changed (version).
    const onScope = () => reload();
    const onVersion = () => refresh();
    model.on("change:scope", onScope);
    model.on("change:version", onVersion);

    reload();
    if (model.get("selected")) loadPreview(model.get("selected"));

    return () => {
      closed = true;
      clearTimeout(searchTimer);
      model.off("change:selected", onSelectedChange);
      model.off("change:scope", onScope);
      model.off("change:version", onVersion);
      rpc.close();
      revokeURLs();
      root.remove();
    };
  },
};
