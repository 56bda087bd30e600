// Presence: who is online, as the server reports it. The server sends presence_batch
// frames (user → online, coalesced per connection about once a second) for the users the
// client watches; the client names them in a watch frame: what it shows, the peers of its
// direct chats and the members of the room it has open (docs/protocol.md).
export type Presence = Readonly<Record<string, boolean>>;

/** The most users one watch frame may name (protocol.MaxWatchUsers). */
export const MAX_WATCH = 500;

/** Applies a presence_batch; returns the same object when nothing changed. */
export function applyBatch(p: Presence, batch: Readonly<Record<string, boolean | undefined>>): Presence {
  let next: Record<string, boolean> | undefined;
  for (const [user, online] of Object.entries(batch)) {
    if (online === undefined || p[user] === online) continue;
    next ??= { ...p };
    next[user] = online;
  }
  return next ?? p;
}

interface RoomLike {
  readonly room: { readonly kind?: string };
}

/**
 * The users to watch, sorted: the other member of every direct chat (shown with a dot in
 * the room list), then the members of the open room, without me, at most MAX_WATCH.
 */
export function watchList(
  me: string,
  rooms: Readonly<Record<string, RoomLike>>,
  members: Readonly<Record<string, readonly string[]>>,
  activeRoom: string | null,
): string[] {
  const direct = new Set<string>();
  for (const [id, e] of Object.entries(rooms)) {
    if (e.room.kind !== 'direct') continue;
    for (const u of members[id] ?? []) if (u !== me) direct.add(u);
  }
  const out = [...direct].sort();
  if (activeRoom) {
    const shown = (members[activeRoom] ?? []).filter((u) => u !== me && !direct.has(u)).sort();
    out.push(...shown);
  }
  return out.slice(0, MAX_WATCH);
}
