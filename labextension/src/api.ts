// The REST and WebSocket client of labshelf.server (the contract is in the server's
// handlers module and labextension/API.md): every request is authenticated as JupyterLab's own
// (ServerConnection adds the token and the XSRF header), every error becomes an ApiError
// carrying the server's one-line message.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Where the server's handlers live, below the base URL. */
export const API_PATH = 'labshelf/api';

/** A shelf as the server lists it. */
export interface IShelfInfo {
  /** The id to pass back: a path below the server root ending in .shelf, or a configured name. */
  shelf: string;
  name: string;
  configured: boolean;
  backend: 'sqlite' | 'postgresql' | string;
  runs: number | null;
  last_change: string | null;
  writable: boolean;
  error?: string;
}

export interface IShelfList {
  shelves: IShelfInfo[];
  root: string;
  truncated: boolean;
}

/** What a column's numbers mean (labshelf.browse.runs.column_meta): the header and the scaling. */
export interface IColumnMeta {
  unit?: string;
  scale?: number;
  precision?: number;
  title?: string;
  description?: string;
  /** The title's last part (else the column) and the unit: "delay [ps]". */
  heading: string;
  /** The title before its last "/". */
  group?: string;
}

/** A logbook entry placed before the run at ``row`` of the whole table (``before``: within a page). */
export interface ILogRow {
  id: number;
  time: string;
  text: string;
  user: string;
  row: number;
  before: number;
}

/** One shelf with its run table's columns (GET shelf). */
export interface IShelfDetail extends IShelfInfo {
  columns: string[];
  kinds: Record<string, string>;
  default_columns: string[];
  editable: string[];
  user_columns: Record<string, string>;
  version: string;
  meta: Record<string, IColumnMeta>;
  column_tags: Record<string, string[]>;
}

/** A page of runs (labshelf.browse RunsPage): cells per shown column, thumbnails as base64 PNG. */
export interface IRunsPage {
  offset: number;
  total: number | null;
  columns: string[];
  kinds: Record<string, string>;
  runs: number[];
  cells: unknown[][];
  errors: Record<string, Record<string, string>>;
  thumbnails: string[];
  meta: Record<string, IColumnMeta>;
  column_tags: Record<string, string[]>;
  /** With ``logbook: true``: the entries among the page's runs, and what placed them. */
  log?: ILogRow[];
  log_order?: 'start' | 'run' | null;
}

/** Every logbook entry of a filtered, sorted table (GET logbook). */
export interface ILogbook {
  log_order: 'start' | 'run' | null;
  log: ILogRow[];
}

export interface ITreeNode {
  id: string;
  name: string;
  kind: string;
  meta: string;
  expandable: boolean;
  expand?: boolean;
}

export interface INodePage {
  nodes: ITreeNode[];
  more: boolean;
  offset: number;
}

export interface IPicture {
  width: number;
  height: number;
  bytes: number;
  shape?: number[];
  factor?: number;
  vmin?: number;
  vmax?: number;
}

export interface IPreview {
  node: string;
  title: string;
  kind: string;
  fields: [string, string][];
  code: string;
  text?: string;
  note?: string;
  table?: { columns: string[]; dtypes: string[]; rows: string[][] };
  picture?: IPicture;
}

export interface ISnippet {
  node: string;
  code: string;
  setup: string;
}

export interface IPixel {
  x: number;
  y: number;
  value: number | string | null | (number | string | null)[];
  shape: number[];
}

export interface IAnnotated {
  run: number;
  cells: Record<string, unknown>;
}

/** What the events socket says about a shelf. */
export interface IShelfEvent {
  shelf: string;
  kind: 'run' | 'dataset' | 'finished' | 'annotation' | 'metadata' | 'logbook' | 'changed' | string;
  run: number | null;
  name?: string;
  version: string;
}

