// Requests from a labshelf widget's view to its Python object (see widgets/_base.py).
// A module of its own for the Shelves panel's bundler; for a notebook widget Python puts it in
// front of the widget's ESM instead (widgets/_base.py esm() drops the import lines).

/**
 * @param {any} model  the anywidget model
 * @returns {{request: (method: string, params?: object) => Promise<{result: any, buffers: DataView[]}>, close: () => void}}
 */
export function makeRequester(model) {
  // Several views of one widget share the model: ids carry a per-view prefix.
  const prefix = Math.random().toString(36).slice(2);
  let next = 0;
  /** @type {Map<string, {resolve: Function, reject: Function}>} */
  const pending = new Map();
  /** @param {any} msg @param {DataView[]} buffers */
  const onMessage = (msg, buffers) => {
    if (!msg || typeof msg.id !== "string" || !pending.has(msg.id)) return;
    const waiter = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error !== undefined) waiter.reject(new Error(msg.error));
    else waiter.resolve({ result: msg.result, buffers: buffers || [] });
  };
  model.on("msg:custom", onMessage);
  return {
    request(method, params = {}) {
      const id = `${prefix}-${++next}`;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        model.send({ id, method, params });
      });
    },
    close() {
      model.off("msg:custom", onMessage);
      for (const waiter of pending.values()) waiter.reject(new Error("view closed"));
      pending.clear();
    },
  };
}

/** A PNG buffer from Python as an object URL for an <img> (revoke it when the image goes). */
export function pngURL(/** @type {DataView} */ buffer) {
  return URL.createObjectURL(new Blob([buffer], { type: "image/png" }));
}
