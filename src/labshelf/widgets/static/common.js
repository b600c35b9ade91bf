// Helpers the widgets share: elements, numbers, the colour map, pixel buffers.
// A module for the Shelves panel's bundler; put in front of each widget's own ESM by Python
// (widgets/_base.py esm()), like rpc.js.

// The colour map: viridis' colours at 0, 1/8, ..., 1, linear in between.
// labshelf/browse/pictures.py holds the same list for pictures made in Python.
export const ANCHORS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];

/** @returns {Uint8ClampedArray} 256 RGB triplets */
export function colorTable() {
  const anchors = ANCHORS.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const where = (i / 255) * (anchors.length - 1);
    const low = Math.min(Math.floor(where), anchors.length - 2);
    const t = where - low;
    for (let k = 0; k < 3; k++) {
      table[i * 3 + k] = Math.round(anchors[low][k] * (1 - t) + anchors[low + 1][k] * t);
    }
  }
  return table;
}

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElement}
 */
export function h(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** @param {number | null | undefined} value */
export function formatValue(value) {
  if (value === null || value === undefined) return "–";
  if (Number.isNaN(value)) return "NaN";
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(5)));
}

/**
 * The pixel values of a picture, copied out of the message buffer (whose
 * offset may not be aligned for 2- or 4-byte values).
 * @param {DataView} buffer
 * @param {{dtype: string}} picture
 * @returns {Uint16Array | Float32Array | Uint8ClampedArray}
 */
export function pixelValues(buffer, picture) {
  const bytes = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  if (picture.dtype === "uint16") return new Uint16Array(bytes);
  if (picture.dtype === "float32") return new Float32Array(bytes);
  return new Uint8ClampedArray(bytes);
}

/**
 * Paint pixel values on a canvas through the colour table (``vmin``..``vmax``
 * map to its ends; NaN stays transparent; "rgba8" values are colours already).
 * @param {HTMLCanvasElement} canvas
 * @param {{width: number, height: number, dtype: string, vmin: number, vmax: number}} picture
 * @param {ArrayLike<number>} values
 * @param {Uint8ClampedArray} table  from colorTable()
 */
export function paintPixels(canvas, picture, values, table) {
  const { width, height } = picture;
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const context = canvas.getContext("2d");
  if (!context) return;
  const image = context.createImageData(width, height);
  const rgba = image.data;
  if (picture.dtype === "rgba8") {
    rgba.set(values);
  } else {
    const low = picture.vmin;
    const scale = 255 / (picture.vmax - picture.vmin || 1);
    for (let i = 0, n = width * height; i < n; i++) {
      const value = values[i];
      if (Number.isNaN(value)) continue; // left transparent: a hole in the data shows as one
      const index = Math.max(0, Math.min(255, Math.round((value - low) * scale))) * 3;
      rgba[i * 4] = table[index];
      rgba[i * 4 + 1] = table[index + 1];
      rgba[i * 4 + 2] = table[index + 2];
      rgba[i * 4 + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
}

/**
 * The one-line error element of a widget: ``show(problem)`` and ``clear()``.
 * A request cut short because the view closed is not an error to show.
 * @param {HTMLElement} element
 * @param {() => boolean} isClosed
 */
export function errorLine(element, isClosed) {
  return {
    /** @param {unknown} problem */
    show(problem) {
      if (isClosed()) return;
      const message = problem instanceof Error ? problem.message : String(problem);
      if (message === "view closed") return;
      element.textContent = message;
      element.hidden = false;
    },
    clear() {
      element.textContent = "";
      element.hidden = true;
    },
  };
}

/**
 * @typedef {{unit?: string, scale?: number, precision?: number, title?: string, description?: string}} Display
 *   A dataset's display metadata, as browse and the widgets send them (only the fields said).
 */

/**
 * Python's ``format(x, ".<digits>g")``: ``digits`` significant digits, trailing zeros dropped,
 * an exponent (two digits at least) below 1e-4 and from 10**digits on.  (An exact tie in the last
 * digit of a number written with an exponent, such as 1234565 to 6 digits, rounds away from
 * zero here and to even in Python: rare enough to leave.)
 * @param {number} value
 * @param {number} digits
 */
export function formatGeneral(value, digits) {
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const [mantissa, power] = value.toExponential(digits - 1).split("e");
  const exponent = Number(power);
  if (exponent < -4 || exponent >= digits) {
    const sign = exponent < 0 ? "-" : "+";
    return `${dropTrailingZeros(mantissa)}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  return dropTrailingZeros(fixedDigits(value, Math.max(0, digits - 1 - exponent)));
}

/**
 * Python's ``format(x, ".<digits>f")``.  toFixed differs in two ways: it rounds an exact tie
 * (0.5, 2.25) away from zero where Python rounds it to even, and it writes an exponent from
 * 1e21 on (a float that large is a whole number, which BigInt writes exactly).
 * @param {number} value
 * @param {number} digits
 */
function fixedDigits(value, digits) {
  if (Math.abs(value) >= 1e21) return `${BigInt(value)}${digits ? "." + "0".repeat(digits) : ""}`;
  const rounded = value.toFixed(digits);
  const exact = value.toFixed(100); // every digit of a double below 1e21 that matters for a tie
  const point = exact.indexOf(".");
  if (!/^50*$/.test(exact.slice(point + 1 + digits))) return rounded;
  const truncated = exact.slice(0, digits ? point + 1 + digits : point);
  return Number(truncated[truncated.length - 1]) % 2 === 0 ? truncated : rounded;
}

/** @param {string} text */
function dropTrailingZeros(text) {
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

/**
 * A value as a dataset's display metadata show it: the rule of DisplayMeta.format in Python
 * (labshelf/registry/meta.py): divided by ``scale``, ``precision`` digits after the point,
 * else whole numbers whole and others with 6 significant digits; the unit after it when
 * ``withUnit``.  Without display metadata, formatValue's short form.
 * @param {number | null | undefined} value
 * @param {Display | null | undefined} display
 * @param {boolean} [withUnit]
 */
export function formatShown(value, display, withUnit = true) {
  if (!display || (display.scale == null && display.precision == null && !display.unit)) return formatValue(value);
  if (value === null || value === undefined) return "–";
  // A scale of 0 or not finite cannot come from a registry (checked there): shown unscaled.
  const scaled = typeof display.scale === "number" && Number.isFinite(display.scale) && display.scale !== 0 && display.scale !== 1;
  const shown = scaled ? value / /** @type {number} */ (display.scale) : value;
  let text;
  if (Number.isNaN(shown)) text = "nan";
  else if (!Number.isFinite(shown)) text = shown > 0 ? "inf" : "-inf";
  else if (display.precision != null) text = fixedDigits(shown, display.precision);
  else if (!scaled && Number.isInteger(shown)) text = String(shown);
  else text = formatGeneral(shown, 6);
  return withUnit && display.unit ? `${text} ${display.unit}` : text;
}
