// Live views (Python side: labshelf/widgets/live.py).  LiveImage and BigNumber
// share this ESM; the model's `view` trait says which one to draw.
// Selectors used by the browser tests:
//   .labshelf-liveimage: .ls-title, .ls-run, .ls-frames ("frame N"), .ls-fps,
//     .ls-status, canvas, .ls-colorbar, .ls-scale-low, .ls-scale-high, .ls-pixel
//   .labshelf-bignumber: .ls-name, .ls-value, .ls-unit, .ls-updated, .ls-status

import { makeRequester } from "./rpc.js";
import { ANCHORS, colorTable, formatShown, h, paintPixels, pixelValues } from "./common.js";

/**
 * @typedef {{shape: number[], factor: number, width: number, height: number,
 *            dtype: "uint16" | "float32" | "rgba8", min: number | null, max: number | null,
 *            vmin: number, vmax: number, frame: number, run: number, time: number,
 *            title: string, approx: boolean}} Frame
 */

/** Frames per second are counted over this many milliseconds of drawing. */
const FPS_WINDOW = 2000;

/** @param {number} seconds  epoch seconds */
function clockTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

/** @param {number} seconds */
function ago(seconds) {
  if (seconds < 1) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

/**
 * @param {any} model
 * @param {HTMLElement} root
 * @returns {() => void}  stops following the trait
 */
function statusLine(model, root) {
  const status = h("div", "ls-status");
  status.setAttribute("role", "status");
  const show = () => {
    const text = model.get("status");
    status.textContent = text;
    status.hidden = !text;
  };
  show();
  model.on("change:status", show);
  root.append(status);
  return () => model.off("change:status", show);
}

// -- LiveImage ------------------------------------------------------------------------------------

/**
 * @param {any} model
 * @param {HTMLElement} el
 */
function renderImage(model, el) {
  const rpc = makeRequester(model);
  const table = colorTable();
  const root = h("div", "labshelf-widget labshelf-liveimage");
  const bar = h("div", "ls-bar");
  const title = h("span", "ls-title", model.get("name"));
  const run = h("span", "ls-run", "");
  const frames = h("span", "ls-frames", "frame 0");
  const fps = h("span", "ls-fps", "0 frames/s");
  bar.append(title, run, frames, fps);
  root.append(bar);
  const stopStatus = statusLine(model, root);
  const stage = h("div", "ls-stage");
  const canvas = /** @type {HTMLCanvasElement} */ (h("canvas"));
  canvas.width = 1;
  canvas.height = 1;
  stage.append(canvas);
  const foot = h("div", "ls-foot");
  const colorbar = h("div", "ls-colorbar");
  const gradient = h("div", "ls-gradient");
  gradient.style.background = `linear-gradient(to right, ${ANCHORS.join(", ")})`;
  const scaleLow = h("span", "ls-scale-low", "–");
  const scaleHigh = h("span", "ls-scale-high", "–");
  colorbar.append(scaleLow, gradient, scaleHigh);
  colorbar.title = "colour scale of the frame shown";
  const pixel = h("div", "ls-pixel");
  foot.append(colorbar, pixel);
  root.append(stage, foot);
  el.append(root);

  let closed = false;
  /** @type {{frame: Frame, values: Uint16Array | Float32Array | Uint8ClampedArray} | null} */
  let shown = null;
  /** @type {{frame: Frame, buffer: DataView} | null} */
  let newest = null;
  let unanswered = 0;
  let scheduled = false;
  /** @type {number[]} */
  const drawnAt = [];
  /** @type {{x: number, y: number} | null} */
  let mouse = null;

  /**
   * @param {Frame} frame
   * @param {Uint16Array | Float32Array | Uint8ClampedArray} values
   */
  function draw(frame, values) {
    shown = { frame, values };
    const { width, height } = frame;
    paintPixels(canvas, frame, values, table);
    // As large as fits, small previews scaled up with sharp pixels.
    const room = Math.max(64, (root.clientWidth || 600) - 16);
    const cssScale = Math.min(room / width, 400 / height, 8);
    canvas.style.width = `${Math.round(width * cssScale)}px`;
    canvas.style.height = `${Math.round(height * cssScale)}px`;
    const [rows, columns] = frame.shape;
    const display = model.get("display") || {};
    title.textContent = model.get("name") + (display.unit ? ` [${display.unit}]` : "");
    title.title = `${columns}×${rows}` + (frame.factor > 1 ? `, shown as the mean of ${frame.factor}×${frame.factor} blocks` : "") +
      (display.description ? `\n${display.description}` : "");
    run.textContent = `run ${frame.run}`;
    frames.textContent = `frame ${frame.frame}`;
    colorbar.hidden = frame.dtype === "rgba8";
    // The image's display metadata format the colour scale and pixels as Python formats values.
    scaleLow.textContent = formatShown(frame.vmin, display);
    scaleHigh.textContent = formatShown(frame.vmax, display);
    if (mouse) describePixel(mouse.x, mouse.y);
  }

  function drawNewest() {
    scheduled = false;
    if (closed || !newest) return;
    const { frame, buffer } = newest;
    newest = null;
    draw(frame, pixelValues(buffer, frame));
    const now = performance.now();
    drawnAt.push(now);
    while (drawnAt.length && drawnAt[0] < now - FPS_WINDOW) drawnAt.shift();
    showRate();
    // One answer per frame received, drawn or skipped: Python sends more as answers come.
    for (; unanswered > 0; unanswered--) model.send({ type: "drawn" });
  }

  function showRate() {
    const now = performance.now();
    while (drawnAt.length && drawnAt[0] < now - FPS_WINDOW) drawnAt.shift();
    const rate = drawnAt.length / (FPS_WINDOW / 1000);
    fps.textContent = `${rate.toFixed(rate >= 10 || rate === 0 ? 0 : 1)} frames/s`;
  }

  /**
   * @param {any} msg
   * @param {DataView[]} buffers
   */
  function onMessage(msg, buffers) {
    if (!msg || msg.type !== "frame" || !buffers || !buffers[0]) return;
    newest = { frame: msg.frame, buffer: buffers[0] };
    unanswered += 1;
    if (!scheduled) {
      scheduled = true;
      // Several frames within one screen refresh: only the newest is drawn.
      requestAnimationFrame(drawNewest);
    }
  }

  /**
   * @param {number} clientX
   * @param {number} clientY
   */
  function describePixel(clientX, clientY) {
    if (!shown) return;
    const { frame, values } = shown;
    const box = canvas.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) return;
    const [rows, columns] = frame.shape;
    // Coordinates in the full frame, whatever the preview's block size and the CSS scale.
    const x = Math.min(columns - 1, Math.max(0, Math.floor(((clientX - box.left) / box.width) * columns)));
    const y = Math.min(rows - 1, Math.max(0, Math.floor(((clientY - box.top) / box.height) * rows)));
    const column = Math.min(frame.width - 1, Math.floor(x / frame.factor));
    const row = Math.min(frame.height - 1, Math.floor(y / frame.factor));
    const at = row * frame.width + column;
    let text;
    if (frame.dtype === "rgba8") {
      const channels = Array.from(values.slice(at * 4, at * 4 + (frame.shape[2] === 4 ? 4 : 3)));
      text = `(${channels.join(", ")})`;
    } else {
      text = formatShown(values[at], model.get("display"));
    }
    pixel.textContent = `${x}, ${y}: ${frame.approx ? "≈ " : ""}${text}`;
  }

  /** @param {MouseEvent} event */
  function onHover(event) {
    mouse = { x: event.clientX, y: event.clientY };
    describePixel(event.clientX, event.clientY);
  }

  function onLeave() {
    mouse = null;
    pixel.textContent = "";
  }

  // New display metadata: the frame shown is labelled and its scale formatted again.
  const redraw = () => {
    if (shown) draw(shown.frame, shown.values);
    else title.textContent = model.get("name");
  };
  model.on("change:display", redraw);
  model.on("change:name", redraw);
  model.on("msg:custom", onMessage);
  canvas.addEventListener("mousemove", onHover);
  canvas.addEventListener("mouseleave", onLeave);
  const ticker = setInterval(showRate, 500);

  // A view opened after frames arrived starts with the newest one.
  rpc.request("last").then(
    ({ result, buffers }) => {
      if (closed || shown || newest || !result || !buffers[0]) return;
      draw(result, pixelValues(buffers[0], result));
    },
    () => {},
  );

  return () => {
    closed = true;
    clearInterval(ticker);
    stopStatus();
    model.off("change:display", redraw);
    model.off("change:name", redraw);
    model.off("msg:custom", onMessage);
    for (; unanswered > 0; unanswered--) model.send({ type: "drawn" });
    rpc.close();
    root.remove();
  };
}

