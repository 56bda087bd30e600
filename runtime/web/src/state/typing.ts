// Who is typing where; an entry lasts TYPING_TTL_MS after the last typing frame.
export const TYPING_TTL_MS = 5000;
export type Typing = Readonly<Record<string, Readonly<Record<string, number>>>>; // room → user → expires at

export function typingEvent(t: Typing, room: string, user: string, now: number): Typing {
  return { ...t, [room]: { ...(t[room] ?? {}), [user]: now + TYPING_TTL_MS } };
}

export function stopTyping(t: Typing, room: string, user: string): Typing {
  const r = t[room];
  if (!r || !(user in r)) return t;
  const { [user]: _gone, ...rest } = r;
  return { ...t, [room]: rest };
}

export function typers(t: Typing, room: string, now: number): string[] {
  const r = t[room];
  if (!r) return [];
  return Object.keys(r)
    .filter((u) => r[u]! > now)
    .sort();
}

/** Drops expired entries; returns the same object when nothing expired. */
export function pruneTyping(t: Typing, now: number): Typing {
  let changed = false;
  const out: Record<string, Record<string, number>> = {};
  for (const [room, users] of Object.entries(t)) {
    const kept: Record<string, number> = {};
    for (const [u, exp] of Object.entries(users)) {
      if (exp > now) kept[u] = exp;
      else changed = true;
    }
    if (Object.keys(kept).length > 0) out[room] = kept;
    else if (Object.keys(users).length > 0) changed = true;
  }
  return changed ? out : t;
}

/** Client-side throttle: may I send a typing frame now? */
export function shouldSendTyping(lastSent: number | undefined, now: number, every = 3000): boolean {
  return lastSent === undefined || now - lastSent >= every;
}
