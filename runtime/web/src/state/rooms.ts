// The room list: summaries, unread counts and ordering by newest activity.
import type { components } from '../gen/api';

export type Room = components['schemas']['Room'];
export type RoomSummary = components['schemas']['RoomSummary'];

export interface Preview {
  seq?: number;
  senderId: string;
  body: string;
  attachments: number;
  hidden: boolean;
  at: string;
}

/** My notification setting for a room. */
export type NotifyLevel = components['schemas']['NotificationLevel'];

export interface RoomEntry {
  id: string;
  room: Room;
  /** all, mentions (a push only when I am mentioned) or muted. */
  level: NotifyLevel;
  last?: Preview;
  unread: number;
  /** How many of the unread messages mention me. */
  mentions: number;
  /** My own read cursor. */
  myRead: number;
  /** ISO time of the newest activity (last message, or creation). */
  activity: string;
}

export type Rooms = Readonly<Record<string, RoomEntry>>;

export function fromSummaries(list: readonly RoomSummary[]): Rooms {
  const out: Record<string, RoomEntry> = {};
  for (const s of list) {
    const room = s.room;
    if (!room?.id) continue;
    const lm = s.last_message;
    const last: Preview | undefined =
      lm && lm.seq
        ? {
            seq: lm.seq,
            senderId: lm.sender_id ?? '',
            body: lm.deleted ? 'Message deleted' : (lm.body ?? ''),
            attachments: lm.attachments?.length ?? 0,
            hidden: lm.hidden ?? false,
            at: lm.created_at ?? room.created_at ?? '',
          }
        : undefined;
    out[room.id] = {
      id: room.id,
      room,
      last,
      level: s.notification_level ?? 'all',
      unread: s.unread ?? 0,
      mentions: s.mentions ?? 0,
      myRead: s.receipt?.read_seq ?? 0,
      activity: last?.at ?? room.created_at ?? '',
    };
  }
  return out;
}

/** Keeps live state the server's list does not know better (a newer preview). */
export function mergeSummaries(old: Rooms, fresh: Rooms): Rooms {
  const out: Record<string, RoomEntry> = {};
  for (const [id, f] of Object.entries(fresh)) {
    const o = old[id];
    if (o?.last?.seq !== undefined && (f.last?.seq ?? 0) < o.last.seq) {
      out[id] = { ...f, last: o.last, activity: o.activity };
    } else out[id] = f;
  }
  return out;
}

export function upsertRoom(rooms: Rooms, room: Room): Rooms {
  if (!room.id) return rooms;
  const o = rooms[room.id];
  return {
    ...rooms,
    [room.id]: o
      ? { ...o, room: { ...o.room, ...room } }
      : { id: room.id, room, level: 'all', unread: 0, mentions: 0, myRead: 0, activity: room.created_at ?? new Date().toISOString() },
  };
}

export function removeRoom(rooms: Rooms, id: string): Rooms {
  if (!rooms[id]) return rooms;
  const { [id]: _gone, ...rest } = rooms;
  return rest;
}

/**
 * A message reached the room (live, replay or my own send). Unread grows for other
 * people's messages newer than my read cursor unless the room is being read right now;
 * so do the mentions when the message mentions me.
 */
export function noteMessage(
  rooms: Rooms,
  roomId: string,
  m: { seq?: number; senderId: string; body: string; attachments: number; hidden: boolean; at: string; mentionsMe?: boolean },
  me: string,
  reading: boolean,
): Rooms {
  const e = rooms[roomId];
  if (!e) return rooms;
  const newer = m.seq === undefined || e.last?.seq === undefined || m.seq >= e.last.seq;
  const { mentionsMe, ...preview } = m;
  const last = newer ? preview : e.last;
  const counts = m.seq !== undefined && m.senderId !== me && !m.hidden && m.seq > e.myRead && !reading;
  const isNewForCount = counts && (e.last?.seq === undefined || m.seq! > e.last.seq);
  const activity = newer && m.at > e.activity ? m.at : e.activity;
  if (!isNewForCount && last === e.last && activity === e.activity) return rooms;
  return {
    ...rooms,
    [roomId]: {
      ...e,
      last,
      activity,
      unread: isNewForCount ? e.unread + 1 : e.unread,
      mentions: isNewForCount && mentionsMe ? e.mentions + 1 : e.mentions,
      room: { ...e.room, last_seq: Math.max(e.room.last_seq ?? 0, m.seq ?? 0) },
    },
  };
}

/** My read cursor moved (this device or another). unreadAfter: messages from others after it, when known. */
export function noteRead(rooms: Rooms, roomId: string, read: number, unreadAfter?: number): Rooms {
  const e = rooms[roomId];
  if (!e || read < e.myRead) return rooms;
  const lastSeq = Math.max(e.last?.seq ?? 0, e.room.last_seq ?? 0);
  const unread = read >= lastSeq ? 0 : (unreadAfter ?? e.unread);
  // Mentions are not told apart after a partial read: at most what is left unread.
  const mentions = Math.min(e.mentions, unread);
  if (read === e.myRead && unread === e.unread && mentions === e.mentions) return rooms;
  return { ...rooms, [roomId]: { ...e, myRead: read, unread, mentions } };
}

/** Newest activity first; ties by id for a stable order. */
export function ordered(rooms: Rooms): RoomEntry[] {
  return Object.values(rooms).sort((a, b) => (a.activity < b.activity ? 1 : a.activity > b.activity ? -1 : a.id < b.id ? -1 : 1));
}

/** My notification level for a room changed. */
export function setLevel(rooms: Rooms, roomId: string, level: NotifyLevel): Rooms {
  const e = rooms[roomId];
  if (!e || e.level === level) return rooms;
  return { ...rooms, [roomId]: { ...e, level } };
}

/** A quiet room (muted, or mentions only) shows a quiet badge and is left out of the title's count. */
export function isQuiet(e: RoomEntry): boolean {
  return e.level !== 'all';
}

/** Unread messages of the rooms that are not quiet: the count in the tab title. */
export function loudUnread(rooms: Rooms): number {
  let n = 0;
  for (const e of Object.values(rooms)) if (!isQuiet(e)) n += e.unread;
  return n;
}