// -- BigNumber ---------------------------------------------------------------------------------------

/**
 * @param {any} model
 * @param {HTMLElement} el
 */
function renderNumber(model, el) {
  const root = h("div", "labshelf-widget labshelf-bignumber");
  const name = h("div", "ls-name");
  const main = h("div", "ls-main");
  const value = h("span", "ls-value");
  const unit = h("span", "ls-unit");
  main.append(value, unit);
  const updated = h("div", "ls-updated");
  root.append(name, main, updated);
  const stopStatus = statusLine(model, root);
  el.append(root);

  function showName() {
    const run = model.get("run");
    name.textContent = model.get("name") + (run ? ` · run ${run}` : "");
    name.title = model.get("description") || "";
  }

  function showValue() {
    value.textContent = model.get("text");
    value.title = model.get("text");
    // Restart the flash that says "this just changed".
    value.classList.remove("ls-flash");
    void value.offsetWidth;
    value.classList.add("ls-flash");
  }

  function showUnit() {
    unit.textContent = model.get("unit");
    unit.hidden = !model.get("unit");
  }

  function showUpdated() {
    const when = model.get("updated");
    if (!when) {
      updated.textContent = "no value yet";
      return;
    }
    updated.textContent = `updated ${clockTime(when)} · ${ago(Date.now() / 1000 - when)}`;
    updated.title = new Date(when * 1000).toISOString();
  }

  showName();
  value.textContent = model.get("text");
  showUnit();
  showUpdated();
  model.on("change:run", showName);
  model.on("change:name", showName);
  model.on("change:description", showName);
  model.on("change:text", showValue);
  model.on("change:unit", showUnit);
  model.on("change:updated", showUpdated);
  const ticker = setInterval(showUpdated, 1000);

  return () => {
    clearInterval(ticker);
    stopStatus();
    model.off("change:run", showName);
    model.off("change:name", showName);
    model.off("change:description", showName);
    model.off("change:text", showValue);
    model.off("change:unit", showUnit);
    model.off("change:updated", showUpdated);
    root.remove();
  };
}

export default {
  /** @param {{model: any, el: HTMLElement}} context */
  render({ model, el }) {
    return model.get("view") === "image" ? renderImage(model, el) : renderNumber(model, el);
  },
};
