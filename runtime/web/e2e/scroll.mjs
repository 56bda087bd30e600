// scroll: a DM seeded with many messages through the REST API. The message list is
// virtualised (the DOM holds far fewer message elements than the room has), scrolling to
// the top loads older pages (the smallest data-seq goes down), and the message that was
// at the top stays in view (the scroll position is kept when a page is prepended).
import { User, api, assert, log, until, visible, writeJSON } from './lib.mjs';

const WANT = Number(process.env.PARLEY_SCROLL_MESSAGES || 10_000);
const SEED_BUDGET_MS = 60_000;
const WORKERS = 24;
const PAGES = 5;

async function seed(room, senders) {
  const started = Date.now();
  let next = 0, done = 0, retries = 0;
  const worker = async () => {
    while (next < WANT && Date.now() - started < SEED_BUDGET_MS) {
      const i = next++;
      const from = senders[i % senders.length];
      for (;;) {
        try {
          await api('POST', `/rooms/${room}/messages`, {
            token: from.token,
            body: { client_id: `seed-${i}`, body: `Seeded message number ${i + 1} from ${from.first}` },
          });
          done++;
          break;
        } catch (e) {
          if (e.status && e.status !== 429 && e.status < 500) throw e;
          retries++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  const ms = Date.now() - started;
  log(`seeded ${done} messages in ${(ms / 1000).toFixed(1)} s (${retries} retries)${done < WANT ? `: fewer than ${WANT}, the ${SEED_BUDGET_MS / 1000} s budget ran out` : ''}`);
  return { seeded: done, ms };
}

// view describes the scrolling element of the message list and what is in view.
function view(log) {
  const scrollable = (e) => {
    const s = getComputedStyle(e);
    return /(auto|scroll)/.test(s.overflowY) && e.scrollHeight > e.clientHeight;
  };
  let sc = null;
  for (let e = log; e && !sc; e = e.parentElement) if (scrollable(e)) sc = e;
  if (!sc) sc = [...log.querySelectorAll('*')].find(scrollable) || document.scrollingElement;
  const box = sc.getBoundingClientRect();
  const seqs = [...log.querySelectorAll('[data-seq]')].map((m) => {
    const r = m.getBoundingClientRect();
    return { seq: Number(m.dataset.seq), inView: r.bottom > box.top + 1 && r.top < box.bottom - 1 };
  });
  return {
    scrollTop: sc.scrollTop,
    count: seqs.length,
    min: Math.min(...seqs.map((s) => s.seq)),
    max: Math.max(...seqs.map((s) => s.seq)),
    inView: seqs.filter((s) => s.inView).map((s) => s.seq),
  };
}

function toTop(log) {
  const scrollable = (e) => {
    const s = getComputedStyle(e);
    return /(auto|scroll)/.test(s.overflowY) && e.scrollHeight > e.clientHeight;
  };
  let sc = null;
  for (let e = log; e && !sc; e = e.parentElement) if (scrollable(e)) sc = e;
  if (!sc) sc = [...log.querySelectorAll('*')].find(scrollable) || document.scrollingElement;
  sc.scrollTop = 0; // the browser fires the scroll event, as for a user's scroll
}

export default async function scroll(browser) {
  const alice = new User(browser, 'Alice');
  const bob = new User(browser, 'Bob');
  await alice.registerAPI();
  await bob.registerAPI();
  const room = await api('POST', '/rooms/direct', { token: alice.token, body: { user_id: bob.id } });
  const { seeded, ms } = await seed(room.id, [alice, bob]);
  writeJSON('seed.json', { wanted: WANT, seeded, ms });

  await alice.open();
  await alice.login();
  await alice.openRoom(bob.displayName);
  await visible(alice.log.locator(`[data-seq="${seeded}"]`), `Alice: the newest message (seq ${seeded})`);
  let v = await alice.log.evaluate(view);
  log(`opened: ${v.count} message elements in the DOM, seq ${v.min}..${v.max}, in view ${v.inView[0]}..${v.inView.at(-1)}`);
  const limit = Math.min(1000, seeded / 5);
  assert(v.count < limit, `${v.count} message elements in the DOM for ${seeded} messages: not virtualised (want < ${limit})`);

  // Requests for older pages are held until the test has noted which message is at the
  // top, then released: the anchor is known before the page arrives, whatever the timing.
  // A release that finds no request waiting is kept as a credit: the client may ask for
  // the older page only after the test has seen the top (it waits for the scroll to
  // settle), and that request must then go through instead of waiting forever.
  const held = [];
  let credits = 0;
  const release = () => {
    if (held.length > 0) held.splice(0).forEach((r) => r());
    else credits++;
  };
  const older = (url) => {
    const u = new URL(url);
    return /^\/api\/v1\/rooms\/[^/]+\/messages$/.test(u.pathname) && u.searchParams.has('before');
  };
  await alice.page.route(older, async (route) => {
    if (credits > 0) credits--;
    else await new Promise((r) => held.push(r));
    await route.continue();
  });
  for (let page = 1; page <= PAGES && v.min > 1; page++) {
    await alice.log.evaluate(toTop);
    const top = await until(async () => {
      const now = await alice.log.evaluate(view);
      return now.scrollTop === 0 && now.inView.length > 0 && now.inView[0] === now.min ? now : null;
    }, 'the oldest loaded message at the top of the list');
    const anchor = top.min;
    release();
    v = await until(async () => {
      const now = await alice.log.evaluate(view);
      return now.min < anchor && now.inView.includes(anchor) ? now : null;
    }, `older messages above seq ${anchor}, with seq ${anchor} (at the top before) still in view`);
    log(`page ${page}: seq ${anchor} was at the top; older ones loaded (smallest in the DOM now ${v.min}) and ${anchor} is still in view (in view ${v.inView[0]}..${v.inView.at(-1)}, scrollTop ${v.scrollTop}); ${v.count} elements in the DOM`);
    assert(v.count < limit, `${v.count} message elements in the DOM after loading ${page} pages: not virtualised`);
  }
  release();
  assert(v.min < seeded - 50 * PAGES, `older pages did not load: smallest seq ${v.min}`);
}