/** A request the server refused or could not answer: its message is for people. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly error: string = '',
    readonly position: number | null = null,
    readonly matches: string[] = []
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Params = Record<string, string | number | boolean | string[] | undefined | null>;

/** The query string of ``params``: lists repeat their name, JSON values are the caller's job. */
export function queryString(params: Params): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null) {
      continue;
    }
    for (const one of Array.isArray(value) ? value : [value]) {
      parts.push(`${encodeURIComponent(name)}=${encodeURIComponent(String(one))}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** The REST client of one server. */
export class ShelfApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  url(endpoint: string, params: Params = {}): string {
    return URLExt.join(this.settings.baseUrl, API_PATH, endpoint) + queryString(params);
  }

  /** The events socket's URL for ``shelves``, with the token as JupyterLab's own sockets carry it. */
  eventsUrl(shelves: string[]): string {
    let url = URLExt.join(this.settings.wsUrl, API_PATH, 'events') + queryString({ shelf: shelves });
    const token = this.settings.token;
    if (this.settings.appendToken && token !== '') {
      url += `${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    }
    return url;
  }

  async fetch(endpoint: string, params: Params = {}, init: RequestInit = {}): Promise<Response> {
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(this.url(endpoint, params), init, this.settings);
    } catch (problem) {
      // No answer at all: the server stopped, or the network is down.
      const reason = problem instanceof Error ? problem.message : String(problem);
      throw new ApiError(`the Jupyter server did not answer (${reason})`, 0, 'NetworkError');
    }
    if (!response.ok) {
      throw await errorOf(response);
    }
    return response;
  }

  async json<T>(endpoint: string, params: Params = {}, init: RequestInit = {}): Promise<T> {
    const response = await this.fetch(endpoint, params, init);
    return (await response.json()) as T;
  }

  shelves(): Promise<IShelfList> {
    return this.json<IShelfList>('shelves');
  }

  shelf(shelf: string): Promise<IShelfDetail> {
    return this.json<IShelfDetail>('shelf', { shelf });
  }

  runs(
    shelf: string,
    options: {
      query?: string;
      sort?: [string, boolean][];
      columns?: string[];
      offset: number;
      limit: number;
      logbook?: boolean;
    }
  ): Promise<IRunsPage> {
    return this.json<IRunsPage>('runs', {
      shelf,
      query: options.query || undefined,
      sort: options.sort && options.sort.length ? JSON.stringify(options.sort) : undefined,
      columns: options.columns ? JSON.stringify(options.columns) : undefined,
      offset: options.offset,
      limit: options.limit,
      logbook: options.logbook ? 'true' : undefined
    });
  }

  /** Every logbook entry placed among the rows of the table filtered by ``query``, sorted by ``sort``. */
  logbook(shelf: string, options: { query?: string; sort?: [string, boolean][] }): Promise<ILogbook> {
    return this.json<ILogbook>('logbook', {
      shelf,
      query: options.query || undefined,
      sort: options.sort && options.sort.length ? JSON.stringify(options.sort) : undefined
    });
  }

  children(shelf: string, node: string, offset: number, limit: number, search = ''): Promise<INodePage> {
    return this.json<INodePage>('children', { shelf, node, offset, limit, search: search || undefined });
  }

  preview(shelf: string, node: string, size?: number): Promise<IPreview> {
    return this.json<IPreview>('preview', { shelf, node, size });
  }

  /** The preview's PNG as bytes. */
  async picture(shelf: string, node: string, size?: number): Promise<ArrayBuffer> {
    const response = await this.fetch('picture', { shelf, node, size });
    return response.arrayBuffer();
  }

  pixel(shelf: string, node: string, x: number, y: number): Promise<IPixel> {
    return this.json<IPixel>('pixel', { shelf, node, x, y });
  }

  code(shelf: string, node: string): Promise<ISnippet> {
    return this.json<ISnippet>('code', { shelf, node });
  }

  annotate(
    shelf: string,
    body: { run: number; comment?: string | null; tags?: string[]; columns?: Record<string, unknown> }
  ): Promise<IAnnotated> {
    return this.json<IAnnotated>('annotate', { shelf }, { method: 'POST', body: JSON.stringify(body) });
  }
}

/** The server's JSON error as an ApiError; any other answer as its status and first line. */
async function errorOf(response: Response): Promise<ApiError> {
  let text = '';
  try {
    text = await response.text();
  } catch {
    text = '';
  }
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown; position?: unknown; matches?: unknown };
    if (body && typeof body.message === 'string') {
      return new ApiError(
        body.message,
        response.status,
        typeof body.error === 'string' ? body.error : '',
        typeof body.position === 'number' ? body.position : null,
        Array.isArray(body.matches) ? body.matches.map(String) : []
      );
    }
  } catch {
    // not JSON: a proxy's page or tornado's own error page
  }
  const first = text.replace(/<[^>]*>/g, ' ').trim().split('\n')[0].slice(0, 200);
  const reason = response.status === 404 && !first ? 'the labshelf server extension is not enabled' : first;
  return new ApiError(`${response.status} ${response.statusText}${reason ? `: ${reason}` : ''}`, response.status);
}

/** The one line to show for any problem. */
export function messageOf(problem: unknown): string {
  if (problem instanceof Error) {
    return problem.message;
  }
  return String(problem);
}
