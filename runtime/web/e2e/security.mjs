// security: Content-Security-Policy present and enforced (inline script and inline event
// handlers blocked, with a securitypolicyviolation event), no token readable by page
// script after login (localStorage, sessionStorage, document.cookie), a reload stays
// logged in (the refresh token is an HttpOnly cookie), and a message body with HTML
// renders as text.
import { User, assert, log, until, visible } from './lib.mjs';

const JWT = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;

async function storage(page) {
  return page.evaluate(() => ({
    local: Object.fromEntries(Object.entries(localStorage)),
    session: Object.fromEntries(Object.entries(sessionStorage)),
    cookie: document.cookie,
  }));
}

async function expectNoTokens(user, when) {
  const st = await storage(user.page);
  const flat = JSON.stringify(st);
  log(`${when}: localStorage keys ${JSON.stringify(Object.keys(st.local))}, sessionStorage keys ${JSON.stringify(Object.keys(st.session))}, document.cookie ${st.cookie ? 'names ' + JSON.stringify(st.cookie.split(';').map((c) => c.split('=')[0].trim())) : 'empty'}`);
  assert(!JWT.test(flat), `${when}: a JWT-looking string is readable by page script: ${flat.match(JWT)?.[0].slice(0, 20)}…`);
  // An opaque token (the refresh token is 256 random bits) is a long run of base64url.
  for (const [area, entries] of [['localStorage', st.local], ['sessionStorage', st.session]]) {
    for (const [k, v] of Object.entries(entries)) {
      assert(!/[A-Za-z0-9_+/=-]{32,}/.test(v), `${when}: ${area}[${k}] holds a token-like string (${v.length} chars)`);
    }
  }
  const cookies = await user.context.cookies();
  log(`${when}: cookies ${JSON.stringify(cookies.map((c) => ({ name: c.name, path: c.path, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure })))}`);
  for (const c of cookies) {
    if (c.value.length >= 16) assert(!flat.includes(c.value), `${when}: the value of cookie ${c.name} is readable by page script`);
    if (!c.httpOnly) assert(!/refresh|token|session/i.test(c.name), `${when}: cookie ${c.name} is not HttpOnly`);
  }
  return cookies;
}

export default async function security(browser) {
  const alice = await new User(browser, 'Alice').open();
  const bob = await new User(browser, 'Bob').open();
  const page = alice.page;

  const res = await alice.goto('/');
  const csp = res.headers()['content-security-policy'];
  log(`Content-Security-Policy: ${csp}`);
  assert(csp, 'the page has no Content-Security-Policy header');
  const scriptSrc = (csp.split(';').map((d) => d.trim()).find((d) => d.startsWith('script-src')) ||
    csp.split(';').map((d) => d.trim()).find((d) => d.startsWith('default-src')) || '');
  assert(scriptSrc && !/'unsafe-inline'|'unsafe-eval'|\*/.test(scriptSrc), `script-src allows inline or any script: ${scriptSrc}`);

  await visible(page.getByRole('textbox', { name: 'Username', exact: true }), 'the login form');
  await page.evaluate(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  try {
    await page.addScriptTag({ content: 'window.__pwned = 1' });
    log('addScriptTag returned (the script element was inserted)');
  } catch (e) {
    log(`addScriptTag refused: ${e.message.split('\n')[0]}`);
  }
  await page.evaluate(() => {
    const img = document.createElement('img');
    img.setAttribute('src', 'data:,not-an-image');
    img.setAttribute('onerror', 'window.__pwned2 = 1');
    document.body.appendChild(img);
  });
  const violations = await until(
    () => page.evaluate(() => (window.__violations.length >= 2 ? window.__violations : null)),
    'securitypolicyviolation events for the inline script and the inline handler',
  );
  log(`violations: ${JSON.stringify(violations)}`);
  assert((await page.evaluate(() => window.__pwned)) === undefined, 'an inline script ran');
  assert((await page.evaluate(() => window.__pwned2)) === undefined, 'an inline event handler ran');

  await alice.register();
  await bob.register();
  const cookies = await expectNoTokens(alice, 'after registering');
  assert(cookies.some((c) => c.httpOnly), 'no HttpOnly cookie after logging in: how would a reload stay logged in?');

  await page.reload();
  await visible(alice.nav, 'Alice: the Conversations navigation after a reload (still logged in)');
  assert(!(await page.getByRole('button', { name: 'Log in', exact: true }).isVisible()), 'the login form is shown after a reload');
  await expectNoTokens(alice, 'after a reload');

  // A fresh tab of the same browser (same cookie jar) is logged in too.
  const tab = await alice.context.newPage();
  await tab.goto('/');
  await visible(tab.getByRole('navigation', { name: 'Conversations' }), 'a new tab of Alice: logged in');
  await tab.close();

  const html = '<img src=x onerror=alert(1)>';
  await alice.startDM(bob);
  await alice.send(html);
  await bob.openRoom(alice.displayName);
  for (const u of [alice, bob]) {
    await u.waitMessage(html);
    const text = await u.message(html).first().innerText();
    assert(text.includes(html), `${u.first}: the message does not show the literal HTML: ${JSON.stringify(text)}`);
    const imgs = await u.log.locator('img[src="x"]').count();
    assert(imgs === 0, `${u.first}: the message body became an <img> element`);
    assert(!u.unexpectedDialog, `${u.first}: a JavaScript dialog opened: ${u.unexpectedDialog}`);
  }
  await expectNoTokens(bob, 'Bob, after chatting');
}
