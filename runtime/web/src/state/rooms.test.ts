import { describe, expect, it } from 'vitest';
import { fromSummaries, mergeSummaries, noteMessage, noteRead, ordered, removeRoom, upsertRoom, type RoomSummary } from './rooms';

const sum = (id: string, lastSeq: number, at: string, unread = 0, read = 0): RoomSummary => ({
  room: { id, kind: 'group', name: id, last_seq: lastSeq, created_at: '2026-01-01T00:00:00Z' },
  last_message: lastSeq ? { id: 'm' + lastSeq, seq: lastSeq, sender_id: 'u2', body: 'hi ' + lastSeq, created_at: at } : undefined,
  unread,
  receipt: { read_seq: read },
});

describe('rooms', () => {
  const rooms = fromSummaries([sum('a', 3, '2026-01-02T00:00:00Z', 1, 2), sum('b', 5, '2026-01-03T00:00:00Z'), sum('c', 0, '')]);

  it('orders by newest activity', () => {
    expect(ordered(rooms).map((r) => r.id)).toEqual(['b', 'a', 'c']);
    const r2 = noteMessage(
      rooms,
      'a',
      { seq: 4, senderId: 'u2', body: 'new', attachments: 0, hidden: false, at: '2026-01-04T00:00:00Z' },
      'me',
      false,
    );
    expect(ordered(r2).map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(r2.a!.last?.body).toBe('new');
  });

  it('counts unread mentions of me with the unread messages, until read', () => {
    const m = { seq: 4, senderId: 'u2', body: '@me', attachments: 0, hidden: false, at: '2026-01-04T00:00:00Z', mentionsMe: true };
    const start = fromSummaries([{ ...sum('a', 3, '2026-01-02T00:00:00Z', 1, 2), mentions: 1 }]);
    expect(start.a!.mentions).toBe(1);
    let r = noteMessage(start, 'a', m, 'me', false);
    r = noteMessage(r, 'a', m, 'me', false); // the same message again
    r = noteMessage(r, 'a', { ...m, seq: 5, mentionsMe: false }, 'me', false);
    r = noteMessage(r, 'a', { ...m, seq: 6, senderId: 'me' }, 'me', false);
    expect(r.a).toMatchObject({ unread: 3, mentions: 2 });
    expect(r.a!.last).not.toHaveProperty('mentionsMe');
    expect(noteRead(r, 'a', 4, 1).a!.mentions).toBe(1);
    expect(noteRead(r, 'a', 6).a!.mentions).toBe(0);
  });

  it('counts unread messages from others once, not mine, not while reading', () => {
    const m = { seq: 4, senderId: 'u2', body: 'x', attachments: 0, hidden: false, at: '2026-01-04T00:00:00Z' };
    let r = noteMessage(rooms, 'a', m, 'me', false);
    expect(r.a!.unread).toBe(2);
    r = noteMessage(r, 'a', m, 'me', false);
    expect(r.a!.unread).toBe(2);
    r = noteMessage(r, 'a', { ...m, seq: 5, senderId: 'me' }, 'me', false);
    expect(r.a!.unread).toBe(2);
    r = noteMessage(r, 'a', { ...m, seq: 6 }, 'me', true);
    expect(r.a!.unread).toBe(2);
    r = noteMessage(r, 'a', { ...m, seq: 7, hidden: true }, 'me', false);
    expect(r.a!.unread).toBe(2);
  });

  it('reading to the end clears unread; cursors never go back', () => {
    let r = noteRead(rooms, 'a', 3);
    expect(r.a).toMatchObject({ unread: 0, myRead: 3 });
    expect(noteRead(r, 'a', 1)).toBe(r);
    r = noteRead(rooms, 'a', 2, 1);
    expect(r.a!.unread).toBe(1);
  });

  it('a fresh list does not roll back a newer live preview', () => {
    const live = noteMessage(
      rooms,
      'b',
      { seq: 6, senderId: 'u2', body: 'live', attachments: 0, hidden: false, at: '2026-01-05T00:00:00Z' },
      'me',
      false,
    );
    const merged = mergeSummaries(live, fromSummaries([sum('b', 5, '2026-01-03T00:00:00Z')]));
    expect(merged.b!.last?.body).toBe('live');
    expect(Object.keys(merged)).toEqual(['b']);
  });

  it('adds and removes rooms', () => {
    const r = upsertRoom(rooms, { id: 'd', kind: 'direct', created_at: '2026-02-01T00:00:00Z' });
    expect(ordered(r)[0]!.id).toBe('d');
    expect(removeRoom(r, 'd')).toEqual(rooms);
    expect(removeRoom(rooms, 'zz')).toBe(rooms);
  });
});
