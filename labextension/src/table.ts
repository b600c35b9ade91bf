// The run table's model over REST: what widgets/table.py (RunTable) does in a kernel,
// done with GET runs and POST annotate, so widgets/static/table.js draws the panel's table.

import { ApiError, IColumnMeta, IRunsPage, IShelfDetail, ShelfApi } from './api';
import { base64Bytes, IAnswer, RestModel } from './model';

/** The traits table.js reads and writes (widgets/table.py names them). */
export interface ITableState {
  filter: string;
  sort: [string, boolean][];
  columns: string[];
  all_columns: string[];
  /** The first screen's columns (the chooser's Reset goes back to them). */
  default_columns: string[];
  kinds: Record<string, string>;
  editable: string[];
  count: number;
  selected_runs: number[];
  error: string;
  error_position: number | null;
  page_size: number;
  poll: number;
  generation: number;
  layout_key: string;
  /** What the columns' numbers mean: headings with units, groups, scale and precision. */
  meta: Record<string, IColumnMeta>;
  column_tags: Record<string, string[]>;
  /** Log entries shown between the runs (table.js asks for them: request "logbook"). */
  logbook: boolean;
}

const TRUE = new Set(['true', 'yes', 'y', '1', 'on']);
const FALSE = new Set(['false', 'no', 'n', '0', 'off']);

interface IApplied {
  filter: string;
  sort: [string, boolean][];
}

export class TableModel extends RestModel<ITableState> {
  private applied: IApplied = { filter: '', sort: [] };
  private filterError: { message: string; position: number | null } = { message: '', position: null };
  private userColumns: Record<string, string>;
  private readonly defaultColumns: string[];
  // The first page of a new generation, fetched while checking the filter: the view asks
  // for it next, and gets it without a second request.
  private firstPage: { generation: number; key: string; page: IRunsPage } | null = null;
  private applying = 0;

  constructor(
    readonly api: ShelfApi,
    readonly shelf: string,
    detail: IShelfDetail,
    options: { pageSize: number; defaultColumns: string[] }
  ) {
    super({
      filter: '',
      sort: [],
      columns: firstColumns(detail, options.defaultColumns),
      all_columns: detail.columns,
      default_columns: firstColumns(detail, options.defaultColumns),
      kinds: detail.kinds,
      editable: detail.writable ? detail.editable : [],
      count: detail.runs ?? 0,
      selected_runs: [],
      error: '',
      error_position: null,
      page_size: options.pageSize,
      poll: 0, // the panel hears the server's events instead of polling
      generation: 1,
      layout_key: `shelf:${shelf}`,
      meta: detail.meta ?? {},
      column_tags: detail.column_tags ?? {},
      logbook: false
    });
    this.userColumns = detail.user_columns;
    this.defaultColumns = options.defaultColumns;
  }

  /** The page size from the settings: the rows already cached go. */
  setPageSize(size: number): void {
    if (size !== this.state.page_size) {
      this.update({ page_size: size, generation: this.state.generation + 1 });
    }
  }

  /**
   * Look again: new runs, new columns, other people's edits.  Called on the shelf's events;
   * ``columns`` when the columns may have changed (a dataset put, a user column made).
   */
  async refresh(columns: boolean): Promise<void> {
    if (columns) {
      const detail = await this.api.shelf(this.shelf);
      const known = new Set(this.state.all_columns);
      const fresh = detail.columns.filter(c => !known.has(c));
      this.userColumns = detail.user_columns;
      this.update({
        kinds: detail.kinds,
        all_columns: detail.columns,
        default_columns: firstColumns(detail, this.defaultColumns),
        editable: detail.writable ? detail.editable : [],
        meta: detail.meta ?? {},
        column_tags: detail.column_tags ?? {},
        // Columns nobody has seen yet are shown; hidden ones stay hidden (as RunTable does).
        columns: fresh.length ? [...this.state.columns.filter(c => c in detail.kinds), ...fresh] : this.state.columns
      });
    }
    await this.run(this.applied.filter, this.applied.sort, 'refresh');
  }

