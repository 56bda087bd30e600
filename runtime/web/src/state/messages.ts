// Per-room message timelines. Pure functions over immutable values: every input (live
// message frames, acks of my sends, history pages, resume replays) can arrive in any
// order and any number of times and the timeline ends up the same: exactly one entry per
// message, stored ones sorted by seq, pending (not yet acked) ones after them in send order.

export type MsgStatus = 'sending' | 'sent' | 'failed';

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
}

export const emptyTimeline: Timeline = { stored: [], pending: [], contiguous: 0, loaded: false, hasMoreBefore: true };

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
    const m = toMsg(input);
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
      if (sameStored(at, m)) continue;
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
  return { ...t, stored, pending, contiguous: computeContiguous(stored) };
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
