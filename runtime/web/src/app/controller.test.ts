// The controller end to end over a fake server (fetch) and a fake WebSocket: sends made
// while disconnected go out after the reconnect with the same client id, resume asks from
// the last contiguous seq, and duplicates from every path leave one message each.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Controller } from './controller';
import { FakeWS, lastWS } from '../api/fakews';
import { entries } from '../state/messages';

const ws = lastWS;

const ROOM = 'room1';
const at = (s: number) => new Date(1_700_000_000_000 + s * 1000).toISOString();
const history = [1, 2, 3].map((seq) => ({
  id: 'm' + seq,
  room_id: ROOM,
  seq,
  sender_id: 'bob',
  client_id: 'b' + seq,
  body: 'hi ' + seq,
  created_at: at(seq),
}));

function server() {
  const calls: string[] = [];
  const fetch = async (r: Request) => {
    const u = new URL(r.url);
    calls.push(r.method + ' ' + u.pathname + u.search);
    const j = (body: unknown, status = 200) =>
      new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
    switch (u.pathname) {
      case '/api/v1/auth/login':
        return j({
          access_token: 'tok',
          access_expires_at: new Date(Date.now() + 900_000).toISOString(),
          user: { id: 'me', username: 'me' },
        });
      case '/api/v1/me':
        return j({ id: 'me', username: 'me' });
      case '/api/v1/rooms':
        return j({
          rooms: [
            {
              room: { id: ROOM, kind: 'direct', last_seq: 3, created_at: at(0) },
              last_message: history[2],
              unread: 3,
              receipt: { read_seq: 0 },
            },
          ],
        });
      case '/api/v1/blocks':
        return j({ users: [] });
      case `/api/v1/rooms/${ROOM}/members`:
        return j({ members: [{ user_id: 'me' }, { user_id: 'bob' }] });
      case `/api/v1/rooms/${ROOM}/receipts`:
        return j({ receipts: [] });
      case `/api/v1/rooms/${ROOM}/messages`: {
        const after = u.searchParams.get('after');
        const msgs = after === null ? history : history.filter((m) => m.seq > Number(after));
        return j({ messages: msgs, has_more: false });
      }
      case '/api/v1/users/bob':
        return j({ id: 'bob', username: 'bob', display_name: 'Bob' });
      default:
        return j({ code: 'not_found', message: 'no' }, 404);
    }
  };
  return { calls, fetch };
}