  protected apply(names: (keyof ITableState)[]): void {
    if (names.includes('filter') || names.includes('sort')) {
      const filter = names.includes('filter') ? this.state.filter : this.applied.filter;
      const sort = names.includes('sort') ? this.state.sort : this.applied.sort;
      void this.run(filter, sort, names.includes('filter') ? 'filter' : 'sort');
    } else if (names.includes('columns')) {
      this.update({ generation: this.state.generation + 1 });
    }
  }

  /** Apply a filter and sort: count the runs and fetch the first page, or say what is wrong. */
  private async run(filter: string, sort: [string, boolean][], why: 'filter' | 'sort' | 'refresh'): Promise<void> {
    const ticket = ++this.applying;
    const oldSort = this.applied.sort;
    const limit = this.state.page_size;
    const columns = [...this.state.columns];
    let page: IRunsPage;
    try {
      page = await this.api.runs(this.shelf, { query: filter, sort, columns, offset: 0, limit });
    } catch (problem) {
      if (ticket !== this.applying || this.isDisposed) {
        return;
      }
      const message = problem instanceof Error ? problem.message : String(problem);
      const position = problem instanceof ApiError && why === 'filter' ? problem.position : null;
      if (why === 'filter') {
        this.filterError = { message, position };
      }
      this.update({ error: message, error_position: position });
      if (why === 'sort') {
        // A sort that failed is undone, so the headers show the real order.
        this.update({ sort: oldSort });
      }
      return;
    }
    if (ticket !== this.applying || this.isDisposed) {
      return;
    }
    this.applied = { filter, sort };
    const generation = this.state.generation + 1;
    this.firstPage = { generation, key: pageKey(0, limit, columns), page };
    // A bad filter still in its box keeps its message up.
    const fixed = this.state.filter.trim() === filter.trim();
    this.update({
      error: fixed ? '' : this.filterError.message,
      error_position: fixed ? null : this.filterError.position,
      count: page.total ?? page.runs.length,
      generation
    });
  }

  protected async answer(method: string, params: Record<string, unknown>): Promise<IAnswer> {
    switch (method) {
      case 'rows':
        return this.rows(Number(params.offset ?? 0), Number(params.limit ?? this.state.page_size));
      case 'numbers':
        return this.numbers(Number(params.offset ?? 0), Number(params.limit ?? 1000));
      case 'edit':
        return this.edit(Number(params.run), String(params.column), params.value);
      case 'version':
        return { result: { generation: this.state.generation } };
      case 'logbook':
        return this.logbook();
      default:
        throw new Error(`the Shelves panel's table has no request ${JSON.stringify(method)}`);
    }
  }

  private async rows(offset: number, limit: number): Promise<IAnswer> {
    const generation = this.state.generation;
    const columns = [...this.state.columns];
    let page: IRunsPage;
    const cached = this.firstPage;
    if (cached && cached.generation === generation && cached.key === pageKey(offset, limit, columns)) {
      page = cached.page;
      this.firstPage = null;
    } else {
      page = await this.api.runs(this.shelf, {
        query: this.applied.filter,
        sort: this.applied.sort,
        columns,
        offset,
        limit
      });
    }
    if (generation === this.state.generation && page.total !== null && page.total !== this.state.count) {
      this.update({ count: page.total });
    }
    // table.js takes times as seconds since the epoch (it formats them in local time).
    const kinds = this.state.kinds;
    const times = page.columns.map((c, i) => (kinds[c] === 'time' ? i : -1)).filter(i => i >= 0);
    const cells = page.cells.map(row => {
      if (!times.length) {
        return row;
      }
      const copy = [...row];
      for (const i of times) {
        if (typeof copy[i] === 'string') {
          const ms = Date.parse(copy[i] as string);
          copy[i] = Number.isNaN(ms) ? copy[i] : ms / 1000;
        }
      }
      return copy;
    });
    return {
      result: { generation, offset, columns: page.columns, runs: page.runs, cells, errors: page.errors },
      buffers: page.thumbnails.map(base64Bytes)
    };
  }

