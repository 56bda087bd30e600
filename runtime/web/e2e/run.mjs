// Entry point of the browser scenarios: `node e2e/run.mjs <scenario>` from runtime/web,
// with PARLEY_URL (the server) and PARLEY_ARTIFACTS (screenshots, measurements). Run by
// internal/e2e/browser_test.go; runnable by hand against `parley dev` too.
import path from 'node:path';
import { ARTIFACTS, BASE, launch, log, users } from './lib.mjs';

const scenarios = ['dm', 'files', 'block', 'group', 'offline', 'offline-keepalive', 'security', 'a11y', 'scroll', 'lcp', 'screenshots', 'failover', 'conversation-actions', 'search', 'mentions'];
const name = process.argv[2];
if (!scenarios.includes(name)) {
  console.error(`usage: node e2e/run.mjs <scenario>; scenarios: ${scenarios.join(', ')}`);
  process.exit(2);
}

const { default: scenario } = await import(`./${name}.mjs`);
log(`scenario ${name} against ${BASE}, artifacts in ${ARTIFACTS}`);
const browser = await launch();
let failed = false;
try {
  await scenario(browser);
  log(`PASS ${name}`);
} catch (err) {
  failed = true;
  log(`FAIL ${name}: ${err.stack || err}`);
  for (const u of users) {
    if (!u.page || u.page.isClosed()) continue;
    const file = path.join(ARTIFACTS, `failure-${u.first.toLowerCase()}.png`);
    await u.page.screenshot({ path: file, fullPage: false }).then(
      () => log(`failure screenshot of ${u.first} (${u.page.url()}): ${file}`),
      () => {},
    );
  }
} finally {
  await browser.close().catch(() => {});
}
process.exit(failed ? 1 : 0);
