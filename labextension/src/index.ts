// The Shelves panel: browse labshelf shelves from JupyterLab without a kernel.
//
// The left sidebar lists the shelves labshelf.server finds (sidebar: panel.ts); a shelf opens
// in the main area (view.ts) with its run table, the selected run's dataset tree and a
// preview, drawn by the notebook widgets' own views on REST-backed models (table.ts,
// tree.ts), kept current by the server's events (events.ts).

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { PageConfig } from '@jupyterlab/coreutils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { messageOf, ShelfApi } from './api';
import { ShelfEvents } from './events';
import { shelfIcon } from './icons';
import { ShelvesPanel } from './panel';
import { INotebookBridge, ShelfView } from './view';

const PLUGIN_ID = 'labshelf:plugin';

export namespace CommandIDs {
  export const open = 'labshelf:open';
  export const showPanel = 'labshelf:show-panel';
}

/** The settings of schema/plugin.json. */
export interface IPanelSettings {
  defaultColumns: string[];
  pageSize: number;
  openShelves: string[];
}

const DEFAULTS: IPanelSettings = { defaultColumns: [], pageSize: 100, openShelves: [] };

function readSettings(settings: ISettingRegistry.ISettings | null): IPanelSettings {
  if (!settings) {
    return { ...DEFAULTS };
  }
  const composite = settings.composite as Partial<IPanelSettings>;
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((x): x is string => typeof x === 'string') : [];
  const size = Number(composite.pageSize);
  return {
    defaultColumns: strings(composite.defaultColumns),
    pageSize: Number.isInteger(size) && size >= 10 && size <= 1000 ? size : DEFAULTS.pageSize,
    openShelves: strings(composite.openShelves)
  };
}

/** Insert code below the active cell of the notebook the user worked in last. */
function notebookBridge(tracker: INotebookTracker | null): INotebookBridge {
  return {
    insert(code: string): string {
      const panel = tracker?.currentWidget;
      if (!panel || !panel.content.model) {
        throw new Error('No notebook is open: open one, click the cell to insert below, and try again.');
      }
      const notebook = panel.content;
      NotebookActions.insertBelow(notebook);
      if (notebook.activeCell?.model.type !== 'code') {
        NotebookActions.changeCellType(notebook, 'code');
      }
      const cell = notebook.activeCell;
      if (!cell) {
        throw new Error(`Could not add a cell to ${panel.context.path}.`);
      }
      cell.model.sharedModel.setSource(code);
      return `Inserted into ${panel.context.path} as cell ${notebook.activeCellIndex + 1}`;
    }
  };
}

/** How long the shelves opened at start wait for a notebook to open beside (ms). */
const STARTUP_NOTEBOOK_WAIT_MS = 5000;

