// A model for the notebook widgets' views (widgets/static/table.js, tree.js) without a kernel.
//
// The views were written against anywidget's model: get/set/on/off/save_changes and custom
// messages carrying requests ({id, method, params}) answered with {id, result} or {id, error}
// plus binary buffers (widgets/static/rpc.js).  In a notebook, Python keeps the state and
// answers the requests; here a subclass does, over the labshelf REST API.  The views cannot
// tell the difference, so the panel and the widgets share one table and one tree.

type Handler = (...args: any[]) => void;

/** What a request is answered with: a JSON result and the binary buffers it refers to. */
export interface IAnswer {
  result: unknown;
  buffers?: DataView[];
}

/** Backbone's equality, near enough for JSON values. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return false;
  }
  return JSON.stringify(a) === JSON.stringify(b);
}

export abstract class RestModel<S extends object> {
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly dirty = new Set<keyof S>();
  private disposed = false;

  constructor(protected state: S) {}

  get<K extends keyof S>(name: K): S[K] {
    return this.state[name];
  }

  /** Set a trait; listeners hear ``change:<name>`` at once, the subclass at save_changes(). */
  set<K extends keyof S>(name: K, value: S[K]): void {
    if (same(this.state[name], value)) {
      return;
    }
    this.state[name] = value;
    this.dirty.add(name);
    this.emit(`change:${String(name)}`, value);
  }

  /** Set traits as the owner (the "Python side"): listeners hear it, save_changes() does not. */
  protected update(values: Partial<S>): void {
    for (const [name, value] of Object.entries(values) as [keyof S, S[keyof S]][]) {
      if (!same(this.state[name], value)) {
        this.state[name] = value;
        this.emit(`change:${String(name)}`, value);
      }
    }
  }

  save_changes(): void {
    if (this.dirty.size === 0) {
      return;
    }
    const names = [...this.dirty];
    this.dirty.clear();
    this.apply(names);
  }

  on(name: string, handler: Handler): void {
    let set = this.handlers.get(name);
    if (!set) {
      set = new Set();
      this.handlers.set(name, set);
    }
    set.add(handler);
  }

  off(name?: string, handler?: Handler): void {
    if (name === undefined) {
      this.handlers.clear();
    } else if (handler === undefined) {
      this.handlers.delete(name);
    } else {
      this.handlers.get(name)?.delete(handler);
    }
  }

  /** A request from a view: answered by ``answer`` as a custom message, like Python would. */
  send(message: unknown): void {
    const msg = message as { id?: unknown; method?: unknown; params?: unknown };
    if (!msg || typeof msg.id !== 'string' || typeof msg.method !== 'string') {
      return;
    }
    const id = msg.id;
    const params = (msg.params && typeof msg.params === 'object' ? msg.params : {}) as Record<string, unknown>;
    this.answer(msg.method, params).then(
      ({ result, buffers }) => this.emit('msg:custom', { id, result }, buffers ?? []),
      problem => this.emit('msg:custom', { id, error: problem instanceof Error ? problem.message : String(problem) }, [])
    );
  }

  dispose(): void {
    this.disposed = true;
    this.handlers.clear();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  protected emit(name: string, ...args: unknown[]): void {
    for (const handler of [...(this.handlers.get(name) ?? [])]) {
      handler(...args);
    }
  }

  /** The traits a view changed and saved: act on them (the Python side's observers). */
  protected abstract apply(names: (keyof S)[]): void;

  /** Answer one request of a view (the Python side's rpc_<method>). */
  protected abstract answer(method: string, params: Record<string, unknown>): Promise<IAnswer>;
}

/** Base64 (as the REST API sends thumbnails) as a DataView (as the views take PNG buffers). */
export function base64Bytes(text: string): DataView {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return new DataView(bytes.buffer);
}