  /** Every log entry placed among the rows of the applied filter and sort (times in seconds, as table.js takes them). */
  private async logbook(): Promise<IAnswer> {
    const generation = this.state.generation;
    const answer = await this.api.logbook(this.shelf, { query: this.applied.filter, sort: this.applied.sort });
    const entries = answer.log.map(entry => {
      const ms = Date.parse(entry.time);
      return { id: entry.id, time: Number.isNaN(ms) ? entry.time : ms / 1000, text: entry.text, user: entry.user, row: entry.row };
    });
    return { result: { generation, order: answer.log_order, entries } };
  }

  private async numbers(offset: number, limit: number): Promise<IAnswer> {
    const numbers: number[] = [];
    // Pages of at most 1000 (the server's largest), run numbers only.
    while (numbers.length < limit) {
      const want = Math.min(1000, limit - numbers.length);
      const page = await this.api.runs(this.shelf, {
        query: this.applied.filter,
        sort: this.applied.sort,
        columns: [],
        offset: offset + numbers.length,
        limit: want
      });
      numbers.push(...page.runs);
      if (page.runs.length < want) {
        break;
      }
    }
    return { result: numbers };
  }

  /** One edited cell (what the user typed) through POST annotate; answers the stored value. */
  private async edit(run: number, column: string, value: unknown): Promise<IAnswer> {
    const body: { run: number; comment?: string | null; tags?: string[]; columns?: Record<string, unknown> } = { run };
    if (column === 'comment') {
      body.comment = typeof value === 'string' && value.trim() === '' ? null : (value as string | null);
    } else if (column === 'tags') {
      body.tags = String(value ?? '')
        .split(',')
        .map(t => t.trim())
        .filter(t => t);
    } else if (column in this.userColumns) {
      body.columns = { [column]: parseUserValue(column, value, this.userColumns[column]) };
    } else {
      const user = Object.keys(this.userColumns);
      throw new Error(
        `column ${JSON.stringify(column)} cannot be edited; editable are comment, tags and the user columns` +
          (user.length ? ` (${user.join(', ')})` : '')
      );
    }
    const answer = await this.api.annotate(this.shelf, body);
    return { result: { run: answer.run, column, value: answer.cells[column] ?? null } };
  }
}

function pageKey(offset: number, limit: number, columns: string[]): string {
  return JSON.stringify([offset, limit, columns]);
}

/** The first screen's columns: the settings' choice where the shelf has them, else the server's. */
export function firstColumns(detail: IShelfDetail, configured: string[]): string[] {
  const chosen = configured.filter(c => c in detail.kinds);
  return chosen.length ? [...new Set(chosen)] : detail.default_columns;
}

/** What the user typed into a user column's cell, as annotate takes it (widgets/table.py _parse_edit). */
function parseUserValue(column: string, value: unknown, type: string): unknown {
  if (value === null || value === undefined || (typeof value === 'string' && value.trim() === '')) {
    return null; // an emptied cell clears the value
  }
  const text = String(value).trim();
  if (type === 'number' || type === 'int') {
    const number = Number(text);
    if (!Number.isFinite(number) || (type === 'int' && !Number.isInteger(number))) {
      throw new Error(`${column} holds ${type === 'int' ? 'integers' : 'numbers'}: ${JSON.stringify(text)} is not one (empty clears it)`);
    }
    // Integers beyond 2**53 travel as text so that no digit is lost.
    return type === 'int' && !Number.isSafeInteger(number) ? text : number;
  }
  if (type === 'bool') {
    const word = text.toLowerCase();
    if (TRUE.has(word) || FALSE.has(word)) {
      return TRUE.has(word);
    }
    throw new Error(`${column} holds true or false (yes/no, 1/0), not ${JSON.stringify(text)}; empty clears it`);
  }
  return String(value);
}
