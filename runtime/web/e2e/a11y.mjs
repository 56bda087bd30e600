// a11y: axe-core on the login and registration forms, the room list, the New chat dialog,
// a conversation (desktop and phone), and the Room details dialog: no serious or critical
// violations. Every violation (of any impact) is printed and written to
// axe-<screen>.json.
//
// Alice's context uses bypassCSP: page.addScriptTag({path}) injects axe as an inline
// script, which the client's Content-Security-Policy rightly refuses. This scenario only.
import { createRequire } from 'node:module';
import { PHONE, User, assert, log, visible, writeJSON } from './lib.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

async function audit(user, screen) {
  await user.page.addScriptTag({ path: axePath });
  const violations = await user.page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target, html: n.html, summary: n.failureSummary })),
    }));
  });
  writeJSON(`axe-${screen.replace(/\s+/g, '-')}.json`, violations);
  for (const v of violations) {
    log(`axe ${screen}: [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})`);
    for (const n of v.nodes) log(`    ${JSON.stringify(n.target)} ${n.html.slice(0, 160)}\n      ${(n.summary || '').replace(/\n/g, '\n      ')}`);
  }
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  log(`axe ${screen}: ${violations.length} violations, ${bad.length} serious or critical`);
  return bad.map((v) => `${screen}: ${v.id} (${v.impact}, ${v.nodes.length} nodes)`);
}

export default async function a11y(browser) {
  const alice = await new User(browser, 'Alice', { bypassCSP: true }).open();
  const bob = await new User(browser, 'Bob').open();
  const failures = [];

  await alice.goto('/');
  await visible(alice.page.getByRole('textbox', { name: 'Username', exact: true }), 'the login form');
  failures.push(...(await audit(alice, 'login')));

  await alice.page.getByRole('button', { name: 'Create an account', exact: true })
    .or(alice.page.getByRole('link', { name: 'Create an account', exact: true })).click();
  await visible(alice.page.getByRole('textbox', { name: 'Display name', exact: true }), 'the registration form');
  failures.push(...(await audit(alice, 'register')));

  await alice.register();
  await bob.register();
  failures.push(...(await audit(alice, 'room list')));

  await alice.page.getByRole('button', { name: 'New chat', exact: true }).click();
  const dialog = alice.page.getByRole('dialog', { name: 'New chat' });
  await visible(dialog, 'the New chat dialog');
  await dialog.getByRole('textbox', { name: 'Search people' }).or(dialog.getByRole('searchbox', { name: 'Search people' })).first().fill(bob.username);
  await visible(dialog.getByRole('button', { name: new RegExp('@' + bob.username) }), 'a search result');
  failures.push(...(await audit(alice, 'new chat dialog')));
  await alice.page.keyboard.press('Escape');
  await alice.page.getByRole('dialog', { name: 'New chat' }).waitFor({ state: 'hidden' });

  await alice.startDM(bob);
  await alice.send('Hello Bob, checking how this reads');
  await bob.openRoom(alice.displayName);
  await bob.send('Reads fine here');
  await alice.waitMessage('Reads fine here');
  await alice.waitStatus('Hello Bob, checking how this reads', 'Read');
  failures.push(...(await audit(alice, 'conversation')));

  await alice.page.getByRole('button', { name: 'Room details', exact: true }).click();
  await visible(alice.page.getByRole('dialog', { name: 'Room details' }), 'the Room details dialog');
  failures.push(...(await audit(alice, 'room details')));
  await alice.page.keyboard.press('Escape');
  await alice.page.getByRole('dialog', { name: 'Room details' }).waitFor({ state: 'hidden' });

  await alice.page.setViewportSize(PHONE);
  await visible(alice.log, 'the conversation at phone size');
  failures.push(...(await audit(alice, 'conversation phone')));

  assert(failures.length === 0, `serious or critical accessibility violations:\n  ${failures.join('\n  ')}`);
}