/** Resolves once a notebook is shown (or after ``wait`` ms; at once unless the URL opens a notebook). */
function notebookShown(notebooks: INotebookTracker | null, wait: number): Promise<void> {
  if (!notebooks || !PageConfig.getOption('treePath').endsWith('.ipynb')) {
    return Promise.resolve();
  }
  return new Promise(resolve => {
    const check = () => {
      const current = notebooks.currentWidget;
      if (current && current.isAttached) {
        done();
      }
    };
    const timer = setTimeout(() => done(), wait);
    const poll = setInterval(check, 100);
    const done = () => {
      clearTimeout(timer);
      clearInterval(poll);
      resolve();
    };
    check();
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The Shelves panel: browse labshelf shelves without a kernel.',
  autoStart: true,
  optional: [ILayoutRestorer, ISettingRegistry, ICommandPalette, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    registry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null
  ) => {
    const api = new ShelfApi(app.serviceManager.serverSettings);
    const events = new ShelfEvents(api);
    const tracker = new WidgetTracker<ShelfView>({ namespace: 'labshelf' });
    const bridge = notebookBridge(notebooks);
    let settings: IPanelSettings = { ...DEFAULTS };
    const opening = new Map<string, Promise<ShelfView>>();

    const views = (): ShelfView[] => {
      const found: ShelfView[] = [];
      tracker.forEach(view => found.push(view));
      return found;
    };

    const applySettings = (loaded: ISettingRegistry.ISettings | null): void => {
      settings = readSettings(loaded);
      for (const view of views()) {
        view.content.setPageSize(settings.pageSize);
      }
    };
    // Every shelf opens with the settings read (a command may come before they are).
    const loaded = registry
      ? registry.load(PLUGIN_ID).then(
          found => {
            applySettings(found);
            found.changed.connect(() => applySettings(found));
          },
          problem => console.warn('labshelf: the Shelves panel settings could not be read', problem)
        )
      : Promise.resolve();

    /** Open a shelf's tab (or bring its tab forward); errors are the server's messages. */
    const open = (shelf: string, activate = true): Promise<ShelfView> => {
      const existing = views().find(view => view.shelf === shelf);
      if (existing) {
        if (activate) {
          app.shell.activateById(existing.id);
        }
        return Promise.resolve(existing);
      }
      let pending = opening.get(shelf);
      if (!pending) {
        pending = loaded
          .then(() => api.shelf(shelf))
          .then(detail => {
            const view = new ShelfView(detail, {
              api,
              events,
              notebook: bridge,
              pageSize: settings.pageSize,
              defaultColumns: settings.defaultColumns
            });
            // Beside the notebook being worked on, or among the shelves already open.
            const others = views();
            const notebook = notebooks?.currentWidget;
            if (others.length) {
              app.shell.add(view, 'main', { mode: 'tab-after', ref: others[others.length - 1].id, activate });
            } else if (notebook && notebook.isAttached) {
              app.shell.add(view, 'main', { mode: 'split-right', ref: notebook.id, activate });
            } else {
              app.shell.add(view, 'main', { activate });
            }
            void tracker.add(view);
            view.content.table.on('change:count', () => panel.setRuns(shelf, view.content.table.get('count')));
            view.disposed.connect(() => panel.setOpen(views().filter(v => v !== view).map(v => v.shelf)));
            panel.setOpen(views().map(v => v.shelf));
            return view;
          })
          .finally(() => opening.delete(shelf));
        opening.set(shelf, pending);
      }
      return pending;
    };

    const openOrSay = (shelf: string): void => {
      open(shelf).catch(problem => Notification.error(`Cannot open ${shelf}: ${messageOf(problem)}`, { autoClose: 8000 }));
    };

    const ask = async (): Promise<void> => {
      let known: string[] = [];
      try {
        known = (await api.shelves()).shelves.map(s => s.shelf);
      } catch {
        known = []; // the dialog still takes a path
      }
      const answer = await InputDialog.getItem({
        title: 'Open shelf',
        label: 'A path below the server root ending in .shelf, or a configured name',
        items: known,
        editable: true,
        placeholder: 'data/lab.shelf'
      });
      const shelf = answer.button.accept ? (answer.value ?? '').trim() : '';
      if (shelf) {
        await open(shelf);
      }
    };

    const panel = new ShelvesPanel(api, { open: openOrSay, ask: () => void ask().catch(problem => Notification.error(messageOf(problem))) });
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, panel.id);
      void restorer.restore(tracker, {
        command: CommandIDs.open,
        args: view => ({ shelf: view.shelf, activate: false }),
        name: view => view.shelf
      });
    }

    app.commands.addCommand(CommandIDs.open, {
      label: args => (typeof args.shelf === 'string' ? `Open shelf ${args.shelf}` : 'labshelf: open shelf…'),
      caption: 'Open a labshelf shelf in the Shelves panel: a path below the server root, or a configured name',
      icon: args => (typeof args.shelf === 'string' ? undefined : shelfIcon),
      execute: async args => {
        const shelf = typeof args.shelf === 'string' ? args.shelf : '';
        if (!shelf) {
          return ask();
        }
        try {
          return await open(shelf, args.activate !== false);
        } catch (problem) {
          Notification.error(`Cannot open ${shelf}: ${messageOf(problem)}`, { autoClose: 8000 });
          throw problem;
        }
      }
    });
    app.commands.addCommand(CommandIDs.showPanel, {
      label: 'labshelf: show the Shelves panel',
      execute: () => app.shell.activateById(panel.id)
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.open, category: 'labshelf' });
      palette.addItem({ command: CommandIDs.showPanel, category: 'labshelf' });
    }

    // The shelves the settings name open at start (make demo opens the demo shelf so), beside
    // the notebook a /lab/tree/... URL opens, which may come a moment after the restore.
    void Promise.all([app.restored, loaded])
      .then(() => (settings.openShelves.length ? notebookShown(notebooks, STARTUP_NOTEBOOK_WAIT_MS) : undefined))
      .then(() => {
        for (const shelf of settings.openShelves) {
          openOrSay(shelf);
        }
        if (settings.openShelves.length) {
          app.shell.activateById(panel.id);
        }
      });
  }
};

export default plugin;
