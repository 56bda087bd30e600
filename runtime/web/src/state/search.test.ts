import { describe, expect, it } from 'vitest';
import { segments } from './search';
import { fromSummaries, isQuiet, loudUnread, setLevel } from './rooms';

describe('search snippet segments', () => {
  it('splits the snippet into text and hits by code point', () => {
    expect(segments('did you read the report?', [[17, 23]])).toEqual([
      { text: 'did you read the ', hit: false },
      { text: 'report', hit: true },
      { text: '?', hit: false },
    ]);
  });
  it('counts an emoji as one character', () => {
    expect(segments('🎂 cake <b>', [[2, 6]])).toEqual([
      { text: '🎂 ', hit: false },
      { text: 'cake', hit: true },
      { text: ' <b>', hit: false },
    ]);
  });
  it('survives ranges that overlap, are out of order or out of bounds', () => {
    expect(segments('abcdef', [[4, 99], [0, 2], [1, 3], [5, 5]])).toEqual([
      { text: 'ab', hit: true },
      { text: 'c', hit: true },
      { text: 'd', hit: false },
      { text: 'ef', hit: true },
    ]);
    expect(segments('', [])).toEqual([{ text: '', hit: false }]);
  });
});

describe('notification levels in the room list', () => {
  const rooms = fromSummaries([
    { room: { id: 'a', kind: 'group', created_at: '2026-01-01T00:00:00Z' }, unread: 3, notification_level: 'muted' },
    { room: { id: 'b', kind: 'group', created_at: '2026-01-01T00:00:00Z' }, unread: 2 },
    { room: { id: 'c', kind: 'group', created_at: '2026-01-01T00:00:00Z' }, unread: 4, notification_level: 'mentions' },
  ]);
  it('reads the level, defaulting to all', () => {
    expect(rooms.a!.level).toBe('muted');
    expect(rooms.b!.level).toBe('all');
    expect(isQuiet(rooms.c!)).toBe(true);
  });
  it('leaves quiet rooms out of the title count', () => {
    expect(loudUnread(rooms)).toBe(2);
    const unmuted = setLevel(rooms, 'a', 'all');
    expect(loudUnread(unmuted)).toBe(5);
    expect(setLevel(unmuted, 'a', 'all')).toBe(unmuted);
  });
});
