import { describe, expect, it } from 'vitest';
import { applyReceipt, breakdown, tickFor } from './receipts';

describe('receipts', () => {
  it('cursors only move forward, and read raises delivered', () => {
    let c = applyReceipt({}, 'u2', 5, 3);
    expect(c.u2).toEqual({ delivered: 5, read: 3 });
    c = applyReceipt(c, 'u2', 4, 2);
    expect(c.u2).toEqual({ delivered: 5, read: 3 });
    c = applyReceipt(c, 'u2', 0, 9);
    expect(c.u2).toEqual({ delivered: 9, read: 9 });
  });

  it('returns the same object when nothing moves', () => {
    const c = applyReceipt({}, 'u2', 5, 3);
    expect(applyReceipt(c, 'u2', 5, 3)).toBe(c);
    expect(applyReceipt(c, 'u2', 1, 1)).toBe(c);
  });

  it('is order-independent', () => {
    const events: [number, number][] = [
      [1, 0],
      [3, 1],
      [2, 2],
      [7, 4],
      [5, 5],
    ];
    const perms = [events, [...events].reverse(), [events[2]!, events[0]!, events[4]!, events[1]!, events[3]!]];
    const results = perms.map((p) => p.reduce((c, [d, r]) => applyReceipt(c, 'u', d, r), {} as ReturnType<typeof applyReceipt>));
    for (const r of results) expect(r).toEqual({ u: { delivered: 7, read: 5 } });
  });
});

describe('ticks', () => {
  const cursors = { b: { delivered: 10, read: 8 }, c: { delivered: 9, read: 5 } };
  it('sending, sent, failed', () => {
    expect(tickFor(undefined, 'sending', cursors, ['b'])).toBe('Sending');
    expect(tickFor(12, 'sent', cursors, ['b'])).toBe('Sent');
    expect(tickFor(undefined, 'failed', cursors, ['b'])).toBe('Failed');
  });
  it('direct: delivered then read', () => {
    expect(tickFor(9, 'sent', cursors, ['b'])).toBe('Delivered');
    expect(tickFor(8, 'sent', cursors, ['b'])).toBe('Read');
  });
  it('group: every other member', () => {
    expect(tickFor(10, 'sent', cursors, ['b', 'c'])).toBe('Sent');
    expect(tickFor(9, 'sent', cursors, ['b', 'c'])).toBe('Delivered');
    expect(tickFor(5, 'sent', cursors, ['b', 'c'])).toBe('Read');
    expect(tickFor(5, 'sent', cursors, ['b', 'c', 'd'])).toBe('Sent');
  });
  it('breakdown per member', () => {
    expect(breakdown(8, cursors, ['b', 'c', 'd'])).toEqual([
      { user: 'b', state: 'read' },
      { user: 'c', state: 'delivered' },
      { user: 'd', state: 'sent' },
    ]);
  });
});
