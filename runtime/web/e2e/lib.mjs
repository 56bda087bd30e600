// Shared helpers of the browser scenarios. Elements are found only by the accessible
// roles and names of the contract in ../README.md ("Accessible names"), plus the
// documented data-seq / data-client-id attributes: a test that needs anything else is a
// test of the implementation, not of what a user (or a screen reader) sees.
//
// Waits are for conditions (until / locator.waitFor) with generous timeouts; no sleep is
// ever an assertion and no duration is ever asserted.
import { chromium } from 'playwright-core';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export const BASE = (process.env.PARLEY_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const ARTIFACTS = process.env.PARLEY_ARTIFACTS || path.resolve('.test/browser/manual');
mkdirSync(ARTIFACTS, { recursive: true });

export const TIMEOUT = 30_000; // default wait for anything a user would wait for
const started = Date.now();

export function log(...args) {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${s}s]`, ...args);
}

export function assert(cond, message) {
  if (!cond) throw new Error('assertion failed: ' + message);
}

// until polls fn until it returns a truthy value and returns it; it throws after timeout
// with what it was waiting for and the last value seen.
export async function until(fn, what, { timeout = TIMEOUT, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last, lastErr;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const detail = lastErr ? `; last error: ${lastErr.message}` : `; last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout / 1000}s waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

export async function visible(locator, what, timeout = TIMEOUT) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout });
  } catch (e) {
    throw new Error(`timed out after ${timeout / 1000}s waiting for ${what} to be visible`);
  }
  return locator.first();
}

export async function gone(locator, what, timeout = TIMEOUT) {
  try {
    await locator.first().waitFor({ state: 'hidden', timeout });
  } catch (e) {
    throw new Error(`timed out after ${timeout / 1000}s waiting for ${what} to disappear`);
  }
}

export function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

const runID = randomBytes(3).toString('hex');

// person returns fresh credentials: usernames are random per run, so scenarios can share
// a server and reruns never collide.
export function person(first) {
  const tag = randomBytes(2).toString('hex');
  return {
    username: `${first.toLowerCase()}_${runID}${tag}`,
    displayName: `${first} ${tag}`,
    password: 'correct horse battery staple',
  };
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.PARLEY_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
  return browser;
}

// users are every User made in this run, for failure screenshots.
export const users = [];

// User is one person in a browser context of their own.
export class User {
  constructor(browser, first, opts = {}) {
    Object.assign(this, person(first));
    if (opts.displayName) this.displayName = opts.displayName;
    this.first = first;
    this.browser = browser;
    this.opts = opts;
    users.push(this);
  }

  // registerAPI creates the account through the REST API (for seeding scenarios whose
  // subject is not registration); the browser then logs in through the UI.
  async registerAPI() {
    const res = await api('POST', '/auth/register', {
      body: { username: this.username, password: this.password, display_name: this.displayName },
      base: this.opts.base || BASE,
    });
    this.id = res.user?.id;
    this.token = res.access_token;
    return this;
  }

  async open() {
    this.context = await this.browser.newContext({
      viewport: this.opts.viewport || DESKTOP,
      bypassCSP: !!this.opts.bypassCSP,
      acceptDownloads: true,
      baseURL: this.opts.base || BASE,
      locale: 'en-US',
      reducedMotion: 'reduce',
    });
    this.context.setDefaultTimeout(TIMEOUT);
    this.page = await this.context.newPage();
    this.consoleErrors = [];
    this.page.on('pageerror', (e) => {
      this.consoleErrors.push(String(e));
      log(`${this.first}: page error: ${e}`);
    });
    this.page.on('console', (m) => {
      if (m.type() === 'error') {
        this.consoleErrors.push(m.text());
        log(`${this.first}: console error: ${m.text()}`);
      }
    });
    this.page.on('dialog', (d) => {
      log(`${this.first}: unexpected JS dialog: ${d.type()} ${d.message()}`);
      this.unexpectedDialog = d.message();
      d.dismiss().catch(() => {});
    });
    return this;
  }

