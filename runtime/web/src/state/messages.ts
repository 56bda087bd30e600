// Per-room message timelines. Pure functions over immutable values: every input (live
// message frames, acks of my sends, history pages, resume replays) can arrive in any
// order and any number of times and the timeline ends up the same: exactly one entry per
// message, stored ones sorted by seq, pending (not yet acked) ones after them in send order.

export type MsgStatus = 'sending' | 'sent' | 'failed';

export interface Reaction {
  emoji: string;
  count: number;
  users: readonly string[];
}

export interface Msg {
  /** The sender's client id (idempotency key); with senderId it identifies a message. */
  clientId: string;
  senderId: string;
  roomId: string;
  /** Server sequence; undefined while my send is not acked. */
  seq?: number;
  serverId?: string;
  body: string;
  attachments: string[];
  createdAt: string;
  hidden: boolean;
  /** Server id of the message of the same room this one answers. */
  replyTo?: string;
  /** When the body was last edited. */
  editedAt?: string;
  /** Deleted for everyone: a tombstone (no body, no attachments). */
  deleted?: boolean;
  /** The room event that last changed this message (0/absent: none): updates apply only above it. */
  eventSeq?: number;
  /** Each emoji with who reacted, in the order the emoji were first used. */
  reactions?: readonly Reaction[];
  /** Ids of the members the body mentions, resolved by the server. */
  mentions?: readonly string[];
  status: MsgStatus;
  /** Error code of a failed send. */
  error?: string;
}

/** A stored message as the server describes it (history page, message frame). */
export interface StoredInput {
  clientId: string;
  senderId: string;
  roomId: string;
  seq: number;
  serverId: string;
  body?: string;
  attachments?: string[];
  createdAt: string;
  hidden?: boolean;
  replyTo?: string;
  editedAt?: string;
  deleted?: boolean;
  eventSeq?: number;
  reactions?: readonly Reaction[];
  mentions?: readonly string[];
}

/** A room event's new state of a message (a message_updated frame, or an edit/delete answer). */
export interface UpdateInput {
  serverId: string;
  seq: number;
  eventSeq: number;
  body?: string;
  attachments?: string[];
  editedAt?: string;
  deleted?: boolean;
  reactions?: readonly Reaction[];
  /** The members the (edited) body mentions. */
  mentions?: readonly string[];
  /** The viewer may not see this change: it only moves the events cursor. */
  hidden?: boolean;
}

export interface Timeline {
  /** Stored messages, strictly ascending seq. */
  stored: readonly Msg[];
  /** My messages without ack, in send order. */
  pending: readonly Msg[];
  /** Highest seq such that every seq from the oldest stored one up to it is present; 0 if none. */
  contiguous: number;
  /** Whether the latest page has been fetched (the room is "loaded" and resumable). */
  loaded: boolean;
  /** More history before stored[0]. */
  hasMoreBefore: boolean;
  /** Room events cursor: every event up to it is applied (resume asks for those after it). */
  events: number;
  /** Event seqs above `events` already applied (a gap before them keeps the cursor back). */
  eventsAhead: readonly number[];
  /** Updates of messages not loaded yet, by server id: applied when the message loads. */
  updates: Readonly<Record<string, UpdateInput>>;
}

export const emptyTimeline: Timeline = {
  stored: [],
  pending: [],
  contiguous: 0,
  loaded: false,
  hasMoreBefore: true,
  events: 0,
  eventsAhead: [],
  updates: {},
};

export function msgKey(m: Pick<Msg, 'senderId' | 'clientId'>): string {
  return m.senderId + '\u0000' + m.clientId;
}

function computeContiguous(stored: readonly Msg[]): number {
  const first = stored[0];
  if (!first || first.seq === undefined) return 0;
  let last = first.seq;
  for (let i = 1; i < stored.length; i++) {
    const s = stored[i]!.seq!;
    if (s === last + 1) last = s;
    else break;
  }
  return last;
}

