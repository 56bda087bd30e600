import { describe, expect, it } from 'vitest';
import { applyBatch, MAX_WATCH, watchList } from './presence';

describe('presence', () => {
  it('a batch sets each user it names and keeps the others', () => {
    const p = applyBatch({ bob: true, carol: true }, { bob: false, dave: true });
    expect(p).toEqual({ bob: false, carol: true, dave: true });
  });
  it('a batch that changes nothing keeps the same object', () => {
    const p = { bob: true };
    expect(applyBatch(p, { bob: true })).toBe(p);
    expect(applyBatch(p, {})).toBe(p);
  });
  it('watches direct-chat peers, then the open room, without me', () => {
    const rooms = { d1: { room: { kind: 'direct' } }, d2: { room: { kind: 'direct' } }, g: { room: { kind: 'group' } } };
    const members = { d1: ['me', 'zoe'], d2: ['bob', 'me'], g: ['me', 'carol', 'bob', 'al'] };
    expect(watchList('me', rooms, members, null)).toEqual(['bob', 'zoe']);
    expect(watchList('me', rooms, members, 'g')).toEqual(['bob', 'zoe', 'al', 'carol']);
    expect(watchList('me', rooms, members, 'd1')).toEqual(['bob', 'zoe']);
  });
  it('names at most MAX_WATCH users, direct-chat peers first', () => {
    const members: Record<string, string[]> = { big: Array.from({ length: 2 * MAX_WATCH }, (_, i) => `u${i}`) };
    const rooms: Record<string, { room: { kind: string } }> = { big: { room: { kind: 'group' } }, d: { room: { kind: 'direct' } } };
    members['d'] = ['me', 'zz'];
    const w = watchList('me', rooms, members, 'big');
    expect(w).toHaveLength(MAX_WATCH);
    expect(w[0]).toBe('zz');
  });
});
