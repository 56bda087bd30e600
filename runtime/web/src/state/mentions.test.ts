import { describe, expect, it } from 'vitest';
import { applyMention, mentionQuery, mentionSegments, suggestMentions } from './mentions';

const names: Record<string, string> = { u1: 'alice', u2: 'Bob', u3: 'carol' };
const usernameOf = (id: string) => names[id];

describe('mentionSegments', () => {
  it('marks resolved mentions only, any case, with mine highlighted', () => {
    const segs = mentionSegments('hi @ALICE and @bob. not @dave, x@bob.org', ['u1', 'u2'], usernameOf, 'u1');
    expect(segs).toEqual([
      { text: 'hi ' },
      { text: '@ALICE', mention: { me: true } },
      { text: ' and ' },
      { text: '@bob', mention: { me: false } },
      { text: '. not @dave, x@bob.org' },
    ]);
  });
  it('keeps a body without mentions as one text segment (never HTML)', () => {
    expect(mentionSegments('<b>@alice</b>', undefined, usernameOf, 'u1')).toEqual([{ text: '<b>@alice</b>' }]);
    expect(mentionSegments('', [], usernameOf, 'u1')).toEqual([]);
  });
  it('shows @room as a mention only when the server resolved it', () => {
    expect(mentionSegments('@room lunch', ['u1', 'u3'], usernameOf, 'u3')).toEqual([
      { text: '@room', mention: { me: true } },
      { text: ' lunch' },
    ]);
    // @room from a member: the server resolved only @bob.
    expect(mentionSegments('@room @bob', ['u2'], usernameOf, 'u1')).toEqual([
      { text: '@room ' },
      { text: '@bob', mention: { me: false } },
    ]);
  });
});

describe('mention autocomplete', () => {
  it('finds the @query at the caret', () => {
    expect(mentionQuery('hello @al', 9)).toEqual({ start: 6, query: 'al' });
    expect(mentionQuery('@', 1)).toEqual({ start: 0, query: '' });
    expect(mentionQuery('mail a@b', 8)).toBeNull();
    expect(mentionQuery('hello al', 8)).toBeNull();
    expect(mentionQuery('@al then', 8)).toBeNull();
  });
  it('suggests by username then display name, case-insensitively', () => {
    const cands = [
      { id: 'u2', username: 'bob', displayName: 'Robert Alvarez' },
      { id: 'u1', username: 'alice', displayName: 'Alice' },
      { id: 'u3', username: 'carol', displayName: 'Carol' },
    ];
    expect(suggestMentions(cands, 'AL').map((c) => c.id)).toEqual(['u1', 'u2']);
    expect(suggestMentions(cands, '').map((c) => c.id)).toEqual(['u1', 'u2', 'u3']);
    expect(suggestMentions(cands, 'zz')).toEqual([]);
  });
  it('replaces the query by the username and a space', () => {
    expect(applyMention('hi @al', 3, 6, 'alice')).toEqual({ text: 'hi @alice ', caret: 10 });
    expect(applyMention('hi @al there', 3, 6, 'alice')).toEqual({ text: 'hi @alice there', caret: 10 });
  });
});