  get nav() {
    return this.page.getByRole('navigation', { name: 'Conversations' });
  }
  get main() {
    return this.page.getByRole('main');
  }
  get log() {
    return this.page.getByRole('log', { name: 'Messages' });
  }
  get composer() {
    return this.page.getByRole('textbox', { name: 'Message', exact: true });
  }
  get reconnecting() {
    return this.page.getByRole('status').filter({ hasText: 'Reconnecting…' });
  }

  async goto(url = '/') {
    return this.page.goto(url);
  }

  async register() {
    await this.goto('/');
    const toRegister = this.page
      .getByRole('button', { name: 'Create an account', exact: true })
      .or(this.page.getByRole('link', { name: 'Create an account', exact: true }));
    await (await visible(toRegister, `${this.first}: "Create an account"`)).click();
    await this.page.getByRole('textbox', { name: 'Username', exact: true }).fill(this.username);
    await this.page.getByLabel('Password', { exact: true }).fill(this.password);
    await this.page.getByRole('textbox', { name: 'Display name', exact: true }).fill(this.displayName);
    await this.page.getByRole('button', { name: 'Create account', exact: true }).click();
    await visible(this.nav, `${this.first}: the Conversations navigation after registering`);
    log(`${this.first} registered as @${this.username}`);
    return this;
  }

  async login() {
    await this.goto('/');
    await this.page.getByRole('textbox', { name: 'Username', exact: true }).fill(this.username);
    await this.page.getByLabel('Password', { exact: true }).fill(this.password);
    await this.page.getByRole('button', { name: 'Log in', exact: true }).click();
    await visible(this.nav, `${this.first}: the Conversations navigation after logging in`);
    log(`${this.first} logged in`);
    return this;
  }

  // pick finds a person in a people search (New chat / New group / Add people).
  async pick(scope, textboxName, other) {
    await scope.getByRole('textbox', { name: textboxName }).or(scope.getByRole('searchbox', { name: textboxName })).first().fill(other.username);
    const result = scope.getByRole('button', { name: new RegExp(`@${escapeRe(other.username)}`) });
    await (await visible(result, `${this.first}: search result @${other.username}`)).click();
  }

  async startDM(other) {
    await this.page.getByRole('button', { name: 'New chat', exact: true }).click();
    const dialog = this.page.getByRole('dialog', { name: 'New chat' });
    await visible(dialog, `${this.first}: New chat dialog`);
    await this.pick(dialog, 'Search people', other);
    await this.waitHeading(other.displayName);
    log(`${this.first} opened a DM with ${other.first}`);
  }

  async createGroup(name, others) {
    await this.page.getByRole('button', { name: 'New group', exact: true }).click();
    const dialog = this.page.getByRole('dialog', { name: 'New group' });
    await visible(dialog, `${this.first}: New group dialog`);
    await dialog.getByRole('textbox', { name: 'Group name' }).fill(name);
    for (const o of others) await this.pick(dialog, 'Add people', o);
    await dialog.getByRole('button', { name: 'Create group', exact: true }).click();
    await this.waitHeading(name);
    log(`${this.first} created group ${name}`);
  }

  async waitHeading(name) {
    await visible(this.page.getByRole('heading', { level: 2, name, exact: true }), `${this.first}: conversation heading "${name}"`);
  }

  // room is a room's entry in the room list (its accessible name begins with the room's name).
  room(name) {
    const re = new RegExp('^' + escapeRe(name));
    return this.nav.getByRole('link', { name: re }).or(this.nav.getByRole('button', { name: re }));
  }

  async openRoom(name) {
    await (await visible(this.room(name), `${this.first}: room "${name}" in the room list`)).click();
    await this.waitHeading(name);
  }

  async send(text) {
    await this.composer.fill(text);
    await this.page.getByRole('button', { name: 'Send', exact: true }).click();
  }

  messages() {
    return this.log.locator('[data-client-id], [data-seq]');
  }

  message(text) {
    return this.messages().filter({ hasText: text });
  }