function toMsg(m: StoredInput): Msg {
  return {
    clientId: m.clientId,
    senderId: m.senderId,
    roomId: m.roomId,
    seq: m.seq,
    serverId: m.serverId,
    body: m.hidden ? '' : (m.body ?? ''),
    attachments: m.hidden ? [] : (m.attachments ?? []),
    createdAt: m.createdAt,
    hidden: m.hidden ?? false,
    ...(m.replyTo ? { replyTo: m.replyTo } : {}),
    ...(m.editedAt ? { editedAt: m.editedAt } : {}),
    ...(m.deleted ? { deleted: true, body: '', attachments: [] } : {}),
    ...(m.eventSeq ? { eventSeq: m.eventSeq } : {}),
    ...(m.reactions?.length && !m.deleted ? { reactions: m.reactions } : {}),
    ...(m.mentions?.length && !m.deleted && !m.hidden ? { mentions: m.mentions } : {}),
    status: 'sent',
  };
}

function sameStored(a: Msg, b: Msg): boolean {
  return (
    a.seq === b.seq &&
    a.serverId === b.serverId &&
    a.clientId === b.clientId &&
    a.senderId === b.senderId &&
    a.body === b.body &&
    a.hidden === b.hidden &&
    a.replyTo === b.replyTo &&
    a.editedAt === b.editedAt &&
    a.deleted === b.deleted &&
    a.eventSeq === b.eventSeq &&
    JSON.stringify(a.reactions ?? []) === JSON.stringify(b.reactions ?? []) &&
    (a.mentions ?? []).join() === (b.mentions ?? []).join() &&
    a.createdAt === b.createdAt &&
    a.attachments.length === b.attachments.length &&
    a.attachments.every((x, i) => x === b.attachments[i])
  );
}

