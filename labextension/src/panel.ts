// The Shelves panel in the left sidebar: every shelf the server finds below its root and every
// configured one, with its runs and newest change; a click opens the shelf in the main area.

import { Widget } from '@lumino/widgets';

import { IShelfInfo, IShelfList, messageOf, ShelfApi } from './api';
import { shelfIcon } from './icons';

export interface IPanelActions {
  /** Open (or show) a shelf's tab. */
  open(shelf: string): void;
  /** Ask for a path or a configured name, then open it. */
  ask(): void;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** "3 min ago", "yesterday", or the date: how long ago a shelf last changed. */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) {
    return 'no changes yet';
  }
  const then = Date.parse(iso);
  if (Number.isNaN(then)) {
    return '';
  }
  const seconds = Math.max(0, (now - then) / 1000);
  if (seconds < 60) {
    return 'just now';
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h ago`;
  }
  if (seconds < 2 * 86400) {
    return 'yesterday';
  }
  return new Date(then).toLocaleDateString();
}

export class ShelvesPanel extends Widget {
  private readonly list: HTMLUListElement;
  private readonly error: HTMLElement;
  private readonly foot: HTMLElement;
  private readonly open = new Set<string>();
  private loading: Promise<void> | null = null;
  private shelves: IShelfInfo[] = [];

  constructor(
    private readonly api: ShelfApi,
    private readonly actions: IPanelActions
  ) {
    super();
    this.id = 'labshelf-shelves';
    this.addClass('labshelf-panel');
    this.title.icon = shelfIcon;
    this.title.caption = 'Shelves';

    const head = element('div', 'ls-panel-head');
    head.append(element('span', 'ls-panel-title', 'Shelves'));
    const openButton = element('button', 'jp-Button ls-panel-open', 'Open…');
    openButton.type = 'button';
    openButton.title = 'Open a shelf by its path below the server root, or by a configured name';
    openButton.addEventListener('click', () => this.actions.ask());
    const refresh = element('button', 'jp-Button ls-panel-refresh', '⟳');
    refresh.type = 'button';
    refresh.title = 'Look for shelves again';
    refresh.setAttribute('aria-label', 'refresh the list of shelves');
    refresh.addEventListener('click', () => void this.refresh());
    head.append(openButton, refresh);

    this.error = element('div', 'ls-panel-error');
    this.error.setAttribute('role', 'alert');
    this.error.hidden = true;
    this.list = element('ul', 'ls-shelves');
    this.list.setAttribute('role', 'list');
    this.foot = element('div', 'ls-panel-foot');
    this.node.append(head, this.error, this.list, this.foot);

    this.list.addEventListener('click', event => {
      const item = (event.target as HTMLElement).closest<HTMLElement>('[data-shelf]');
      if (item?.dataset.shelf) {
        this.actions.open(item.dataset.shelf);
      }
    });
    this.list.addEventListener('keydown', event => {
      const item = (event.target as HTMLElement).closest<HTMLElement>('[data-shelf]');
      if (item?.dataset.shelf && (event.key === 'Enter' || event.key === ' ')) {
        event.preventDefault();
        this.actions.open(item.dataset.shelf);
      }
    });
  }

  /** Ask the server for the shelves again (each call while one runs shares it). */
  refresh(): Promise<void> {
    if (!this.loading) {
      this.list.classList.add('ls-busy');
      this.loading = this.api
        .shelves()
        .then(
          found => this.showList(found),
          problem => this.showError(messageOf(problem))
        )
        .finally(() => {
          this.loading = null;
          this.list.classList.remove('ls-busy');
        });
    }
    return this.loading;
  }

  /** Which shelves have a tab: they are marked in the list. */
  setOpen(shelves: Iterable<string>): void {
    this.open.clear();
    for (const shelf of shelves) {
      this.open.add(shelf);
    }
    for (const item of this.list.querySelectorAll<HTMLElement>('[data-shelf]')) {
      item.classList.toggle('ls-open', this.open.has(item.dataset.shelf ?? ''));
    }
  }

  /** A shelf's count of runs as its tab saw it last (so the list keeps up without asking). */
  setRuns(shelf: string, runs: number): void {
    const found = this.shelves.find(s => s.shelf === shelf);
    if (found && found.runs !== runs) {
      found.runs = runs;
      found.last_change = new Date().toISOString();
      const item = this.list.querySelector<HTMLElement>(`[data-shelf="${CSS.escape(shelf)}"]`);
      item?.replaceWith(this.item(found));
    }
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private showList(found: IShelfList): void {
    this.error.hidden = true;
    this.shelves = found.shelves;
    this.list.replaceChildren(...found.shelves.map(shelf => this.item(shelf)));
    if (!found.shelves.length) {
      const empty = element('li', 'ls-panel-empty');
      empty.textContent = `No shelf below ${found.root}. Make one with labshelf.create("name.shelf"), or open one by path.`;
      this.list.append(empty);
    }
    this.foot.textContent = `Below ${found.root}${found.truncated ? ' (not every folder was searched: open deeper shelves by path)' : ''}`;
  }

  private item(shelf: IShelfInfo): HTMLLIElement {
    const item = element('li', 'ls-shelf');
    item.dataset.shelf = shelf.shelf;
    item.tabIndex = 0;
    item.title = `${shelf.shelf} (${shelf.backend}${shelf.configured ? ', configured' : ''}${shelf.writable ? '' : ', read-only'})`;
    item.classList.toggle('ls-open', this.open.has(shelf.shelf));
    const icon = element('span', 'ls-shelf-icon');
    shelfIcon.element({ container: icon });
    const text = element('div', 'ls-shelf-text');
    text.append(element('div', 'ls-shelf-name', shelf.name));
    if (shelf.error) {
      item.classList.add('ls-broken');
      text.append(element('div', 'ls-shelf-error', shelf.error));
    } else {
      const runs = shelf.runs === null ? '' : `${shelf.runs.toLocaleString()} run${shelf.runs === 1 ? '' : 's'}`;
      const parts = [runs, ago(shelf.last_change), shelf.backend === 'postgresql' ? 'PostgreSQL' : '', shelf.writable ? '' : 'read-only'];
      text.append(element('div', 'ls-shelf-meta', parts.filter(p => p).join(' · ')));
    }
    item.append(icon, text);
    return item;
  }

  private showError(message: string): void {
    this.error.textContent = message;
    this.error.hidden = false;
  }
}
