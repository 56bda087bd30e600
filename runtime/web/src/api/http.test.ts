import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Auth, createApi, ok, ApiError } from './http';

const BASE = 'http://parley.test';

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

function tokens(n: number, ttlMs = 15 * 60_000) {
  return { access_token: 'tok' + n, access_expires_at: new Date(Date.now() + ttlMs).toISOString(), token_type: 'Bearer' };
}

describe('Auth', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  it('logs in with the refresh cookie mode and keeps the token in memory', async () => {
    const calls: Request[] = [];
    const auth = new Auth({
      base: BASE,
      fetch: async (r) => {
        calls.push(r);
        return json(200, { ...tokens(1), user: { id: 'u1', username: 'alice' } });
      },
    });
    const user = await auth.login('alice', 'password1');
    expect(user.username).toBe('alice');
    expect(calls[0]!.headers.get('X-Parley-Refresh')).toBe('cookie');
    expect(calls[0]!.credentials).toBe('same-origin');
    expect(await auth.token()).toBe('tok1');
  });

  it('concurrent callers share one refresh', async () => {
    let refreshes = 0;
    const auth = new Auth({
      base: BASE,
      fetch: async (r) => {
        expect(r.url).toBe(BASE + '/api/v1/auth/refresh');
        expect(await r.text()).toBe('{}');
        refreshes++;
        await new Promise((res) => setTimeout(res, 10));
        return json(200, tokens(refreshes));
      },
    });
    const all = Promise.all([auth.refresh(), auth.token(), auth.token(), auth.refresh()]);
    await vi.advanceTimersByTimeAsync(20);
    expect(await all).toEqual(['tok1', 'tok1', 'tok1', 'tok1']);
    expect(refreshes).toBe(1);
    // a later refresh is a new request
    const p = auth.refresh();
    await vi.advanceTimersByTimeAsync(20);
    expect(await p).toBe('tok2');
  });

  it('refreshes shortly before the access token expires', async () => {
    let n = 0;
    const auth = new Auth({ base: BASE, earlyMs: 60_000, fetch: async () => json(200, tokens(++n, 5 * 60_000)) });
    await auth.refresh();
    expect(n).toBe(1);
    await vi.advanceTimersByTimeAsync(3 * 60_000);
    expect(n).toBe(1);
    await vi.advanceTimersByTimeAsync(61_000);
    expect(n).toBe(2);
    expect(await auth.token()).toBe('tok2');
  });

  it('a failed refresh logs out with a message', async () => {
    const out = vi.fn();
    const auth = new Auth({
      base: BASE,
      onLoggedOut: out,
      fetch: async (r) => (r.url.endsWith('/login') ? json(200, tokens(1)) : json(401, { code: 'invalid_token', message: 'expired' })),
    });
    await auth.login('a', 'b');
    const p = auth.refresh();
    const check = expect(p).rejects.toBeInstanceOf(ApiError);
    await vi.advanceTimersByTimeAsync(1000);
    await check;
    expect(out).toHaveBeenCalledWith('Your session has expired. Please log in again.');
    expect(auth.loggedIn).toBe(false);
  });

  it('a refresh that lost a race with another tab tries once more', async () => {
    let n = 0;
    const auth = new Auth({
      base: BASE,
      fetch: async () => (++n === 1 ? json(401, { code: 'invalid_token', message: 'x' }) : json(200, tokens(n))),
    });
    const p = auth.refresh();
    await vi.advanceTimersByTimeAsync(1000);
    expect(await p).toBe('tok2');
    expect(n).toBe(2);
  });

  it('on 401 invalid_token refreshes once and retries the request', async () => {
    const seen: string[] = [];
    let n = 0;
    const auth = new Auth({
      base: BASE,
      fetch: async (r) => {
        if (r.url.endsWith('/auth/refresh')) return json(200, tokens(++n));
        seen.push(r.headers.get('Authorization') ?? '');
        return r.headers.get('Authorization') === 'Bearer tok1'
          ? json(401, { code: 'invalid_token', message: 'x' })
          : json(200, { id: 'u1', username: 'alice' });
      },
    });
    const api = createApi(auth, BASE);
    const me = await ok(api.GET('/api/v1/me'));
    expect(me.username).toBe('alice');
    expect(seen).toEqual(['Bearer tok1', 'Bearer tok2']);
  });

  it('retries only once', async () => {
    let n = 0;
    let requests = 0;
    const out = vi.fn();
    const auth = new Auth({
      base: BASE,
      onLoggedOut: out,
      fetch: async (r) => {
        if (r.url.endsWith('/auth/refresh')) return json(200, tokens(++n));
        requests++;
        return json(401, { code: 'invalid_token', message: 'x' });
      },
    });
    const api = createApi(auth, BASE);
    await expect(ok(api.GET('/api/v1/me'))).rejects.toMatchObject({ code: 'invalid_token' });
    expect(requests).toBe(2);
    expect(out).toHaveBeenCalledOnce();
  });

  it('maps API errors to human messages, unknown codes included', async () => {
    const auth = new Auth({
      base: BASE,
      fetch: async (r) =>
        r.url.endsWith('/auth/refresh') ? json(200, tokens(1)) : json(409, { code: 'username_taken', message: 'taken' }),
    });
    const api = createApi(auth, BASE);
    await expect(ok(api.GET('/api/v1/me'))).rejects.toMatchObject({ code: 'username_taken', message: 'That username is taken.' });
    const auth2 = new Auth({
      base: BASE,
      fetch: async (r) => (r.url.endsWith('/auth/refresh') ? json(200, tokens(1)) : json(418, { code: 'teapot_mode', message: '' })),
    });
    await expect(ok(createApi(auth2, BASE).GET('/api/v1/me'))).rejects.toMatchObject({ message: 'Something went wrong (teapot_mode).' });
  });

  it('network failures are ApiErrors too', async () => {
    const auth = new Auth({ base: BASE, fetch: async () => Promise.reject(new TypeError('fetch failed')) });
    await expect(auth.login('a', 'b')).rejects.toMatchObject({ code: 'network' });
  });
});
