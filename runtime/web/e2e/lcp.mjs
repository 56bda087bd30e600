// lcp: the largest contentful paint of the conversation screen on a fresh page load of
// the conversation's URL (logged in through the refresh cookie). Printed and written to
// lcp.json; never asserted (timing belongs in benchmarks, not in pass/fail).
import { User, api, log, visible, writeJSON } from './lib.mjs';

const SAMPLES = 3;

const observe = () => {
  window.__lcp = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      window.__lcp.push({ ms: e.startTime, size: e.size, element: e.element ? e.element.tagName.toLowerCase() + (e.element.className ? '.' + String(e.element.className).split(' ')[0] : '') : null });
    }
  }).observe({ type: 'largest-contentful-paint', buffered: true });
};

export default async function lcp(browser) {
  const alice = new User(browser, 'Alice');
  const bob = new User(browser, 'Bob');
  await alice.registerAPI();
  await bob.registerAPI();
  const room = await api('POST', '/rooms/direct', { token: alice.token, body: { user_id: bob.id } });
  for (let i = 1; i <= 40; i++) {
    const from = i % 3 ? bob : alice;
    await api('POST', `/rooms/${room.id}/messages`, { token: from.token, body: { client_id: `lcp-${i}`, body: `Message ${i}: a line of ordinary chat to fill the screen.` } });
  }
  await alice.open();
  await alice.login();
  await alice.openRoom(bob.displayName);
  const url = alice.page.url();
  const fresh = new URL(url).pathname !== '/' || new URL(url).hash !== '';
  log(`conversation URL: ${url}${fresh ? '' : ' (the conversation has no URL of its own: measuring login -> conversation instead)'}`);

  const samples = [];
  for (let i = 0; i < SAMPLES; i++) {
    const page = await alice.context.newPage();
    await page.addInitScript(observe);
    const t0 = Date.now();
    if (fresh) {
      await page.goto(url);
    } else {
      await page.goto('/');
      const entry = page.getByRole('navigation', { name: 'Conversations' }).getByRole('link', { name: new RegExp('^' + bob.displayName) });
      await entry.or(page.getByRole('navigation', { name: 'Conversations' }).getByRole('button', { name: new RegExp('^' + bob.displayName) })).first().click();
    }
    await visible(page.getByRole('log', { name: 'Messages' }).locator('[data-seq="40"]'), 'the newest message of the conversation');
    // Two frames, so the paint of what is visible has been reported.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const entries = await page.evaluate(() => window.__lcp);
    const nav = await page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0];
      return n ? { ttfb: n.responseStart, domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd } : null;
    });
    const last = entries.at(-1);
    samples.push({ lcp_ms: last ? Math.round(last.ms) : null, element: last?.element, size: last?.size, wall_ms: Date.now() - t0, navigation: nav, entries });
    log(`LCP conversation: ${last ? Math.round(last.ms) + ' ms' : 'no entry'} (sample ${i + 1}, element ${last?.element}, ${Date.now() - t0} ms until the newest message was visible)`);
    await page.close();
  }
  const values = samples.map((s) => s.lcp_ms).filter((x) => x !== null).sort((a, b) => a - b);
  const median = values.length ? values[Math.floor(values.length / 2)] : null;
  console.log(`LCP conversation: ${median} ms (median of ${values.length}; ${fresh ? 'fresh load of the conversation URL' : 'load of / then opening the conversation'})`);
  writeJSON('lcp.json', { metric: 'largest-contentful-paint', screen: 'conversation', how: fresh ? 'fresh load of the conversation URL' : 'load of / then click', median_ms: median, samples });
}
