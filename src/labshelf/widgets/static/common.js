// Helpers the widgets share: elements, numbers, the colour map, pixel buffers.
// Put in front of each widget's own ESM by Python (widgets/_base.py esm()), like rpc.js.

// The colour map: viridis' colours at 0, 1/8, ..., 1, linear in between.
// labshelf/widgets/_images.py holds the same list for pictures made in Python.
const ANCHORS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];

/** @returns {Uint8ClampedArray} 256 RGB triplets */
function colorTable() {
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
function h(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** @param {number | null | undefined} value */
function formatValue(value) {
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
function pixelValues(buffer, picture) {
  const bytes = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  if (picture.dtype === "uint16") return new Uint16Array(bytes);
  if (picture.dtype === "float32") return new Float32Array(bytes);
  return new Uint8ClampedArray(bytes);
}
