// REST client: typed by the OpenAPI document (openapi-fetch), bearer auth with an
// in-memory access token, refresh through the HttpOnly cookie, one shared refresh in flight.
import createClient from 'openapi-fetch';
import type { paths, components } from '../gen/api';
import { humanRestError } from './errors';

export type User = components['schemas']['User'];
type AuthResponse = components['schemas']['AuthResponse'];
type Tokens = components['schemas']['Tokens'];

export class ApiError extends Error {
  readonly detail: string | undefined;
  constructor(
    readonly status: number,
    readonly code: string,
    message?: string,
  ) {
    super(humanRestError(code));
    this.detail = message;
  }
  get human(): string {
    return humanRestError(this.code);
  }
}

async function errorFrom(res: Response): Promise<ApiError> {
  try {
    const body = (await res.clone().json()) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string')
      return new ApiError(res.status, body.code, typeof body.message === 'string' ? body.message : undefined);
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, res.status >= 500 ? 'internal' : 'status_' + res.status);
}

export type FetchLike = (input: Request) => Promise<Response>;

export interface AuthOptions {
  fetch?: FetchLike;
  now?: () => number;
  /** Refresh this long before the access token expires. */
  earlyMs?: number;
  onLoggedOut?: (reason: string) => void;
  onToken?: (token: string) => void;
  /** Origin prefix for the auth endpoints ('' in the browser: same origin). */
  base?: string;
}

/** Holds the access token (memory only) and keeps it fresh. */
export class Auth {
  private accessToken: string | null = null;
  private expiresAt = 0;
  private inflight: Promise<string> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  readonly fetch: FetchLike;
  private readonly now: () => number;
  private readonly earlyMs: number;
  private readonly base: string;
  onLoggedOut: (reason: string) => void;
  onToken: (token: string) => void;

  constructor(opts: AuthOptions = {}) {
    this.fetch = opts.fetch ?? ((r) => globalThis.fetch(r));
    this.now = opts.now ?? Date.now;
    this.earlyMs = opts.earlyMs ?? 60_000;
    this.base = opts.base ?? '';
    this.onLoggedOut = opts.onLoggedOut ?? (() => {});
    this.onToken = opts.onToken ?? (() => {});
  }

  get loggedIn(): boolean {
    return this.accessToken !== null;
  }

  private accept(t: Tokens) {
    if (!t.access_token) throw new ApiError(500, 'internal', 'The server sent no access token.');
    sessionHint(true);
    this.accessToken = t.access_token;
    const exp = t.access_expires_at ? Date.parse(t.access_expires_at) : NaN;
    this.expiresAt = Number.isFinite(exp) ? exp : this.now() + 5 * 60_000;
    clearTimeout(this.timer);
    const wait = Math.max(5_000, this.expiresAt - this.now() - this.earlyMs);
    this.timer = setTimeout(() => {
      this.refresh().catch(() => {});
    }, wait);
    this.onToken(t.access_token);
  }

