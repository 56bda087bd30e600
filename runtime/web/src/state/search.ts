// Search results: a snippet is plain text and its hits are [start, end) ranges counted in
// code points (not UTF-16 units), so an emoji before a hit does not shift it. The UI
// renders the segments as text, the hits inside <mark>: nothing is ever parsed as HTML.

export interface Segment {
  text: string;
  hit: boolean;
}

export function segments(snippet: string, highlights: readonly (readonly number[])[] | undefined): Segment[] {
  const cps = Array.from(snippet);
  const out: Segment[] = [];
  let at = 0;
  const ranges = [...(highlights ?? [])]
    .filter((r): r is [number, number] => r.length === 2 && Number.isInteger(r[0]) && Number.isInteger(r[1]))
    .sort((a, b) => a[0] - b[0]);
  for (const [s0, e0] of ranges) {
    const s = Math.max(at, Math.min(s0, cps.length));
    const e = Math.max(s, Math.min(e0, cps.length));
    if (e <= s) continue;
    if (s > at) out.push({ text: cps.slice(at, s).join(''), hit: false });
    out.push({ text: cps.slice(s, e).join(''), hit: true });
    at = e;
  }
  if (at < cps.length || out.length === 0) out.push({ text: cps.slice(at).join(''), hit: false });
  return out;
}
