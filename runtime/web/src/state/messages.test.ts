import { describe, expect, it } from 'vitest';
import * as M from './messages';

const ME = 'me';
const ROOM = 'r1';

function stored(seq: number, sender = 'u2', extra: Partial<M.StoredInput> = {}): M.StoredInput {
  return {
    clientId: `${sender}-c${seq}`,
    senderId: sender,
    roomId: ROOM,
    seq,
    serverId: `s${seq}`,
    body: `m${seq}`,
    createdAt: new Date(1_700_000_000_000 + seq * 1000).toISOString(),
    ...extra,
  };
}

/** A deterministic PRNG so that failures reproduce. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
function shuffle<T>(xs: T[], r: () => number): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

type Op =
  { k: 'live'; m: M.StoredInput } | { k: 'page'; ms: M.StoredInput[]; kind: 'latest' | 'before' | 'after' } | { k: 'ack'; a: M.AckInput };

function apply(t: M.Timeline, op: Op): M.Timeline {
  switch (op.k) {
    case 'live':
      return M.mergeStored(t, [op.m]);
    case 'page':
      return M.applyPage(t, op.ms, op.kind);
    case 'ack':
      return M.applyAck(t, op.a);
  }
}

describe('mergeStored', () => {
  it('sorts by seq and keeps one entry per message', () => {
    let t = M.emptyTimeline;
    t = M.mergeStored(t, [stored(3), stored(1), stored(2), stored(3), stored(1)]);
    expect(t.stored.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(t.contiguous).toBe(3);
  });

  it('returns the same object when nothing changes', () => {
    const t = M.mergeStored(M.emptyTimeline, [stored(1), stored(2)]);
    expect(M.mergeStored(t, [stored(2), stored(1)])).toBe(t);
  });

  it('keeps hidden messages in sequence order without body', () => {
    const t = M.mergeStored(M.emptyTimeline, [stored(1), stored(2, 'blocked', { hidden: true, body: undefined }), stored(3)]);
    expect(t.stored.map((m) => [m.seq, m.hidden, m.body])).toEqual([
      [1, false, 'm1'],
      [2, true, ''],
      [3, false, 'm3'],
    ]);
    expect(t.contiguous).toBe(3);
  });
});

describe('optimistic sends', () => {
  const at = '2026-01-01T00:00:00Z';
  const pend = (t: M.Timeline, id: string, body = id) =>
    M.addPending(t, { clientId: id, senderId: ME, roomId: ROOM, body, attachments: [], createdAt: at });

  it('keeps pending messages after stored ones, in send order', () => {
    let t = M.mergeStored(M.emptyTimeline, [stored(1)]);
    t = pend(t, 'a');
    t = pend(t, 'b');
    t = M.mergeStored(t, [stored(2)]);
    expect(M.entries(t).map((m) => m.seq ?? m.clientId)).toEqual([1, 2, 'a', 'b']);
    expect(
      M.entries(t)
        .slice(2)
        .map((m) => m.status),
    ).toEqual(['sending', 'sending']);
  });

  it('adding the same client id twice is a no-op', () => {
    const t = pend(M.emptyTimeline, 'a');
    expect(pend(t, 'a')).toBe(t);
  });

  it('an ack turns the pending entry into the stored one', () => {
    let t = pend(M.mergeStored(M.emptyTimeline, [stored(1)]), 'a', 'hello');
    t = M.applyAck(t, { clientId: 'a', senderId: ME, roomId: ROOM, seq: 2, serverId: 'srv2', createdAt: at });
    expect(t.pending).toEqual([]);
    expect(t.stored[1]).toMatchObject({ clientId: 'a', senderId: ME, seq: 2, serverId: 'srv2', body: 'hello', status: 'sent' });
    // repeats change nothing
    expect(M.applyAck(t, { clientId: 'a', senderId: ME, roomId: ROOM, seq: 2, serverId: 'srv2', createdAt: at })).toBe(t);
  });

  it('my own message frame (another device, or before the ack) merges with the pending entry', () => {
    let t = pend(M.emptyTimeline, 'a', 'hello');
    t = M.mergeStored(t, [stored(1, ME, { clientId: 'a', body: 'hello' })]);
    t = M.applyAck(t, { clientId: 'a', senderId: ME, roomId: ROOM, seq: 1, serverId: 's1', createdAt: at });
    expect(M.entries(t)).toHaveLength(1);
    expect(t.stored[0]).toMatchObject({ clientId: 'a', seq: 1 });
  });

  it('another sender using the same client id is a different message', () => {
    let t = pend(M.emptyTimeline, 'x');
    t = M.mergeStored(t, [stored(1, 'u2', { clientId: 'x' })]);
    expect(M.entries(t)).toHaveLength(2);
    expect(t.pending).toHaveLength(1);
  });

  it('failed sends keep the code, can be retried with the same id, or discarded', () => {
    let t = pend(pend(M.emptyTimeline, 'a'), 'b');
    t = M.markFailed(t, 'a', ME, 'rate_limited');
    expect(t.pending[0]).toMatchObject({ status: 'failed', error: 'rate_limited' });
    expect(M.unsent(t).map((m) => m.clientId)).toEqual(['b']);
    t = M.markRetrying(t, 'a', ME);
    expect(t.pending[0]!.status).toBe('sending');
    expect(t.pending[0]!.error).toBeUndefined();
    expect(M.unsent(t).map((m) => m.clientId)).toEqual(['a', 'b']);
    t = M.markFailed(t, 'b', ME, 'blocked');
    t = M.discard(t, 'b', ME);
    expect(t.pending.map((m) => m.clientId)).toEqual(['a']);
    expect(M.discard(t, 'nope', ME)).toBe(t);
  });
});

describe('gaps and resume', () => {
  it('tracks the last contiguous seq from the oldest loaded one', () => {
    let t = M.applyPage(M.emptyTimeline, [stored(48), stored(49), stored(50)], 'latest');
    expect(t.contiguous).toBe(50);
    expect(M.gapAfter(t)).toBeNull();
    t = M.mergeStored(t, [stored(53)]);
    expect(t.contiguous).toBe(50);
    expect(M.gapAfter(t)).toBe(50);
    t = M.applyPage(t, [stored(51), stored(52)], 'after');
    expect(t.contiguous).toBe(53);
    expect(M.gapAfter(t)).toBeNull();
  });

  it('older pages extend backwards and say when the start is reached', () => {
    let t = M.applyPage(M.emptyTimeline, [stored(3), stored(4)], 'latest');
    expect(t.loaded).toBe(true);
    expect(t.hasMoreBefore).toBe(true);
    t = M.applyPage(t, [stored(1), stored(2)], 'before');
    expect(t.hasMoreBefore).toBe(false);
    expect(t.contiguous).toBe(4);
  });

  it('an empty latest page is loaded with nothing before', () => {
    const t = M.applyPage(M.emptyTimeline, [], 'latest');
    expect(t).toMatchObject({ loaded: true, hasMoreBefore: false, contiguous: 0 });
  });

  it('resume points cover loaded rooms only', () => {
    const loaded = M.applyPage(M.emptyTimeline, [stored(1), stored(2), stored(4)], 'latest');
    const live = M.mergeStored(M.emptyTimeline, [stored(9)]);
    expect(M.resumePoints({ a: loaded, b: live })).toEqual({ a: 2 });
  });
});

describe('property: any order, any repeats, same timeline', () => {
  // A room with 30 messages: others' messages, and 6 of mine sent from this device.
  const N = 30;
  const mineSeqs = new Set([4, 9, 10, 17, 25, 30]);
  const all = Array.from({ length: N }, (_, i) => {
    const seq = i + 1;
    return mineSeqs.has(seq) ? stored(seq, ME, { clientId: 'mine' + seq, body: 'mine ' + seq }) : stored(seq);
  });
  const acks: M.AckInput[] = all
    .filter((m) => m.senderId === ME)
    .map((m) => ({ clientId: m.clientId, senderId: ME, roomId: ROOM, seq: m.seq, serverId: m.serverId, createdAt: m.createdAt }));

  function withPending(): M.Timeline {
    let t = M.emptyTimeline;
    for (const m of all.filter((x) => x.senderId === ME))
      t = M.addPending(t, { clientId: m.clientId, senderId: ME, roomId: ROOM, body: m.body!, attachments: [], createdAt: 'pending' });
    return t;
  }

  function ops(r: () => number): Op[] {
    const out: Op[] = [];
    for (const m of all) out.push({ k: 'live', m });
    for (const a of acks) out.push({ k: 'ack', a });
    // history pages (latest, before, after) and a resume replay, overlapping
    out.push({ k: 'page', ms: all.slice(N - 10), kind: 'latest' });
    out.push({ k: 'page', ms: all.slice(0, 20), kind: 'before' });
    out.push({ k: 'page', ms: all.slice(5, 25), kind: 'after' });
    // random duplicates of everything
    const dups = out.slice();
    for (let i = 0; i < 40; i++) out.push(dups[Math.floor(r() * dups.length)]!);
    return shuffle(out, r);
  }

  const canonical = (t: M.Timeline) =>
    M.entries(t).map((m) => ({
      seq: m.seq,
      key: M.msgKey(m),
      body: m.body,
      status: m.status,
      serverId: m.serverId,
      createdAt: m.createdAt,
    }));

  it('is identical for 300 random orders with duplicates', () => {
    let reference: ReturnType<typeof canonical> | null = null;
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      let t = withPending();
      for (const op of ops(r)) t = apply(t, op);
      const c = canonical(t);
      expect(t.pending).toEqual([]);
      expect(t.stored.map((m) => m.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      expect(t.contiguous).toBe(N);
      expect(t.loaded).toBe(true);
      expect(t.hasMoreBefore).toBe(false);
      if (reference === null) reference = c;
      else expect(c).toEqual(reference);
    }
    // Mine took the server's data, keeping their client ids.
    expect(reference!.filter((m) => m.key.startsWith(ME)).map((m) => m.seq)).toEqual([...mineSeqs]);
  });

  it('partial deliveries never duplicate, and leave unacked ones pending in send order', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      let t = withPending();
      const subset = ops(r).filter(() => r() < 0.5);
      for (const op of subset) t = apply(t, op);
      const seqs = t.stored.map((m) => m.seq!);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      const keys = M.entries(t).map(M.msgKey);
      expect(new Set(keys).size).toBe(keys.length);
      // pending ones keep their send order
      const order = t.pending.map((m) => Number(m.clientId.slice(4)));
      expect(order).toEqual([...order].sort((a, b) => a - b));
      // every message of mine is there exactly once, stored or pending
      expect(M.entries(t).filter((m) => m.senderId === ME)).toHaveLength(mineSeqs.size);
      // contiguous is consistent with what is stored
      if (seqs.length > 0) {
        let c = seqs[0]!;
        for (const s of seqs.slice(1))
          if (s === c + 1) c = s;
          else break;
        expect(t.contiguous).toBe(c);
      }
    }
  });
});

describe('replies', () => {
  it('keeps reply_to through pending, ack, live frames and pages', () => {
    let t = M.applyPage(M.emptyTimeline, [stored(1)], 'latest');
    t = M.addPending(t, { clientId: 'c9', senderId: ME, roomId: ROOM, body: 'answer', attachments: [], createdAt: 'x', replyTo: 's1' });
    expect(t.pending[0]!.replyTo).toBe('s1');
    t = M.applyAck(t, { clientId: 'c9', senderId: ME, roomId: ROOM, seq: 2, serverId: 's2', createdAt: 'y' });
    expect(t.pending).toHaveLength(0);
    expect(t.stored[1]!.replyTo).toBe('s1');
    // The same message again from a page: nothing changes.
    const again = M.mergeStored(t, [stored(2, ME, { clientId: 'c9', serverId: 's2', body: 'answer', createdAt: 'y', replyTo: 's1' })]);
    expect(again).toBe(t);
  });

  it('quotes the loaded original, a fetched one, or says it is gone', () => {
    const t = M.applyPage(M.emptyTimeline, [stored(5), stored(6, 'u3', { replyTo: 's5' })], 'latest');
    expect(M.quoteOf(t, {}, 's5')).toMatchObject({ kind: 'loaded', msg: { seq: 5, body: 'm5' } });
    expect(M.quoteOf(t, {}, 's1')).toEqual({ kind: 'missing' });
    const fetched = M.mergeStored(M.emptyTimeline, [stored(1)]).stored[0]!;
    expect(M.quoteOf(t, { s1: fetched }, 's1')).toMatchObject({ kind: 'loaded', msg: { seq: 1 } });
    expect(M.quoteOf(t, { s1: null }, 's1')).toEqual({ kind: 'gone' });
    // Once loaded in the timeline, the timeline's copy wins over a fetched one.
    const t2 = M.applyPage(t, [stored(1, 'u2', { body: 'newer' })], 'before');
    expect(M.quoteOf(t2, { s1: fetched }, 's1')).toMatchObject({ kind: 'loaded', msg: { body: 'newer' } });
  });
});

describe('room events (edits, deletions)', () => {
  const upd = (seq: number, eventSeq: number, extra: Partial<M.UpdateInput> = {}): M.UpdateInput => ({
    serverId: `s${seq}`,
    seq,
    eventSeq,
    body: `m${seq} v${eventSeq}`,
    ...extra,
  });

  it('applies updates in event order, whatever order they arrive in, and idempotently', () => {
    const base = M.startEvents(M.applyPage(M.emptyTimeline, [stored(1), stored(2)], 'latest'), 0);
    const ups = [upd(1, 1), upd(2, 2), upd(1, 3, { editedAt: 'e3' }), upd(2, 4, { deleted: true, body: undefined })];
    const r = rng(7);
    let want: M.Timeline | undefined;
    for (let round = 0; round < 30; round++) {
      let t = base;
      const ops = shuffle([...ups, ...ups.slice(0, 2)], r);
      for (const u of ops) t = M.applyUpdate(t, u);
      expect(t.stored[0]).toMatchObject({ body: 'm1 v3', editedAt: 'e3', eventSeq: 3 });
      expect(t.stored[1]).toMatchObject({ body: '', deleted: true, attachments: [], eventSeq: 4 });
      expect(t.events).toBe(4);
      expect(t.eventsAhead).toEqual([]);
      if (want) expect(t.stored).toEqual(want.stored);
      want = t;
    }
  });

  it('keeps an update for a message not loaded yet and applies it when it loads', () => {
    let t = M.startEvents(M.applyPage(M.emptyTimeline, [stored(10)], 'latest'), 5);
    t = M.applyUpdate(t, upd(3, 6, { deleted: true, body: undefined }));
    expect(t.updates['s3']).toBeDefined();
    expect(t.events).toBe(6);
    t = M.applyPage(t, [stored(3)], 'before');
    expect(t.stored[0]).toMatchObject({ seq: 3, deleted: true, body: '' });
    expect(t.updates['s3']).toBeUndefined();
    // A page older than the applied event does not undo it; a newer state does win.
    t = M.mergeStored(t, [stored(3)]);
    expect(t.stored[0]).toMatchObject({ deleted: true });
  });

  it('moves the events cursor over contiguous events only; hidden ones count', () => {
    let t = M.startEvents(M.applyPage(M.emptyTimeline, [stored(1)], 'latest'), 2);
    t = M.applyUpdate(t, upd(1, 5));
    expect(t.events).toBe(2);
    expect(t.eventsAhead).toEqual([5]);
    t = M.applyUpdate(t, upd(1, 3, { hidden: true }));
    t = M.applyUpdate(t, upd(1, 4));
    expect(t.events).toBe(5);
    expect(t.stored[0]).toMatchObject({ body: 'm1 v5', eventSeq: 5 });
    expect(M.eventPoints({ r1: t })).toEqual({ r1: 5 });
  });
});

describe('reactions', () => {
  it('takes the summary of the newest event, hides people I blocked, remembers recent emoji', () => {
    let t = M.startEvents(M.applyPage(M.emptyTimeline, [stored(1)], 'latest'), 0);
    const r1 = [{ emoji: '🎉', count: 2, users: ['u2', 'me'] }];
    const r2 = [{ emoji: '🎉', count: 1, users: ['u2'] }, { emoji: '👍', count: 1, users: ['u3'] }];
    t = M.applyUpdate(t, { serverId: 's1', seq: 1, eventSeq: 2, body: 'm1', reactions: r2 });
    t = M.applyUpdate(t, { serverId: 's1', seq: 1, eventSeq: 1, body: 'm1', reactions: r1 }); // older: ignored
    expect(t.stored[0]!.reactions).toEqual(r2);
    expect(M.visibleReactions(r1, {}, 'me')).toEqual([{ emoji: '🎉', count: 2, mine: true }]);
    expect(M.visibleReactions(r2, { u3: true }, 'me')).toEqual([{ emoji: '🎉', count: 1, mine: false }]);
    // A deletion drops the reactions with the body.
    t = M.applyUpdate(t, { serverId: 's1', seq: 1, eventSeq: 3, deleted: true });
    expect(t.stored[0]!.reactions).toBeUndefined();
    expect(M.noteRecent(['👍', '🎉'], '🎉')).toEqual(['🎉', '👍']);
    expect(M.noteRecent(['1', '2', '3'], '4', 3)).toEqual(['4', '1', '2']);
  });
});
