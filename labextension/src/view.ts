// One open shelf in the main area: its run table above, the selected run's dataset tree and
// the preview pane below.  The table and the tree are the notebook widgets' own views
// (widgets/static/table.js, tree.js) on REST-backed models; this file wires them together,
// to the shelf's live events and to the notebook (insert, copy).

import { Clipboard, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { Toolbar, ToolbarButton } from '@jupyterlab/ui-components';
import { SplitPanel, Widget } from '@lumino/widgets';

import { IShelfDetail, IShelfEvent, messageOf, ShelfApi } from './api';
import { IEventListener, LiveState, ShelfEvents } from './events';
import { refreshIcon, shelfIcon } from './icons';
import { TableModel } from './table';
import { TreeModel } from './tree';
import tableView from './widgets/table.js';
import treeView from './widgets/tree.js';

/** How often at most the table and the tree look again while events keep coming (ms). */
const TABLE_REFRESH_MS = 250;
const TREE_REFRESH_MS = 1000;

/** What the view needs from the notebook side (index.ts gives it). */
export interface INotebookBridge {
  /** Insert a code cell below the active cell of the current notebook; answers where it went. */
  insert(code: string): string;
}

export interface IViewOptions {
  api: ShelfApi;
  events: ShelfEvents;
  notebook: INotebookBridge;
  pageSize: number;
  defaultColumns: string[];
}

/** A Python string literal of any text: JSON's escapes are Python's too. */
export function pythonString(text: string): string {
  return JSON.stringify(text);
}

/** The body of a shelf's main-area tab. */
export class ShelfContent extends SplitPanel {
  readonly table: TableModel;
  readonly tree: TreeModel;
  private readonly disposers: (() => void)[] = [];
  private shownRun: number | null = null;
  private previousSelection: number[] = [];
  private tableDue: { columns: boolean } | null = null;
  private treeDue = false;
  private tableTimer: ReturnType<typeof setTimeout> | undefined;
  private treeTimer: ReturnType<typeof setTimeout> | undefined;
  private tableBusy = false;
  readonly liveNode: HTMLElement;

  constructor(
    readonly detail: IShelfDetail,
    private readonly options: IViewOptions
  ) {
    super({ orientation: 'vertical', spacing: 4 });
    this.addClass('labshelf-view');
    const { api } = options;
    this.table = new TableModel(api, detail.shelf, detail, {
      pageSize: options.pageSize,
      defaultColumns: options.defaultColumns
    });
    this.tree = new TreeModel(api, detail.shelf, options.pageSize);

    const tableHost = new Widget();
    tableHost.addClass('labshelf-view-table');
    const treeHost = new Widget();
    treeHost.addClass('labshelf-view-tree');
    this.addWidget(tableHost);
    this.addWidget(treeHost);
    this.setRelativeSizes([0.55, 0.45]);

    this.disposers.push(tableView.render({ model: this.table, el: tableHost.node }));
    const host = {
      insert: (node: string) => this.insert(node),
      copy: (node: string) => this.copy(node)
    };
    this.disposers.push(treeView.render({ model: this.tree, el: treeHost.node, host }));

    const onSelection = () => this.followSelection();
    this.table.on('change:selected_runs', onSelection);
    this.disposers.push(() => this.table.off('change:selected_runs', onSelection));

    this.liveNode = document.createElement('span');
    this.liveNode.className = 'labshelf-live';
    const listener: IEventListener = {
      events: list => this.onEvents(list),
      resync: () => this.refresh(),
      state: state => this.showLive(state)
    };
    this.disposers.push(options.events.listen(detail.shelf, listener));
  }

  get shelf(): string {
    return this.detail.shelf;
  }

  /** The tree follows the run clicked last in the table. */
  private followSelection(): void {
    const now = this.table.get('selected_runs');
    const before = new Set(this.previousSelection);
    const added = now.filter(run => !before.has(run));
    this.previousSelection = [...now];
    let run: number | null = this.shownRun;
    if (added.length) {
      run = added[added.length - 1];
    } else if (run === null || !now.includes(run)) {
      run = now.length ? now[now.length - 1] : null;
    }
    if (run !== this.shownRun) {
      this.shownRun = run;
      this.tree.showRun(run);
    }
  }

  /** Look again at everything (the refresh button, a socket that came back). */
  refresh(): void {
    this.dueTable(true);
    this.dueTree();
  }

  private onEvents(events: IShelfEvent[]): void {
    const known = new Set(this.table.get('all_columns'));
    let columns = false;
    let tree = false;
    for (const event of events) {
      if (event.kind === 'dataset' || event.kind === 'changed' || event.kind === 'run' || event.kind === 'metadata') {
        // (metadata: a column's heading, unit, scale or tags changed: GET shelf has them.)
        columns = true;
      } else if (event.kind === 'annotation' && event.name && !known.has(event.name)) {
        columns = true; // a new user column
      }
      // The tree of one run looks again when that run changed; the tree of every run when
      // a run came or ended (its nodes say their status).
      if (
        event.kind === 'changed' ||
        (this.shownRun !== null && event.run === this.shownRun) ||
        (this.shownRun === null && (event.kind === 'run' || event.kind === 'finished'))
      ) {
        tree = true;
      }
    }
    this.dueTable(columns);
    if (tree) {
      this.dueTree();
    }
  }

  private dueTable(columns: boolean): void {
    this.tableDue = { columns: columns || (this.tableDue?.columns ?? false) };
    if (this.tableTimer === undefined && !this.tableBusy) {
      this.tableTimer = setTimeout(() => void this.refreshTable(), TABLE_REFRESH_MS);
    }
  }

  private async refreshTable(): Promise<void> {
    this.tableTimer = undefined;
    const due = this.tableDue;
    this.tableDue = null;
    if (!due || this.isDisposed) {
      return;
    }
    this.tableBusy = true;
    try {
      await this.table.refresh(due.columns);
    } catch (problem) {
      Notification.error(`Shelf ${this.detail.name}: ${messageOf(problem)}`, { autoClose: 5000 });
    } finally {
      this.tableBusy = false;
    }
    if (this.tableDue && !this.isDisposed) {
      this.tableTimer = setTimeout(() => void this.refreshTable(), TABLE_REFRESH_MS);
    }
  }

  private dueTree(): void {
    this.treeDue = true;
    if (this.treeTimer === undefined) {
      this.treeTimer = setTimeout(() => {
        this.treeTimer = undefined;
        if (this.treeDue && !this.isDisposed) {
          this.treeDue = false;
          this.tree.changed(`${Date.now()}`);
        }
      }, TREE_REFRESH_MS);
    }
  }

  private showLive(state: LiveState): void {
    this.liveNode.dataset.state = state;
    this.liveNode.textContent = state === 'live' ? '● live' : state === 'connecting' ? '○ connecting…' : '○ offline, retrying';
    this.liveNode.title =
      state === 'live' ? 'New runs and edits appear as they happen' : 'Not hearing the shelf now: the panel tries again';
  }

  /** The code that loads a node: the shelf's opening lines, then the node's own. */
  async snippet(node: string): Promise<string> {
    const found = await this.tree.code(node);
    return `${found.setup}\n${found.code}`;
  }

  async insert(node: string): Promise<string> {
    return this.options.notebook.insert(await this.snippet(node));
  }

  async copy(node: string): Promise<string> {
    Clipboard.copyToSystem(await this.snippet(node));
    return 'copied';
  }

  /** The code of the table as shown: shelf.runs with the filter and sort applied. */
  async tableCode(): Promise<string> {
    const setup = (await this.tree.code('')).setup;
    const filter = this.table.get('filter').trim();
    const sort = this.table.get('sort');
    let code = 'shelf.runs';
    if (filter) {
      code += `.query(${pythonString(filter)})`;
    }
    if (sort.length) {
      const keys = sort.map(([column]) => pythonString(column)).join(', ');
      const ascending = sort.map(([, up]) => (up ? 'True' : 'False')).join(', ');
      code += `.sort_values([${keys}], ascending=[${ascending}])`;
    }
    return `${setup}\nview = ${code}\nview`;
  }

  setPageSize(size: number): void {
    this.table.setPageSize(size);
    this.tree.setPageSize(size);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    clearTimeout(this.tableTimer);
    clearTimeout(this.treeTimer);
    for (const dispose of this.disposers.splice(0)) {
      dispose();
    }
    this.table.dispose();
    this.tree.dispose();
    super.dispose();
  }
}

/** A shelf's tab: its toolbar (live state, insert the table, refresh) and its content. */
export class ShelfView extends MainAreaWidget<ShelfContent> {
  constructor(detail: IShelfDetail, options: IViewOptions) {
    const content = new ShelfContent(detail, options);
    super({ content });
    this.id = `labshelf-view-${encodeURIComponent(detail.shelf)}`;
    this.addClass('labshelf-view-tab');
    this.title.label = detail.name;
    this.title.caption = `Shelf ${detail.shelf} (${detail.backend}${detail.writable ? '' : ', read-only'})`;
    this.title.icon = shelfIcon;
    this.title.closable = true;

    const live = new Widget({ node: content.liveNode });
    const insertTable = new ToolbarButton({
      label: 'Insert table',
      tooltip: 'Insert the code of this run table (filter and sort as shown) below the current notebook cell',
      className: 'labshelf-insert-table',
      onClick: () => {
        content
          .tableCode()
          .then(code => Notification.success(options.notebook.insert(code), { autoClose: 3000 }))
          .catch(problem => Notification.error(messageOf(problem), { autoClose: 5000 }));
      }
    });
    const refresh = new ToolbarButton({
      icon: refreshIcon,
      tooltip: 'Look again at the shelf',
      className: 'labshelf-refresh',
      onClick: () => content.refresh()
    });
    this.toolbar.addItem('live', live);
    this.toolbar.addItem('spacer', Toolbar.createSpacerItem());
    this.toolbar.addItem('insert-table', insertTable);
    this.toolbar.addItem('refresh', refresh);
  }

  get shelf(): string {
    return this.content.shelf;
  }
}
