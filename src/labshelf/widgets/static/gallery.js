// Gallery view (Python side: labshelf/widgets/gallery.py).
// Tiles come a page at a time while the grid scrolls; a click opens the
// viewer, which asks Python for the image shrunk to the screen and draws the
// raw values with a colour map.  Selectors used by the browser tests:
// .labshelf-gallery, .ls-tile[data-run], .ls-caption, .ls-scroll, .ls-viewer,
// .ls-viewer canvas, .ls-colorbar, .ls-pixel, button.ls-close, .ls-error.

import { makeRequester, pngURL } from "./rpc.js";
import { ANCHORS, colorTable, errorLine, formatShown, h, paintPixels, pixelValues } from "./common.js";

/**
 * @typedef {{run: number, caption: string, image: number | null}} Tile
 * @typedef {{tiles: Tile[], more: boolean, total: number}} TilePage
 * @typedef {{run: number, title: string, caption: string, shape: number[], factor: number,
 *            width: number, height: number, dtype: "uint16" | "float32" | "rgba8",
 *            min: number | null, max: number | null, vmin: number, vmax: number}} Picture
 */

/** How far below the visible grid (pixels) the next page starts loading. */
const PRELOAD_MARGIN = 400;

export default {
  /** @param {{model: any, el: HTMLElement}} context */
  render({ model, el }) {
    const rpc = makeRequester(model);
    const table = colorTable();
    const root = h("div", "labshelf-widget labshelf-gallery");
    const bar = h("div", "ls-bar");
    /** @type {import("./common.js").Display} */
    const display = model.get("display") || {};
    const heading = h("span", "ls-title", model.get("title") || model.get("name"));
    // A described image: its name and description in the tooltip, its unit after the title.
    heading.title = [model.get("name"), display.description].filter(Boolean).join("\n");
    if (display.unit) heading.append(h("span", "ls-unit", ` [${display.unit}]`));
    bar.append(heading, h("span", "ls-count", `${model.get("count")} runs`));
    const error = h("div", "ls-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    const scroll = h("div", "ls-scroll");
    const grid = h("div", "ls-grid");
    const sentinel = h("div", "ls-sentinel");
    scroll.append(grid, sentinel);

    const viewer = h("div", "ls-viewer");
    viewer.hidden = true;
    viewer.setAttribute("role", "dialog");
    const viewerBar = h("div", "ls-viewer-bar");
    const viewerTitle = h("span", "ls-viewer-title");
    const viewerNote = h("span", "ls-viewer-note");
    const close = /** @type {HTMLButtonElement} */ (h("button", "ls-close", "×"));
    close.type = "button";
    close.title = "Close (Esc)";
    close.setAttribute("aria-label", "close");
    viewerBar.append(viewerTitle, viewerNote, close);
    const stage = h("div", "ls-stage");
    const canvas = /** @type {HTMLCanvasElement} */ (h("canvas"));
    stage.append(canvas);
    const foot = h("div", "ls-viewer-foot");
    const colorbar = h("div", "ls-colorbar");
    const gradient = h("div", "ls-gradient");
    gradient.style.background = `linear-gradient(to right, ${ANCHORS.join(", ")})`;
    const scaleLow = h("span", "ls-scale-low");
    const scaleHigh = h("span", "ls-scale-high");
    colorbar.append(scaleLow, gradient, scaleHigh);
    const pixel = h("div", "ls-pixel");
    foot.append(colorbar, pixel);
    viewer.append(viewerBar, stage, foot);

    root.append(bar, error, scroll, viewer);
    el.append(root);

    let loaded = 0;
    let more = true;
    let loading = false;
    let closed = false;
    let viewToken = 0;
    /** @type {string[]} */
    const objectURLs = [];
    /** @type {{picture: Picture, values: Uint16Array | Float32Array | Uint8ClampedArray} | null} */
    let shown = null;
    let savedScroll = 0;

    const { show: showError, clear: clearError } = errorLine(error, () => closed);

    async function loadNext() {
      if (loading || !more || closed) return;
      loading = true;
      try {
        const { result, buffers } = await rpc.request("page", { offset: loaded, limit: model.get("page_size") });
        if (closed) return;
        const page = /** @type {TilePage} */ (result);
        for (const tile of page.tiles) grid.append(renderTile(tile, buffers));
        loaded += page.tiles.length;
        more = page.more && page.tiles.length > 0;
        if (!more && loaded === 0) grid.append(h("div", "ls-empty", "no run has this image"));
        clearError();
      } catch (problem) {
        showError(problem);
        more = false;
      } finally {
        loading = false;
      }
      // The observer only reports changes: if the sentinel is still in
      // reach (a tall screen, a short page), go on at once.
      if (more && !closed && sentinelInReach()) loadNext();
    }

    function sentinelInReach() {
      if (scroll.hidden) return false;
      const box = scroll.getBoundingClientRect();
      return sentinel.getBoundingClientRect().top <= box.bottom + PRELOAD_MARGIN;
    }

    /**
     * @param {Tile} tile
     * @param {DataView[]} buffers
     */
    function renderTile(tile, buffers) {
      const figure = h("figure", "ls-tile");
      figure.dataset.run = String(tile.run);
      figure.tabIndex = 0;
      figure.setAttribute("role", "button");
      figure.title = `${tile.caption} (click to open)`;
      const img = /** @type {HTMLImageElement} */ (h("img"));
      img.alt = `run ${tile.run}`;
      img.loading = "lazy";
      if (tile.image !== null && buffers[tile.image]) {
        const url = pngURL(buffers[tile.image]);
        objectURLs.push(url);
        img.src = url;
      } else {
        img.classList.add("ls-missing");
      }
      figure.append(img, h("figcaption", "ls-caption", tile.caption));
      return figure;
    }

    /** @param {number} run */
    async function openViewer(run) {
      const token = ++viewToken;
      savedScroll = scroll.scrollTop;
      viewer.hidden = false;
      scroll.hidden = true;
      viewerTitle.textContent = `run ${run}`;
      viewerNote.textContent = "loading…";
      pixel.textContent = "";
      shown = null;
      const ratio = window.devicePixelRatio || 1;
      const width = Math.max(64, Math.round((root.clientWidth - 16) * ratio));
      const height = Math.max(64, Math.round(Math.min(window.innerHeight * 0.7, 800) * ratio));
      try {
        const { result, buffers } = await rpc.request("image", { run, width, height });
        if (token !== viewToken || closed) return;
        const picture = /** @type {Picture} */ (result);
        draw(picture, pixelValues(buffers[0], picture), ratio);
        clearError();
      } catch (problem) {
        if (token === viewToken) {
          viewerNote.textContent = "";
          showError(problem);
        }
      }
    }

    /**
     * @param {Picture} picture
     * @param {Uint16Array | Float32Array | Uint8ClampedArray} values
     * @param {number} ratio  device pixels per CSS pixel
     */
    function draw(picture, values, ratio) {
      shown = { picture, values };
      const { width, height } = picture;
      paintPixels(canvas, picture, values, table);
      // Shown as large as fits (small images scaled up, pixels kept sharp).
      const room = Math.max(64, root.clientWidth - 16);
      const roomHeight = Math.min(window.innerHeight * 0.7, 800);
      const cssScale = Math.min(room / (width / ratio), roomHeight / (height / ratio), 8);
      canvas.style.width = `${Math.round((width / ratio) * cssScale)}px`;
      canvas.style.height = `${Math.round((height / ratio) * cssScale)}px`;
      const [rows, columns] = picture.shape;
      const kind = picture.shape.length === 3 ? "colour" : "";
      viewerTitle.textContent = picture.title;
      viewerNote.textContent =
        `${columns}×${rows}${kind ? " " + kind : ""}` +
        (picture.factor > 1 ? ` · shown at ${width}×${height} (mean of ${picture.factor}×${picture.factor} blocks)` : "") +
        ` · min ${formatShown(picture.min, display)} · max ${formatShown(picture.max, display)}`;
      colorbar.hidden = picture.dtype === "rgba8";
      scaleLow.textContent = formatShown(picture.vmin, display);
      scaleHigh.textContent = formatShown(picture.vmax, display);
      colorbar.title = "colour scale: 0.5th to 99.5th percentile of the shown values";
    }

    /** @param {MouseEvent} event */
    function onHover(event) {
      if (!shown) return;
      const { picture, values } = shown;
      const box = canvas.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) return;
      const [rows, columns] = picture.shape;
      // Original pixel coordinates, whatever the shrink and the CSS scale.
      const x = Math.min(columns - 1, Math.max(0, Math.floor(((event.clientX - box.left) / box.width) * columns)));
      const y = Math.min(rows - 1, Math.max(0, Math.floor(((event.clientY - box.top) / box.height) * rows)));
      const column = Math.min(picture.width - 1, Math.floor(x / picture.factor));
      const row = Math.min(picture.height - 1, Math.floor(y / picture.factor));
      const at = row * picture.width + column;
      const approx = picture.factor > 1 ? "≈ " : "";
      let text;
      if (picture.dtype === "rgba8") {
        const channels = Array.from(values.slice(at * 4, at * 4 + (picture.shape[2] === 4 ? 4 : 3)));
        text = `(${channels.join(", ")})`;
      } else {
        text = formatShown(values[at], display);
      }
      pixel.textContent = `${x}, ${y}: ${approx}${text}`;
    }

    function closeViewer() {
      viewToken += 1;
      viewer.hidden = true;
      scroll.hidden = false;
      scroll.scrollTop = savedScroll;
      shown = null;
      pixel.textContent = "";
      if (more && sentinelInReach()) loadNext();
    }

    /** @param {MouseEvent} event */
    function onClick(event) {
      const target = /** @type {HTMLElement} */ (event.target);
      if (target.closest(".ls-close")) {
        closeViewer();
        return;
      }
      const tile = /** @type {HTMLElement | null} */ (target.closest(".ls-tile"));
      if (tile && tile.dataset.run) openViewer(Number(tile.dataset.run));
    }

    /** @param {KeyboardEvent} event */
    function onKey(event) {
      if (event.key === "Escape" && !viewer.hidden) {
        closeViewer();
        return;
      }
      const target = /** @type {HTMLElement} */ (event.target);
      if ((event.key === "Enter" || event.key === " ") && target.classList.contains("ls-tile")) {
        event.preventDefault();
        openViewer(Number(target.dataset.run));
      }
    }

    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) loadNext();
      },
      { root: scroll, rootMargin: `0px 0px ${PRELOAD_MARGIN}px 0px` },
    );
    observer.observe(sentinel);

    root.addEventListener("click", onClick);
    root.addEventListener("keydown", onKey);
    canvas.addEventListener("mousemove", onHover);
    canvas.addEventListener("mouseleave", () => {
      pixel.textContent = "";
    });

    loadNext();

    return () => {
      closed = true;
      observer.disconnect();
      rpc.close();
      for (const url of objectURLs) URL.revokeObjectURL(url);
      root.remove();
    };
  },
};