  private async post(path: string, body: unknown, extra: Record<string, string> = {}): Promise<Response> {
    return this.fetch(
      new Request(this.base + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Parley-Refresh': 'cookie', ...extra },
        body: JSON.stringify(body),
        credentials: 'same-origin',
      }),
    );
  }

  async login(username: string, password: string): Promise<User> {
    return this.enter('/api/v1/auth/login', { username, password });
  }

  async register(username: string, password: string, displayName: string, inviteCode = ''): Promise<User> {
    const body: Record<string, string> = { username, password };
    if (displayName) body.display_name = displayName;
    if (inviteCode) body.invite_code = inviteCode;
    return this.enter('/api/v1/auth/register', body);
  }

  private async enter(path: string, body: unknown): Promise<User> {
    let res: Response;
    try {
      res = await this.post(path, body);
    } catch {
      throw new ApiError(0, 'network');
    }
    if (!res.ok) throw await errorFrom(res);
    const data = (await res.json()) as AuthResponse;
    this.accept(data);
    return data.user ?? {};
  }

  /** Rotates the refresh cookie into a fresh access token; concurrent callers share one request. */
  refresh(): Promise<string> {
    if (this.inflight) return this.inflight;
    const p = (async () => {
      let res = await withLock(() => this.postRefresh());
      if (res.status === 401) {
        // Another tab may have rotated the shared cookie at the same moment: one more try.
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 400));
        res = await withLock(() => this.postRefresh());
      }
      if (!res.ok) {
        const err = await errorFrom(res);
        if (res.status === 400 || res.status === 401) this.drop(err.human);
        throw err;
      }
      const data = (await res.json()) as Tokens;
      this.accept(data);
      return this.accessToken!;
    })();
    this.inflight = p;
    const clear = () => {
      if (this.inflight === p) this.inflight = null;
    };
    p.then(clear, clear);
    return p;
  }

  private async postRefresh(): Promise<Response> {
    try {
      return await this.post('/api/v1/auth/refresh', {});
    } catch {
      throw new ApiError(0, 'network');
    }
  }

  /** A valid access token, refreshing first when it is (nearly) expired. */
  async token(): Promise<string> {
    if (this.accessToken && this.expiresAt - this.now() > 10_000) return this.accessToken;
    return this.refresh();
  }

  private drop(reason: string) {
    sessionHint(false);
    const was = this.accessToken !== null;
    this.accessToken = null;
    this.expiresAt = 0;
    clearTimeout(this.timer);
    if (was) this.onLoggedOut(reason);
  }

  async logout(): Promise<void> {
    try {
      await this.post('/api/v1/auth/logout', {});
    } finally {
      sessionHint(false);
      this.accessToken = null;
      clearTimeout(this.timer);
    }
  }

  /** fetch with the bearer token; on 401 invalid_token refreshes once and retries. */
  authedFetch: FetchLike = async (req) => {
    const retry = req.clone();
    const token = await this.token();
    let res: Response;
    try {
      res = await this.fetch(withBearer(req, token));
    } catch {
      throw new ApiError(0, 'network');
    }
    if (res.status === 401) {
      const err = await errorFrom(res);
      if (err.code === 'invalid_token') {
        const fresh = await this.refresh();
        try {
          res = await this.fetch(withBearer(retry, fresh));
        } catch {
          throw new ApiError(0, 'network');
        }
        if (res.status === 401) this.drop((await errorFrom(res)).human);
      } else this.drop(err.human);
    }
    return res;
  };
}

function withBearer(req: Request, token: string): Request {
  const headers = new Headers(req.headers);
  headers.set('Authorization', 'Bearer ' + token);
  return new Request(req, { headers });
}

export function createApi(auth: Auth, baseUrl = '') {
  return createClient<paths>({ baseUrl, fetch: auth.authedFetch });
}
export type Api = ReturnType<typeof createApi>;

/** Unwraps an openapi-fetch result: the data, or an ApiError. */
export async function ok<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const r = await p;
  if (!r.response.ok) {
    const e = r.error as { code?: unknown; message?: unknown } | undefined;
    if (e && typeof e.code === 'string')
      throw new ApiError(r.response.status, e.code, typeof e.message === 'string' ? e.message : undefined);
    throw new ApiError(r.response.status, r.response.status >= 500 ? 'internal' : 'status_' + r.response.status);
  }
  return r.data as T;
}

const HINT = 'parley.session';
/**
 * A hint (never a token) that this browser has a refresh cookie, so that a first visit does
 * not start with a refresh request that can only fail.
 */
export function sessionHint(set?: boolean): boolean {
  try {
    const ls = globalThis.localStorage;
    if (!ls) return true;
    if (set === true) ls.setItem(HINT, '1');
    else if (set === false) ls.removeItem(HINT);
    return ls.getItem(HINT) === '1';
  } catch {
    return true;
  }
}

/** Serialises cookie refreshes across this browser's tabs (Web Locks), when available. */
function withLock<T>(f: () => Promise<T>): Promise<T> {
  const locks = (globalThis.navigator as (Navigator & { locks?: LockManager }) | undefined)?.locks;
  if (!locks) return f();
  return locks.request('parley-refresh', f) as Promise<T>;
}