describe('Controller', () => {
  beforeEach(() => {
    FakeWS.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('re-sends after a reconnect with the same client id, resumes, and never duplicates', async () => {
    const srv = server();
    const ctl = new Controller({ WebSocket: FakeWS, fetch: srv.fetch, base: 'http://parley.test', wsUrl: 'ws://parley.test/ws' });
    await ctl.login('me', 'password1');
    await vi.advanceTimersByTimeAsync(10);
    expect(ctl.s.phase).toBe('ready');
    expect(ws().protocols).toEqual(['parley.v1', 'parley.auth.tok']);
    ws().open();
    expect(ctl.roomName(ROOM)).toBe('Bob');
    expect(ctl.s.rooms[ROOM]!.unread).toBe(3);

    ctl.openRoom(ROOM);
    await vi.advanceTimersByTimeAsync(10);
    expect(entries(ctl.s.timelines[ROOM]!).map((m) => m.seq)).toEqual([1, 2, 3]);

    // The connection drops; I send two messages meanwhile.
    ws().drop();
    expect(ctl.s.conn).toBe('down');
    ctl.send(ROOM, 'first');
    ctl.send(ROOM, 'second');
    const pending = ctl.s.timelines[ROOM]!.pending;
    expect(pending.map((m) => [m.body, m.status])).toEqual([
      ['first', 'sending'],
      ['second', 'sending'],
    ]);
    const [c1, c2] = pending.map((m) => m.clientId);

    // Reconnect: resume from seq 3, then both sends with their client ids.
    await vi.advanceTimersByTimeAsync(20_000);
    const second = ws();
    expect(FakeWS.all.length).toBeGreaterThan(1);
    second.open();
    expect(second.sent.slice(0, 3)).toEqual([
      { type: 'resume', rooms: { [ROOM]: 3 }, events: { [ROOM]: 0 } },
      { type: 'send', id: c1, room: ROOM, body: 'first' },
      { type: 'send', id: c2, room: ROOM, body: 'second' },
    ]);

    // The server answers in a messy order: a replay of 3, my own message frame before its ack,
    // a message from Bob, the acks, and duplicates of everything.
    const mine1 = { type: 'message', id: c1, room: ROOM, message_id: 'm4', seq: 4, sender: 'me', body: 'first', created_at: at(4) };
    const bob5 = { type: 'message', id: 'b5', room: ROOM, message_id: 'm5', seq: 5, sender: 'bob', body: 'yo', created_at: at(5) };
    const ack1 = { type: 'ack', id: c1, room: ROOM, message_id: 'm4', seq: 4, created_at: at(4) };
    const ack2 = { type: 'ack', id: c2, room: ROOM, message_id: 'm6', seq: 6, created_at: at(6) };
    const replay3 = { type: 'message', id: 'b3', room: ROOM, message_id: 'm3', seq: 3, sender: 'bob', body: 'hi 3', created_at: at(3) };
    for (const f of [replay3, mine1, bob5, ack1, ack2, mine1, ack2, bob5, replay3]) second.frame(f);
    await vi.advanceTimersByTimeAsync(500);

    const t = ctl.s.timelines[ROOM]!;
    expect(t.pending).toEqual([]);
    expect(entries(t).map((m) => [m.seq, m.body, m.clientId])).toEqual([
      [1, 'hi 1', 'b1'],
      [2, 'hi 2', 'b2'],
      [3, 'hi 3', 'b3'],
      [4, 'first', c1],
      [5, 'yo', 'b5'],
      [6, 'second', c2],
    ]);
    expect(t.contiguous).toBe(6);
    // Bob's message was marked delivered.
    expect(second.sent).toContainEqual({ type: 'mark', room: ROOM, kind: 'delivered', seq: 5 });
    // No send timed out.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(entries(ctl.s.timelines[ROOM]!).every((m) => m.status === 'sent')).toBe(true);
    ctl.logout().catch(() => {});
  });

  it('watches its direct-chat peers on every connection and applies presence batches', async () => {
    const srv = server();
    const ctl = new Controller({ WebSocket: FakeWS, fetch: srv.fetch, base: 'http://parley.test', wsUrl: 'ws://parley.test/ws' });
    await ctl.login('me', 'password1');
    await vi.advanceTimersByTimeAsync(10);
    ws().open();
    await vi.advanceTimersByTimeAsync(500);
    const watches = () => ws().sent.filter((f) => f.type === 'watch');
    expect(watches()).toEqual([{ type: 'watch', users: ['bob'] }]);
    ws().frame({ type: 'presence_batch', presence: { bob: true, carol: false } });
    expect(ctl.s.presence).toEqual({ bob: true, carol: false });
    // Unchanged: no second watch on this connection.
    ctl.openRoom(ROOM);
    await vi.advanceTimersByTimeAsync(500);
    expect(watches()).toHaveLength(1);
    // A new connection watches again.
    ws().drop();
    await vi.advanceTimersByTimeAsync(20_000);
    ws().open();
    await vi.advanceTimersByTimeAsync(500);
    expect(watches()).toEqual([{ type: 'watch', users: ['bob'] }]);
    ws().frame({ type: 'presence_batch', presence: { bob: false } });
    expect(ctl.s.presence['bob']).toBe(false);
  });

  it('a gap in live messages fetches the history after the contiguous seq', async () => {
    const srv = server();
    const ctl = new Controller({ WebSocket: FakeWS, fetch: srv.fetch, base: 'http://parley.test', wsUrl: 'ws://parley.test/ws' });
    await ctl.login('me', 'password1');
    await vi.advanceTimersByTimeAsync(10);
    ws().open();
    ctl.openRoom(ROOM);
    await vi.advanceTimersByTimeAsync(10);
    history.push({ id: 'm4', room_id: ROOM, seq: 4, sender_id: 'bob', client_id: 'b4', body: 'hi 4', created_at: at(4) });
    ws().frame({ type: 'message', id: 'b5', room: ROOM, message_id: 'm5', seq: 5, sender: 'bob', body: 'hi 5', created_at: at(5) });
    await vi.advanceTimersByTimeAsync(10);
    expect(srv.calls).toContain(`GET /api/v1/rooms/${ROOM}/messages?after=3&limit=200`);
    expect(entries(ctl.s.timelines[ROOM]!).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    history.pop();
  });

  it('a burst of messages while reading sends one read mark with the highest seq', async () => {
    // The controller marks read only in a visible page.
    vi.stubGlobal('document', { visibilityState: 'visible' });
    try {
      const srv = server();
      const ctl = new Controller({ WebSocket: FakeWS, fetch: srv.fetch, base: 'http://parley.test', wsUrl: 'ws://parley.test/ws' });
      await ctl.login('me', 'password1');
      await vi.advanceTimersByTimeAsync(10);
      ws().open();
      ctl.openRoom(ROOM);
      await vi.advanceTimersByTimeAsync(500);
      const before = ws().sent.filter((f) => f.type === 'mark' && f.kind === 'read').length;
      for (let seq = 4; seq <= 53; seq++) {
        ws().frame({ type: 'message', id: 'b' + seq, room: ROOM, message_id: 'm' + seq, seq, sender: 'bob', body: 'hi', created_at: at(seq) });
      }
      await vi.advanceTimersByTimeAsync(500);
      const reads = ws().sent.filter((f) => f.type === 'mark' && f.kind === 'read').slice(before);
      expect(reads).toEqual([{ type: 'mark', room: ROOM, kind: 'read', seq: 53 }]);
      ctl.logout().catch(() => {});
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('a refused send is failed with its code, and a retry uses the same client id', async () => {
    const srv = server();
    const ctl = new Controller({ WebSocket: FakeWS, fetch: srv.fetch, base: 'http://parley.test', wsUrl: 'ws://parley.test/ws' });
    await ctl.login('me', 'password1');
    await vi.advanceTimersByTimeAsync(10);
    ws().open();
    ctl.send(ROOM, 'hello');
    const id = ctl.s.timelines[ROOM]!.pending[0]!.clientId;
    ws().frame({ type: 'error', code: 'blocked', message: 'blocked', ref: 'send', id, room: ROOM });
    expect(ctl.s.timelines[ROOM]!.pending[0]).toMatchObject({ status: 'failed', error: 'blocked' });
    ctl.retry(ROOM, id);
    expect(ctl.s.timelines[ROOM]!.pending[0]!.status).toBe('sending');
    expect(
      ws()
        .sent.filter((f) => f.type === 'send')
        .map((f) => (f as { id: string }).id),
    ).toEqual([id, id]);
    // no answer: failed after the timeout
    await vi.advanceTimersByTimeAsync(16_000);
    expect(ctl.s.timelines[ROOM]!.pending[0]).toMatchObject({ status: 'failed', error: 'timeout' });
    ctl.discard(ROOM, id);
    expect(ctl.s.timelines[ROOM]!.pending).toEqual([]);
  });

  it('a resync resumes and re-sends unacked messages on the same connection', async () => {
    const srv = server();
    const ctl = new Controller({ WebSocket: FakeWS, fetch: srv.fetch, base: 'http://parley.test', wsUrl: 'ws://parley.test/ws' });
    await ctl.login('me', 'password1');
    await vi.advanceTimersByTimeAsync(10);
    ws().open();
    ctl.openRoom(ROOM);
    await vi.advanceTimersByTimeAsync(10);
    ctl.send(ROOM, 'hello');
    const id = ctl.s.timelines[ROOM]!.pending[0]!.clientId;
    const sockets = FakeWS.all.length;
    const before = ws().sent.length;
    ws().frame({ type: 'resync' });
    expect(FakeWS.all.length).toBe(sockets);
    expect(ws().sent.slice(before)).toEqual([
      { type: 'resume', rooms: { [ROOM]: 3 }, events: { [ROOM]: 0 } },
      { type: 'send', id, room: ROOM, body: 'hello' },
    ]);
  });
});