  async waitMessage(text, timeout = TIMEOUT) {
    return visible(this.message(text), `${this.first}: message "${text}"`, timeout);
  }

  async waitStatus(text, status, timeout = TIMEOUT) {
    const el = this.message(text).locator(`[aria-label="${status}"]`);
    await visible(el, `${this.first}: status "${status}" on message "${text}"`, timeout);
  }

  // seqs returns the data-seq values of the message list in DOM order.
  async seqs() {
    return this.log.evaluate((el) =>
      [...el.querySelectorAll('[data-seq]')].map((m) => Number(m.getAttribute('data-seq'))),
    );
  }

  // texts returns the message elements' text in DOM order.
  async texts() {
    return this.messages().allInnerTexts();
  }

  async shot(name) {
    const file = path.join(ARTIFACTS, `${name}.png`);
    await this.page.screenshot({ path: file });
    log(`screenshot ${file}`);
    return file;
  }

  async close() {
    await this.context?.close().catch(() => {});
  }
}

// expectContiguous checks that the message list holds exactly seq 1..n in order, each once.
export async function expectContiguous(user, n) {
  const seqs = await until(async () => {
    const s = await user.seqs();
    return s.length >= n ? s : null;
  }, `${user.first}: ${n} messages with a sequence number`);
  const want = Array.from({ length: n }, (_, i) => i + 1);
  assert(
    JSON.stringify(seqs) === JSON.stringify(want),
    `${user.first}: data-seq in DOM order = ${JSON.stringify(seqs)}, want ${JSON.stringify(want)} (gap, duplicate or disorder)`,
  );
}

// expectOnce checks that each body appears in exactly one message element, in this order.
export async function expectOnceInOrder(user, bodies) {
  for (const b of bodies) {
    const n = await user.message(b).count();
    assert(n === 1, `${user.first}: message "${b}" appears ${n} times, want 1`);
  }
  const texts = await user.texts();
  const positions = bodies.map((b) => texts.findIndex((t) => t.includes(b)));
  for (let i = 1; i < positions.length; i++) {
    assert(positions[i - 1] < positions[i], `${user.first}: messages out of order: ${JSON.stringify(bodies)} at ${JSON.stringify(positions)}`);
  }
}

// waitTyping keeps `typist` typing in the composer until `watcher` sees the typing status.
// Typing notifications are throttled (3 s), so one keystroke may be swallowed; the loop
// keeps typing like a person would.
export async function waitTyping(typist, watcher, { timeout = TIMEOUT } = {}) {
  const status = watcher.page.getByRole('status').filter({ hasText: `${typist.displayName} is typing…` });
  let i = 0;
  await until(async () => {
    await typist.composer.press(i++ % 2 === 0 ? 'a' : 'Backspace');
    return status.first().isVisible();
  }, `${watcher.first} to see "${typist.displayName} is typing…"`, { timeout, interval: 300 });
  return status;
}

// api is a small REST client for seeding (never for what a scenario asserts about the UI).
export async function api(method, route, { token, body, base = BASE } = {}) {
  const res = await fetch(base + '/api/v1' + route, {
    method,
    headers: {
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...(token ? { Authorization: 'Bearer ' + token } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const err = new Error(`${method} ${route}: ${res.status} ${text.slice(0, 200)}`);
    err.status = res.status;
    throw err;
  }
  return json;
}

// png encodes an RGB image (8 bit, no alpha) as a valid PNG with the standard library.
export function png(width, height, pixel) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  let o = 0;
  for (let y = 0; y < height; y++) {
    raw[o++] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      raw[o++] = r;
      raw[o++] = g;
      raw[o++] = b;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const crcTable = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

function crc32(buf) {
  let c = -1;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return c ^ -1;
}

// samplePNG is a 640x400 picture (a gradient with a sun), big enough for a thumbnail.
export function samplePNG() {
  return png(640, 400, (x, y) => {
    const dx = x - 470, dy = y - 120;
    if (dx * dx + dy * dy < 60 * 60) return [255, 205, 60];
    if (y > 300) return [40 + (x % 40), 120 + (y - 300) / 2, 60];
    return [70 + y / 4, 130 + y / 5, 230 - y / 8];
  });
}

export async function downloadSHA(page, click) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: TIMEOUT }), click()]);
  const file = await download.path();
  const bytes = readFileSync(file);
  return { name: download.suggestedFilename(), sha: sha256(bytes), size: bytes.length };
}

