import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Socket } from './ws';
import { FakeWS, lastWS } from './fakews';
import type { ClientFrame, ServerFrame } from '../gen/frames';

const last = lastWS;

function make(extra: Partial<ConstructorParameters<typeof Socket>[0]> = {}) {
  let n = 0;
  const frames: ServerFrame[] = [];
  const states: string[] = [];
  const opens = vi.fn();
  const s = new Socket({
    url: () => 'ws://parley.test/ws',
    token: async () => 'tok' + ++n,
    WebSocket: FakeWS,
    onFrame: (f) => frames.push(f),
    onOpen: opens,
    onState: (st) => states.push(st),
    random: () => 0.5,
    ...extra,
  });
  return { s, frames, states, opens };
}

describe('Socket', () => {
  beforeEach(() => {
    FakeWS.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('connects with the subprotocols and a fresh token each time', async () => {
    const { s, opens } = make();
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(last().protocols).toEqual(['parley.v1', 'parley.auth.tok1']);
    last().open();
    expect(opens).toHaveBeenCalledTimes(1);
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWS.all).toHaveLength(2);
    expect(last().protocols).toEqual(['parley.v1', 'parley.auth.tok2']);
    last().open();
    expect(opens).toHaveBeenCalledTimes(2);
    s.stop();
  });

  it('backs off exponentially with jitter, and resets after a successful open', async () => {
    const { s } = make({ baseDelayMs: 500, maxDelayMs: 4000 });
    expect([s.nextDelay(), s.nextDelay(), s.nextDelay(), s.nextDelay(), s.nextDelay()]).toEqual([375, 750, 1500, 3000, 3000]);
    const { s: s2 } = make({ baseDelayMs: 500 });
    s2.start();
    await vi.advanceTimersByTimeAsync(0);
    last().drop(); // attempt 0: 375 ms
    await vi.advanceTimersByTimeAsync(374);
    expect(FakeWS.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWS.all).toHaveLength(2);
    last().drop(); // attempt 1: 750 ms
    await vi.advanceTimersByTimeAsync(749);
    expect(FakeWS.all).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWS.all).toHaveLength(3);
    last().open();
    last().drop(); // reset: 375 ms again
    await vi.advanceTimersByTimeAsync(375);
    expect(FakeWS.all).toHaveLength(4);
    s2.stop();
  });

  it('reconnects now on reconnectNow (online / visible) instead of waiting', async () => {
    const { s } = make({ baseDelayMs: 10_000 });
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    last().drop();
    expect(s.state).toBe('down');
    s.reconnectNow();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWS.all).toHaveLength(2);
    s.stop();
  });

  it('a reconnect frame reconnects after retry_after_ms', async () => {
    const { s, frames, opens } = make();
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    const first = last();
    first.open();
    first.frame({ type: 'reconnect', code: 'server_shutdown', retry_after_ms: 2000 } as ServerFrame);
    expect(first.closed).not.toBeNull();
    expect(frames).toEqual([]);
    await vi.advanceTimersByTimeAsync(1999);
    expect(FakeWS.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(FakeWS.all).toHaveLength(2);
    last().open();
    expect(opens).toHaveBeenCalledTimes(2);
    s.stop();
  });

  it('pings every 20 s and treats 45 s of silence as a dead socket', async () => {
    const { s } = make();
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    const ws = last();
    ws.open();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(ws.sent.filter((f) => f.type === 'ping')).toHaveLength(1);
    ws.frame({ type: 'pong', id: 'k1' } as ServerFrame);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(ws.sent.filter((f) => f.type === 'ping')).toHaveLength(2);
    expect(FakeWS.all).toHaveLength(1);
    // silence: no pong, nothing
    await vi.advanceTimersByTimeAsync(26_000);
    expect(ws.closed).not.toBeNull();
    expect(FakeWS.all).toHaveLength(2);
    s.stop();
  });

  it('a probe reconnects within 5 s when nothing answers, and leaves a live socket alone', async () => {
    const { s } = make();
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    const ws = last();
    ws.open();
    await vi.advanceTimersByTimeAsync(1_000);
    // live: the probe's ping is answered, the socket stays
    s.probe();
    const ping = ws.sent.filter((f) => f.type === 'ping').at(-1) as { id?: string };
    expect(ping).toBeDefined();
    await vi.advanceTimersByTimeAsync(500);
    ws.frame({ type: 'pong', id: ping.id } as ServerFrame);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(ws.closed).toBeNull();
    expect(FakeWS.all).toHaveLength(1);
    // network gone (offline event): no answer, so reconnect well before the 45 s rule
    s.probe();
    await vi.advanceTimersByTimeAsync(6_500); // the probe times out at 5 s, checked every second
    expect(ws.closed).not.toBeNull();
    expect(FakeWS.all).toHaveLength(2);
    s.stop();
  });

  it('send returns false while down; frames are delivered while open', async () => {
    const { s, frames } = make();
    expect(s.send({ type: 'typing', room: 'r' })).toBe(false);
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(s.send({ type: 'typing', room: 'r' })).toBe(false);
    last().open();
    expect(s.send({ type: 'typing', room: 'r' })).toBe(true);
    last().frame({ type: 'presence', user: 'u', online: true } as ServerFrame);
    expect(frames).toEqual([{ type: 'presence', user: 'u', online: true }]);
    s.stop();
  });

  it('onOpen after every reconnect can resume and re-send with the same client ids', async () => {
    // What the controller does in onOpen, driven through the socket.
    const pending = [{ type: 'send', id: 'c1', room: 'r', body: 'hi' } as ClientFrame];
    let s!: Socket;
    ({ s } = make({
      onOpen: () => {
        s.send({ type: 'resume', rooms: { r: 41 } });
        for (const f of pending) s.send(f);
      },
    }));
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    last().open();
    for (const ws of FakeWS.all)
      expect(ws.sent).toEqual([
        { type: 'resume', rooms: { r: 41 } },
        { type: 'send', id: 'c1', room: 'r', body: 'hi' },
      ]);
    s.stop();
  });

  it('asks for a fresh token after repeated failed connects (a token the server refuses)', async () => {
    const asked: boolean[] = [];
    const { s } = make({
      token: async (fresh) => {
        asked.push(fresh);
        return 'tok';
      },
    });
    s.start();
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(0);
      last().drop();
      await vi.advanceTimersByTimeAsync(5000);
    }
    expect(asked.slice(0, 4)).toEqual([false, false, true, true]);
    last().open();
    last().drop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(asked[asked.length - 1]).toBe(false);
    s.stop();
  });

  it('a token failure retries with backoff', async () => {
    let fail = true;
    const { s } = make({ token: async () => (fail ? Promise.reject(new Error('offline')) : 'tok') });
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWS.all).toHaveLength(0);
    fail = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWS.all).toHaveLength(1);
    s.stop();
  });
});
