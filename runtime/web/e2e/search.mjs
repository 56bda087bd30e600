// search: Alice (desktop) and Bob (phone size) share a DM with 80 messages; one early
// message holds a rare word, which Carol also wrote in her own DM with Bob. Alice's search
// finds only her room's message, shows the word in a <mark>, and opening the result loads
// older history down to it, scrolls it into view and focuses it. Bob mutes the DM in Room
// details (the `Notifications` radio group): the room list shows it muted, its unread
// badge stays, and the tab title counts only the rooms that are not muted.
import { createRequire } from 'node:module';
import { PHONE, User, api, assert, escapeRe, log, until, visible, writeJSON } from './lib.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

// audit runs axe-core on the page and fails on serious or critical violations.
async function audit(user, screen) {
  await user.page.addScriptTag({ path: axePath });
  const violations = await user.page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, html: n.html })) }));
  });
  writeJSON(`axe-${screen}.json`, violations);
  for (const v of violations) log(`axe ${screen}: [${v.impact}] ${v.id}: ${v.help} ${JSON.stringify(v.nodes.map((n) => n.target))}`);
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert(bad.length === 0, `axe ${screen}: ${bad.map((v) => v.id).join(', ')}`);
}

async function sendAPI(user, roomId, clientId, body) {
  for (let i = 0; ; i++) {
    try {
      return (await api('POST', `/rooms/${roomId}/messages`, { token: user.token, body: { client_id: clientId, body } })).message;
    } catch (err) {
      if (err.status !== 429 || i > 100) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export default async function search(browser) {
  // Alice's context bypasses the CSP so that axe-core can be injected as a script.
  const alice = await (await new User(browser, 'Alice', { bypassCSP: true }).registerAPI()).open();
  const bob = await (await new User(browser, 'Bob', { viewport: PHONE }).registerAPI()).open();
  const carol = await new User(browser, 'Carol').registerAPI();

  const dm = await api('POST', '/rooms/direct', { token: alice.token, body: { user_id: bob.id } });
  const foreign = await api('POST', '/rooms/direct', { token: carol.token, body: { user_id: bob.id } });
  const word = 'pelican' + alice.username.slice(-4);
  const needle = `The launch code is ${word}, keep it safe`;
  for (let i = 1; i <= 80; i++) {
    const from = i % 2 ? alice : bob;
    await sendAPI(from, dm.id, `s${i}`, i === 5 ? needle : `Filler message number ${i} from ${from.first}`);
  }
  await sendAPI(carol, foreign.id, 'c1', `Carol also says ${word} in her own room`);
  log('seeded 80 messages in the DM (the rare word at seq 5) and one in a room Alice is not in');

  // Alice searches and opens the hit.
  await alice.login();
  await alice.page.getByRole('button', { name: 'Search', exact: true }).click();
  const dialog = alice.page.getByRole('dialog', { name: 'Search' });
  await visible(dialog, 'Alice: dialog "Search"');
  await dialog.getByRole('searchbox', { name: 'Search messages' }).fill(word.toUpperCase());
  const hit = dialog.getByRole('button', { name: new RegExp(escapeRe(word)) });
  await visible(hit, `Alice: a search result for ${word}`);
  await until(async () => (await hit.count()) === 1, 'Alice: exactly one result (not the one in Carol\'s room)', { timeout: 5000 });
  const name = await hit.first().innerText();
  assert(name.includes(bob.displayName) && name.includes(needle) && !name.includes('Carol'), `result reads ${JSON.stringify(name)}`);
  const marks = await hit.locator('mark').allInnerTexts();
  assert(JSON.stringify(marks) === JSON.stringify([word]), `highlighted ${JSON.stringify(marks)}, want [${word}]`);
  await alice.shot('search-results');
  await audit(alice, 'search-results');
  await hit.click();
  await alice.waitHeading(bob.displayName);
  const target = alice.log.locator('[data-seq="5"]');
  await visible(target, 'Alice: message 5 loaded from older history');
  await until(
    () =>
      target.evaluate((el) => {
        let sc = el.parentElement;
        while (sc && !(sc.scrollHeight > sc.clientHeight && /(auto|scroll)/.test(getComputedStyle(sc).overflowY))) sc = sc.parentElement;
        const r = el.getBoundingClientRect();
        const box = (sc ?? document.documentElement).getBoundingClientRect();
        return r.top >= box.top - 1 && r.bottom <= box.bottom + 1 && el.textContent.includes('launch code');
      }),
    'Alice: the hit scrolled into view',
  );
  await until(() => target.evaluate((el) => el.contains(document.activeElement)), 'Alice: the hit has the focus');
  log('Alice opened the hit: message 5 is loaded, in view and focused');
  await alice.shot('search-opened');
  await alice.page.getByRole('button', { name: 'Room details', exact: true }).click();
  const aliceDetails = alice.page.getByRole('dialog', { name: 'Room details' });
  await visible(aliceDetails.getByRole('radiogroup', { name: 'Notifications' }), 'Alice: radio group "Notifications"');
  await audit(alice, 'room-details-notifications');
  await alice.page.keyboard.press('Escape');

  // Bob mutes the DM.
  await bob.login();
  await until(async () => (await bob.page.title()) === `(41) Parley`, 'Bob: 40 unread from Alice + 1 from Carol in the title');
  await bob.openRoom(alice.displayName);
  await bob.page.getByRole('button', { name: 'Room details', exact: true }).click();
  const details = bob.page.getByRole('dialog', { name: 'Room details' });
  await visible(details, 'Bob: dialog "Room details"');
  const group = details.getByRole('radiogroup', { name: 'Notifications' });
  await visible(group, 'Bob: radio group "Notifications"');
  assert(await group.getByRole('radio', { name: /^All messages/ }).isChecked(), 'All messages is the default');
  await group.getByRole('radio', { name: /^Muted/ }).check();
  await until(() => group.getByRole('radio', { name: /^Muted/ }).isChecked(), 'Bob: Muted checked');
  await until(async () => (await group.getAttribute('aria-busy')) !== 'true', 'Bob: the setting saved');
  await bob.shot('notifications-muted');
  await bob.page.keyboard.press('Escape');
  await bob.page.getByRole('button', { name: 'Back to conversations', exact: true }).click();
  const entry = bob.room(alice.displayName);
  await visible(entry.getByRole('img', { name: 'muted' }), "Bob: the muted icon on Alice's DM");
  await visible(bob.room(carol.displayName).getByRole('img', { name: '1 unread' }), "Bob: Carol's DM with 1 unread");

  const later = `After the mute ${word.slice(-4)}`;
  await alice.send(later);
  await alice.waitStatus(later, 'Delivered');
  await visible(entry.getByRole('img', { name: '1 unread' }), "Bob: the muted DM's badge with 1 unread");
  await until(async () => (await bob.page.title()) === '(1) Parley', "Bob: the title counts Carol's unread only");
  log("Bob's muted DM shows its badge but stays out of the title");
  await bob.shot('muted-room-list');

  // The level is stored: a reload shows it again.
  await bob.page.reload();
  await visible(bob.room(alice.displayName).getByRole('img', { name: 'muted' }), 'Bob: still muted after a reload');
  for (const u of [alice, bob]) assert(u.consoleErrors.length === 0, `${u.first}: console errors ${JSON.stringify(u.consoleErrors)}`);
}
