// The dataset tree's model over REST: what widgets/tree.py (DatasetTree) does in a kernel,
// done with GET children, preview, picture, pixel and code, so widgets/static/tree.js draws
// the panel's tree and preview pane.

import { ISnippet, ShelfApi } from './api';
import { IAnswer, RestModel } from './model';

/** The traits tree.js reads and writes (widgets/tree.py names them). */
export interface ITreeState {
  selected: string;
  page_size: number;
  /** "" (every run) or "run/12": the run the tree shows, opened. */
  scope: string;
  /** Changes when the shelf did: the tree looks again at what it shows. */
  version: string;
}

/** Pixels of the preview picture's longer side: sharp in a pane a few hundred pixels wide. */
export const PREVIEW_SIZE = 512;

export class TreeModel extends RestModel<ITreeState> {
  private readonly snippets = new Map<string, Promise<ISnippet>>();

  constructor(
    readonly api: ShelfApi,
    readonly shelf: string,
    pageSize: number
  ) {
    super({ selected: '', page_size: pageSize, scope: '', version: '' });
  }

  /** Show one run (``null``: none), opened, with its own preview selected. */
  showRun(run: number | null): void {
    const scope = run === null ? '' : `run/${run}`;
    if (scope === this.state.scope) {
      return;
    }
    this.update({ scope, selected: scope });
  }

  setPageSize(size: number): void {
    this.update({ page_size: size });
  }

  /** The shelf changed: the tree reloads what it shows (keeping what is open). */
  changed(version: string): void {
    this.update({ version });
  }

  /** The exact code that loads a node (setup and shelf.get), asked once per node and version. */
  code(node: string): Promise<ISnippet> {
    const key = `${this.state.version}\n${node}`;
    let found = this.snippets.get(key);
    if (!found) {
      found = this.api.code(this.shelf, node);
      found.catch(() => this.snippets.delete(key));
      if (this.snippets.size > 200) {
        this.snippets.clear();
      }
      this.snippets.set(key, found);
    }
    return found;
  }

  protected apply(): void {
    // selected: tree.js loads the preview itself; nothing else is written by the view.
  }

  protected async answer(method: string, params: Record<string, unknown>): Promise<IAnswer> {
    switch (method) {
      case 'children':
        return this.children(
          String(params.node ?? ''),
          Number(params.offset ?? 0),
          Number(params.limit ?? this.state.page_size),
          String(params.search ?? '')
        );
      case 'preview':
        return this.preview(String(params.node ?? ''));
      case 'pixel': {
        const pixel = await this.api.pixel(this.shelf, String(params.node ?? ''), Number(params.x), Number(params.y));
        return { result: pixel };
      }
      default:
        throw new Error(`the Shelves panel's tree has no request ${JSON.stringify(method)}`);
    }
  }

  private async children(node: string, offset: number, limit: number, search: string): Promise<IAnswer> {
    const scope = this.state.scope;
    if (scope && node === '') {
      // A tree of one run shows that run, opened (as DatasetTree(run) does).
      if (offset > 0) {
        return { result: { nodes: [], more: false, offset } };
      }
      return { result: { nodes: [{ ...(await this.runNode(scope)), expand: true }], more: false, offset } };
    }
    return { result: await this.api.children(this.shelf, node, offset, limit, search) };
  }

  /** A run's own node: its name and what the shelf's listing says of it. */
  private async runNode(scope: string): Promise<{ id: string; name: string; kind: string; meta: string; expandable: boolean }> {
    const run = Number(scope.slice('run/'.length));
    const page = await this.api.runs(this.shelf, {
      query: `run == ${run}`,
      columns: ['experiment', 'status', 'start'],
      offset: 0,
      limit: 1
    });
    let meta = '';
    if (page.cells.length) {
      const [experiment, status, start] = page.cells[0];
      const started = typeof start === 'string' && !Number.isNaN(Date.parse(start)) ? shortTime(new Date(start)) : '';
      meta = [experiment, status, started].filter(x => typeof x === 'string' && x).join(' · ');
    }
    return { id: scope, name: `run ${run}`, kind: 'run', meta, expandable: true };
  }

  private async preview(node: string): Promise<IAnswer> {
    if (!node) {
      throw new Error('select a run or a dataset to preview it');
    }
    void this.code(node).catch(() => undefined); // ready for a copy, which must not wait
    const preview = await this.api.preview(this.shelf, node, PREVIEW_SIZE);
    if (!preview.picture) {
      return { result: preview };
    }
    const png = await this.api.picture(this.shelf, node, PREVIEW_SIZE);
    return { result: { ...preview, image: 0 }, buffers: [new DataView(png)] };
  }
}

const pad = (n: number): string => String(n).padStart(2, '0');

function shortTime(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