/** Index of the first stored entry with seq >= s. */
function lowerBound(stored: readonly Msg[], s: number): number {
  let lo = 0;
  let hi = stored.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (stored[mid]!.seq! < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Merges stored messages (any order, duplicates allowed) into the timeline. */
export function mergeStored(t: Timeline, inputs: readonly StoredInput[]): Timeline {
  if (inputs.length === 0) return t;
  let stored = t.stored;
  let pending = t.pending;
  let copied = false;
  for (const input of inputs) {
    let m = toMsg(input);
    const waiting = t.updates[m.serverId ?? ''];
    if (waiting && waiting.eventSeq > (m.eventSeq ?? 0)) m = withUpdate(m, waiting);
    const key = msgKey(m);
    const pi = pending.findIndex((p) => msgKey(p) === key);
    if (pi >= 0) {
      // My optimistic message, now stored: keep its entry identity (client id) with the server's data.
      pending = pending.slice(0, pi).concat(pending.slice(pi + 1));
    }
    const i = lowerBound(stored, m.seq!);
    const at = stored[i];
    if (at && at.seq === m.seq) {
      // Already there: a history page may hide what a live frame showed (blocked since), so the
      // later, fuller, description wins only when it differs; identical repeats change nothing.
      // A description older than the room events already applied to the entry never wins.
      if (sameStored(at, m) || (m.eventSeq ?? 0) < (at.eventSeq ?? 0)) continue;
      if (!copied) {
        stored = stored.slice();
        copied = true;
      }
      (stored as Msg[])[i] = m;
      continue;
    }
    if (!copied) {
      stored = stored.slice();
      copied = true;
    }
    (stored as Msg[]).splice(i, 0, m);
  }
  if (stored === t.stored && pending === t.pending) return t;
  let updates = t.updates;
  for (const input of inputs) {
    if (updates[input.serverId]) {
      if (updates === t.updates) updates = { ...updates };
      delete (updates as Record<string, UpdateInput>)[input.serverId];
    }
  }
  return { ...t, stored, pending, updates, contiguous: computeContiguous(stored) };
}

function withUpdate(m: Msg, u: UpdateInput): Msg {
  const { editedAt: _e, reactions: _r, mentions: _m, ...rest } = m;
  return {
    ...rest,
    ...(u.reactions?.length && !u.deleted ? { reactions: u.reactions } : {}),
    ...(u.mentions?.length && !u.deleted ? { mentions: u.mentions } : {}),
    body: u.deleted ? '' : (u.body ?? ''),
    attachments: u.deleted ? [] : (u.attachments ?? []),
    ...(u.editedAt ? { editedAt: u.editedAt } : {}),
    ...(u.deleted ? { deleted: true } : {}),
    eventSeq: u.eventSeq,
  };
}

function advanceEvents(t: Timeline, eventSeq: number): Pick<Timeline, 'events' | 'eventsAhead'> {
  if (eventSeq <= t.events || t.eventsAhead.includes(eventSeq)) return t;
  let events = t.events;
  const ahead = [...t.eventsAhead, eventSeq].sort((a, b) => a - b);
  while (ahead[0] !== undefined && ahead[0] <= events + 1) events = Math.max(events, ahead.shift()!);
  return { events, eventsAhead: ahead };
}

/**
 * Applies a room event's new state of a message, in any order and any number of times:
 * it changes the message only when its event is newer than the last one applied to it;
 * for a message not loaded yet it is kept and applied when the message loads.
 */
export function applyUpdate(t: Timeline, u: UpdateInput): Timeline {
  const cursor = advanceEvents(t, u.eventSeq);
  let next: Timeline = cursor.events === t.events && cursor.eventsAhead === t.eventsAhead ? t : { ...t, ...cursor };
  if (u.hidden) return next;
  const i = lowerBound(next.stored, u.seq);
  const at = next.stored[i];
  if (at && at.seq === u.seq) {
    if (u.eventSeq <= (at.eventSeq ?? 0)) return next;
    const stored = next.stored.slice();
    stored[i] = withUpdate(at, u);
    return { ...next, stored };
  }
  const waiting = next.updates[u.serverId];
  if (waiting && waiting.eventSeq >= u.eventSeq) return next;
  next = { ...next, updates: { ...next.updates, [u.serverId]: u } };
  return next;
}

/** The events cursor a history page gives: taken only when the room's first page loads. */
export function startEvents(t: Timeline, eventSeq: number): Timeline {
  if (eventSeq <= t.events) return t;
  let next: Timeline = { ...t, events: eventSeq, eventsAhead: [] };
  for (const s of t.eventsAhead) if (s > eventSeq) next = { ...next, ...advanceEvents(next, s) };
  return next;
}

/** The resume frame's events: every loaded room's events cursor. */
export function eventPoints(timelines: Readonly<Record<string, Timeline>>): Record<string, number> {
  const rooms: Record<string, number> = {};
  for (const [id, t] of Object.entries(timelines)) if (t.loaded) rooms[id] = t.events;
  return rooms;
}

/** My new message, optimistic, at the end. */
export function addPending(t: Timeline, m: Omit<Msg, 'status' | 'hidden' | 'seq' | 'serverId'>): Timeline {
  const key = msgKey(m);
  if (t.pending.some((p) => msgKey(p) === key) || t.stored.some((s) => msgKey(s) === key)) return t;
  return { ...t, pending: [...t.pending, { ...m, hidden: false, status: 'sending' }] };
}

export interface AckInput {
  clientId: string;
  senderId: string;
  roomId: string;
  seq: number;
  serverId: string;
  createdAt: string;
}

/** An ack of my send: the pending entry becomes the stored one. Unknown or repeated acks are no-ops. */
export function applyAck(t: Timeline, a: AckInput): Timeline {
  const key = msgKey(a);
  const p = t.pending.find((x) => msgKey(x) === key);
  if (!p) return t;
  return mergeStored(t, [
    {
      clientId: a.clientId,
      senderId: a.senderId,
      roomId: a.roomId,
      seq: a.seq,
      serverId: a.serverId,
      body: p.body,
      attachments: p.attachments,
      createdAt: a.createdAt,
      ...(p.replyTo ? { replyTo: p.replyTo } : {}),
    },
  ]);
}

function updatePending(t: Timeline, clientId: string, senderId: string, f: (m: Msg) => Msg | null): Timeline {
  const key = senderId + '\u0000' + clientId;
  const i = t.pending.findIndex((p) => msgKey(p) === key);
  if (i < 0) return t;
  const next = f(t.pending[i]!);
  const pending = t.pending.slice();
  if (next) pending[i] = next;
  else pending.splice(i, 1);
  return { ...t, pending };
}

export function markFailed(t: Timeline, clientId: string, senderId: string, code: string): Timeline {
  return updatePending(t, clientId, senderId, (m) => ({ ...m, status: 'failed', error: code }));
}

export function markRetrying(t: Timeline, clientId: string, senderId: string): Timeline {
  return updatePending(t, clientId, senderId, (m) => {
    const { error: _e, ...rest } = m;
    return { ...rest, status: 'sending' };
  });
}

export function discard(t: Timeline, clientId: string, senderId: string): Timeline {
  return updatePending(t, clientId, senderId, () => null);
}

/** Applies a history page. latest: the page without cursors (marks the timeline loaded). */
export function applyPage(t: Timeline, msgs: readonly StoredInput[], kind: 'latest' | 'before' | 'after'): Timeline {
  const merged = mergeStored(t, msgs);
  // Sequences are gap-free from 1, so there is older history exactly when the oldest is above 1.
  const hasMoreBefore = (merged.stored[0]?.seq ?? 1) > 1;
  const loaded = merged.loaded || kind === 'latest';
  if (merged === t && hasMoreBefore === t.hasMoreBefore && loaded === t.loaded) return t;
  return { ...merged, loaded, hasMoreBefore };
}

/** Where to fetch from when the timeline has a hole after its contiguous run: the `after` cursor, or null. */
export function gapAfter(t: Timeline): number | null {
  const last = t.stored[t.stored.length - 1];
  if (!last || last.seq === undefined) return null;
  return last.seq > t.contiguous ? t.contiguous : null;
}

/** The highest stored seq, 0 if none. */
export function lastSeq(t: Timeline): number {
  return t.stored[t.stored.length - 1]?.seq ?? 0;
}

/** Every entry to render: stored by seq, then pending in send order. */
export function entries(t: Timeline): readonly Msg[] {
  return t.pending.length === 0 ? t.stored : [...t.stored, ...t.pending];
}

/** Pending sends to (re)send after a reconnect (not the failed ones). */
export function unsent(t: Timeline): readonly Msg[] {
  return t.pending.filter((m) => m.status === 'sending');
}

/** The resume frame's rooms: every loaded room's last contiguous sequence. */
export function resumePoints(timelines: Readonly<Record<string, Timeline>>): Record<string, number> {
  const rooms: Record<string, number> = {};
  for (const [id, t] of Object.entries(timelines)) if (t.loaded) rooms[id] = t.contiguous;
  return rooms;
}

/** The loaded message with this server id, if any (stored messages only). */
export function findByServerId(t: Timeline | undefined, serverId: string): Msg | undefined {
  return t?.stored.find((m) => m.serverId === serverId);
}

/**
 * What a reply's quote shows: the original when it is loaded here or was fetched (`fetched`,
 * by server id), `missing` when it must still be fetched, `gone` when the server said the
 * room holds no such message.
 */
export type Quote = { kind: 'loaded'; msg: Msg } | { kind: 'missing' } | { kind: 'gone' };

export function quoteOf(
  t: Timeline | undefined,
  fetched: Readonly<Record<string, Msg | null>>,
  serverId: string,
): Quote {
  const here = findByServerId(t, serverId);
  if (here) return { kind: 'loaded', msg: here };
  const f = fetched[serverId];
  if (f === null) return { kind: 'gone' };
  if (f) return { kind: 'loaded', msg: f };
  return { kind: 'missing' };
}

/** The reaction chips to show: people I blocked left out (their count with them). */
export function visibleReactions(
  rs: readonly Reaction[] | undefined,
  blocked: Readonly<Record<string, true>>,
  me: string,
): { emoji: string; count: number; mine: boolean }[] {
  const out: { emoji: string; count: number; mine: boolean }[] = [];
  for (const r of rs ?? []) {
    const users = r.users.filter((u) => !blocked[u]);
    if (users.length > 0) out.push({ emoji: r.emoji, count: users.length, mine: users.includes(me) });
  }
  return out;
}

/** Recently used emoji, most recent first, at most `max`. */
export function noteRecent(recent: readonly string[], emoji: string, max = 8): string[] {
  return [emoji, ...recent.filter((e) => e !== emoji)].slice(0, max);
}
