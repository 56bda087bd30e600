import { describe, expect, it } from 'vitest';
import { pruneTyping, shouldSendTyping, stopTyping, typers, typingEvent, TYPING_TTL_MS } from './typing';

describe('typing', () => {
  it('lasts TYPING_TTL_MS after the last event', () => {
    let t = typingEvent({}, 'r', 'bob', 1000);
    expect(typers(t, 'r', 1000)).toEqual(['bob']);
    t = typingEvent(t, 'r', 'bob', 4000);
    expect(typers(t, 'r', 1000 + TYPING_TTL_MS + 1)).toEqual(['bob']);
    expect(typers(t, 'r', 4000 + TYPING_TTL_MS)).toEqual([]);
    expect(typers(t, 'other', 1000)).toEqual([]);
  });
  it('a message from the typer ends it', () => {
    const t = stopTyping(typingEvent({}, 'r', 'bob', 0), 'r', 'bob');
    expect(typers(t, 'r', 1)).toEqual([]);
    expect(stopTyping(t, 'r', 'nobody')).toBe(t);
  });
  it('pruning drops expired entries only', () => {
    const t = typingEvent(typingEvent({}, 'r', 'a', 0), 'r', 'b', 3000);
    const p = pruneTyping(t, TYPING_TTL_MS + 1);
    expect(Object.keys(p.r!)).toEqual(['b']);
    expect(pruneTyping(p, TYPING_TTL_MS + 1)).toBe(p);
    expect(pruneTyping(p, 10_000)).toEqual({});
  });
  it('sends at most once per 3 s', () => {
    expect(shouldSendTyping(undefined, 0)).toBe(true);
    expect(shouldSendTyping(0, 2999)).toBe(false);
    expect(shouldSendTyping(0, 3000)).toBe(true);
  });
});