export function writeJSON(name, value) {
  const file = path.join(ARTIFACTS, name);
  writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
  log(`wrote ${file}`);
}

// hook asks the Go driver to do something outside the browser (kill a gateway) and waits
// for it to answer on stdin: the driver reads "@@hook <name>" lines from stdout.
let stdinLines;
export async function hook(name, timeout = 60_000) {
  if (!stdinLines) {
    stdinLines = [];
    process.stdin.setEncoding('utf8');
    let buf = '';
    process.stdin.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        stdinLines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }
  console.log(`@@hook ${name}`);
  const line = await until(() => stdinLines.find((l) => l.startsWith(name + ' ')), `the driver to run hook ${name}`, { timeout });
  stdinLines.splice(stdinLines.indexOf(line), 1);
  const answer = line.slice(name.length + 1);
  if (answer.startsWith('error')) throw new Error(`hook ${name}: ${answer}`);
  log(`hook ${name}: ${answer}`);
  return answer;
}

// upload attaches a file through the composer's hidden file input. The upload request is
// held until the progressbar has been seen (a small file on localhost would otherwise
// finish before anyone could look), then released; the message with the attachment is
// sent (clicking Send if the client waits for it) and its element returned.
export async function upload(user, file, attachment) {
  let release;
  const held = new Promise((r) => (release = r));
  const matcher = (url) => new URL(url).pathname.startsWith('/api/v1/files');
  const handler = async (route) => {
    const m = route.request().method();
    if (m === 'PUT' || m === 'POST') await held;
    await route.continue();
  };
  await user.page.route(matcher, handler);
  try {
    await user.main.locator('input[type=file]').first().setInputFiles(file);
    const bar = user.page.getByRole('progressbar', { name: `Uploading ${file.name}` });
    await visible(bar, `${user.first}: progressbar "Uploading ${file.name}"`);
    log(`${user.first}: progressbar for ${file.name} seen`);
    release();
    await gone(bar, `${user.first}: progressbar "Uploading ${file.name}"`);
  } finally {
    release();
    await user.page.unroute(matcher, handler);
  }
  // The message: the client may send it at once or wait for Send.
  const send = user.page.getByRole('button', { name: 'Send', exact: true });
  let clicked = false;
  await until(async () => {
    if (await attachment.first().isVisible()) return true;
    if (!clicked && (await send.isEnabled())) {
      clicked = true;
      log(`${user.first}: the attachment waits for Send; clicking it`);
      await send.click();
    }
    return false;
  }, `${user.first}: the message with ${file.name}`);
}

// imageLoaded waits until an img has decoded pixels.
export async function imageLoaded(img, what) {
  await visible(img, what);
  return until(
    () => img.first().evaluate((i) => (i.complete && i.naturalWidth > 0 ? { w: i.naturalWidth, h: i.naturalHeight } : null)),
    `${what} to load (naturalWidth > 0)`,
  );
}

// tcpProxy forwards a local port to the server; cut() drops every connection and refuses
// new ones (a dead network as the browser sees it, WebSockets included), restore() heals.
// Chromium's offline emulation alone does not reliably close an open WebSocket.
export async function tcpProxy(target = BASE) {
  const net = await import('node:net');
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) return client.destroy();
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      down = false;
    },
    close() {
      this.cut();
      server.close();
    },
  };
}

// settled waits until an element's CSS transitions and animations have finished (for
// screenshots: a banner caught mid-slide looks clipped).
export async function settled(locator, what) {
  await until(
    () => locator.first().evaluate((e) => e.getAnimations({ subtree: true }).every((a) => a.playState === 'finished' || a.playState === 'idle')),
    `${what} to finish animating`,
  );
}
