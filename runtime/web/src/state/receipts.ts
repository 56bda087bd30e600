// Receipt cursors per room and member, and the ticks they give my messages.
export interface Cursor {
  delivered: number;
  read: number;
}
export type RoomCursors = Readonly<Record<string, Cursor>>;

/** Cursors only move forward; reading implies receiving. */
export function applyReceipt(c: RoomCursors, user: string, delivered: number, read: number): RoomCursors {
  const old = c[user] ?? { delivered: 0, read: 0 };
  const r = Math.max(old.read, read);
  const d = Math.max(old.delivered, delivered, r);
  if (d === old.delivered && r === old.read && c[user]) return c;
  return { ...c, [user]: { delivered: d, read: r } };
}

export type Tick = 'Sending' | 'Sent' | 'Delivered' | 'Read' | 'Failed';

/**
 * The tick of my message: others are the room's members except me (when the member list
 * is unknown, the members with cursors). Delivered/Read need every other member.
 */
export function tickFor(
  seq: number | undefined,
  status: 'sending' | 'sent' | 'failed',
  cursors: RoomCursors,
  others: readonly string[],
): Tick {
  if (status === 'failed') return 'Failed';
  if (seq === undefined || status === 'sending') return 'Sending';
  if (others.length === 0) return 'Sent';
  let allDelivered = true;
  let allRead = true;
  for (const u of others) {
    const cur = cursors[u];
    if (!cur || cur.delivered < seq) allDelivered = false;
    if (!cur || cur.read < seq) allRead = false;
  }
  if (allRead) return 'Read';
  if (allDelivered) return 'Delivered';
  return 'Sent';
}

/** Per-member breakdown for one message. */
export function breakdown(
  seq: number,
  cursors: RoomCursors,
  others: readonly string[],
): { user: string; state: 'read' | 'delivered' | 'sent' }[] {
  return others.map((u) => {
    const c = cursors[u];
    return { user: u, state: c && c.read >= seq ? 'read' : c && c.delivered >= seq ? 'delivered' : 'sent' };
  });
}
