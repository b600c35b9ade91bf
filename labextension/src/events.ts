// One WebSocket to labshelf.server's events endpoint for every shelf the panel has open.
//
// The server streams the shelves' change feeds ({shelf, kind, run, name?, version}); views
// listen per shelf and look again at what they show.  The socket opens with the first
// listener, is opened again (for the new set of shelves) when the set changes, comes back
// after a drop with a growing delay, and closes with the last listener.

import { IShelfEvent, ShelfApi } from './api';

export type LiveState = 'connecting' | 'live' | 'offline';

export interface IEventListener {
  /** Events of this listener's shelf, in the order they came. */
  events(events: IShelfEvent[]): void;
  /** The socket came back after a drop: events may have been missed, look again at everything. */
  resync(): void;
  /** Whether events arrive now. */
  state(state: LiveState): void;
}

/** Delays before reconnecting (ms): doubling from the first, never longer than the last. */
const FIRST_DELAY_MS = 500;
const LONGEST_DELAY_MS = 30_000;
/** Several views opening at once make one socket, not several. */
const SETTLE_MS = 30;

export class ShelfEvents {
  private readonly listeners = new Map<string, Set<IEventListener>>();
  private socket: WebSocket | null = null;
  private shelves = '';
  private attempt = 0;
  private everOpen = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private current: LiveState = 'offline';

  constructor(readonly api: ShelfApi) {}

  /** Hear ``shelf``'s events; the function returned stops it. */
  listen(shelf: string, listener: IEventListener): () => void {
    let set = this.listeners.get(shelf);
    if (!set) {
      set = new Set();
      this.listeners.set(shelf, set);
    }
    set.add(listener);
    listener.state(this.socket && this.shelvesKey() === this.shelves ? this.current : 'connecting');
    this.schedule(SETTLE_MS);
    return () => {
      const found = this.listeners.get(shelf);
      found?.delete(listener);
      if (found && found.size === 0) {
        this.listeners.delete(shelf);
      }
      this.schedule(SETTLE_MS);
    };
  }

  get state(): LiveState {
    return this.current;
  }

  dispose(): void {
    this.listeners.clear();
    clearTimeout(this.timer);
    this.close();
  }

  private shelvesKey(): string {
    return JSON.stringify([...this.listeners.keys()].sort());
  }

  private schedule(delay: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private connect(): void {
    const key = this.shelvesKey();
    if (this.socket && key === this.shelves) {
      return; // already watching exactly these shelves
    }
    this.close();
    const shelves = JSON.parse(key) as string[];
    this.shelves = key;
    if (shelves.length === 0) {
      return;
    }
    this.setState('connecting');
    const socket = new this.api.settings.WebSocket(this.api.eventsUrl(shelves));
    this.socket = socket;
    socket.onopen = () => {
      if (socket !== this.socket) {
        return;
      }
      const missed = this.everOpen && this.attempt > 0;
      this.attempt = 0;
      this.everOpen = true;
      this.setState('live');
      if (missed) {
        for (const set of this.listeners.values()) {
          for (const listener of set) {
            listener.resync();
          }
        }
      }
    };
    socket.onmessage = message => {
      if (socket === this.socket) {
        this.deliver(message.data);
      }
    };
    socket.onclose = () => {
      if (socket !== this.socket) {
        return; // closed by us
      }
      this.socket = null;
      this.shelves = '';
      this.setState('offline');
      if (this.listeners.size > 0) {
        const delay = Math.min(LONGEST_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
        this.attempt += 1;
        this.schedule(delay * (0.75 + Math.random() * 0.5)); // spread many tabs' reconnects
      }
    };
  }

  private close(): void {
    const socket = this.socket;
    this.socket = null;
    this.shelves = '';
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      socket.close();
    }
    this.setState('offline');
  }

  private deliver(data: unknown): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(String(data));
    } catch {
      return; // not ours to understand
    }
    const events = (Array.isArray(parsed) ? parsed : [parsed]) as IShelfEvent[];
    const byShelf = new Map<string, IShelfEvent[]>();
    for (const event of events) {
      if (!event || typeof event.shelf !== 'string') {
        continue;
      }
      const list = byShelf.get(event.shelf) ?? [];
      list.push(event);
      byShelf.set(event.shelf, list);
    }
    for (const [shelf, list] of byShelf) {
      for (const listener of this.listeners.get(shelf) ?? []) {
        listener.events(list);
      }
    }
  }

  private setState(state: LiveState): void {
    if (state === this.current) {
      return;
    }
    this.current = state;
    for (const set of this.listeners.values()) {
      for (const listener of set) {
        listener.state(state);
      }
    }
  }
}
