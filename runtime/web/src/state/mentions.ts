// Mentions: "@username" (and "@room" from the owner of a group) in a message body. The
// server resolves them into the ids of the members mentioned (a message's `mentions`);
// the client only renders them, as text segments (never HTML), and helps write them
// (the composer's autocomplete of room members).

/** Characters of a username after the first (which is a letter or digit). */
function isNameChar(c: string): boolean {
  return /[A-Za-z0-9_.-]/.test(c);
}

/** The word that mentions every member of a group. */
export const ROOM_MENTION = 'room';

/** A piece of a message body: plain text, or a mention that resolved on the server. */
export interface Segment {
  text: string;
  /** Set when the text is a resolved mention. */
  mention?: { me: boolean };
}

interface Token {
  start: number;
  end: number;
  /** Lower-cased name, trailing punctuation left out. */
  name: string;
}

/** The "@name" tokens of body, as the server reads them. */
function tokens(body: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < body.length) {
    const at = i;
    i++;
    if (body[at] !== '@') continue;
    const prev = at > 0 ? body[at - 1]! : '';
    if (prev && (isNameChar(prev) || prev === '@')) continue;
    let j = at + 1;
    while (j < body.length && isNameChar(body[j]!)) j++;
    let end = j;
    while (end > at + 1 && '._-'.includes(body[end - 1]!)) end--;
    i = j;
    const name = body.slice(at + 1, end).toLowerCase();
    if (name.length < 3 || name.length > 32 || !/^[a-z0-9]/.test(name)) continue;
    out.push({ start: at, end, name });
  }
  return out;
}

/**
 * Splits body into text and mention segments. A "@username" is a mention when the
 * server resolved it: one of mentions is a user whose username (usernameOf, any case) it
 * names. "@room" is one when the server resolved some member no "@username" names (only
 * the owner of a group can mention the room). me: my id, to highlight mentions of me.
 */
export function mentionSegments(
  body: string,
  mentions: readonly string[] | undefined,
  usernameOf: (id: string) => string | undefined,
  me: string,
): Segment[] {
  if (!mentions?.length) return body ? [{ text: body }] : [];
  const byName = new Map<string, string>();
  for (const id of mentions) {
    const u = usernameOf(id);
    if (u) byName.set(u.toLowerCase(), id);
  }
  const toks = tokens(body);
  const named = new Set(toks.map((t) => byName.get(t.name)).filter((x): x is string => x !== undefined));
  const roomResolved = mentions.some((id) => !named.has(id));
  const out: Segment[] = [];
  let pos = 0;
  for (const t of toks) {
    let me_: boolean;
    if (t.name === ROOM_MENTION) {
      if (!roomResolved) continue;
      me_ = mentions.includes(me);
    } else {
      const id = byName.get(t.name);
      if (id === undefined) continue;
      me_ = id === me;
    }
    if (t.start > pos) out.push({ text: body.slice(pos, t.start) });
    out.push({ text: body.slice(t.start, t.end), mention: { me: me_ } });
    pos = t.end;
  }
  if (pos < body.length) out.push({ text: body.slice(pos) });
  return out;
}

/** The "@query" being typed at the caret, if any: where its "@" is and what follows it. */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  let i = caret;
  while (i > 0 && isNameChar(text[i - 1]!)) i--;
  if (i === 0 || text[i - 1] !== '@') return null;
  const at = i - 1;
  const prev = at > 0 ? text[at - 1]! : '';
  if (prev && (isNameChar(prev) || prev === '@')) return null;
  const query = text.slice(i, caret);
  if (query.length > 32) return null;
  return { start: at, query };
}

/** Someone the composer may mention. */
export interface Candidate {
  /** User id, or "room" for everyone. */
  id: string;
  username: string;
  displayName: string;
}

/**
 * The candidates whose username or display name (or a word of it) starts with query,
 * case-insensitively: username matches first, then by username; at most limit.
 */
export function suggestMentions(candidates: readonly Candidate[], query: string, limit = 8): Candidate[] {
  const q = query.toLowerCase();
  const scored: { c: Candidate; rank: number }[] = [];
  for (const c of candidates) {
    const u = c.username.toLowerCase();
    if (u.startsWith(q)) scored.push({ c, rank: 0 });
    else if (c.displayName.toLowerCase().split(/\s+/).some((w) => w.startsWith(q))) scored.push({ c, rank: 1 });
  }
  scored.sort((a, b) => a.rank - b.rank || (a.c.username.toLowerCase() < b.c.username.toLowerCase() ? -1 : 1));
  return scored.slice(0, limit).map((x) => x.c);
}

/** Replaces the "@query" from start to caret by "@username " and puts the caret after it. */
export function applyMention(text: string, start: number, caret: number, username: string): { text: string; caret: number } {
  const insert = '@' + username + ' ';
  const rest = text.slice(caret).replace(/^[A-Za-z0-9_.-]*/, '').replace(/^ /, '');
  return { text: text.slice(0, start) + insert + rest, caret: start + insert.length };
}
