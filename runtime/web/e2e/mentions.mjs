// mentions: Alice (desktop) mutes a group she owns with Bob (phone size). Bob writes
// "@ali", picks Alice in the composer's `Mention suggestions` listbox with the keyboard,
// and sends. Alice, reading another room, sees the muted group's `@` badge ("1 mention");
// opening the group shows the message highlighted as mentioning her, her name a mention
// span; Bob sees the mention styled too (not highlighted: it is not him). Escape closes
// the suggestions without touching the text.
import { PHONE, User, api, assert, log, gone, until, visible } from './lib.mjs';

export default async function mentions(browser) {
  const alice = await (await new User(browser, 'Alice').registerAPI()).open();
  const bob = await (await new User(browser, 'Bob', { viewport: PHONE }).registerAPI()).open();
  const name = `Book club ${alice.username.slice(-4)}`;
  const group = await api('POST', '/rooms', { token: alice.token, body: { name, member_ids: [bob.id] } });
  await api('POST', '/rooms/direct', { token: alice.token, body: { user_id: bob.id } });

  // Alice mutes the group in Room details, then reads her DM with Bob instead.
  await alice.login();
  await alice.openRoom(name);
  await alice.page.getByRole('button', { name: 'Room details', exact: true }).click();
  const details = alice.page.getByRole('dialog', { name: 'Room details' });
  const levels = details.getByRole('radiogroup', { name: 'Notifications' });
  await visible(levels, 'Alice: radio group "Notifications"');
  await levels.getByRole('radio', { name: /^Muted/ }).check();
  await until(async () => (await levels.getAttribute('aria-busy')) !== 'true', 'Alice: the level saved');
  await alice.page.keyboard.press('Escape');
  await alice.openRoom(bob.displayName);
  const entry = alice.room(name);
  await visible(entry.getByRole('img', { name: 'muted' }), 'Alice: the group shows muted');
  log('Alice muted the group and reads her DM with Bob');

  // Bob mentions Alice through the autocomplete.
  await bob.login();
  await bob.openRoom(name);
  const box = bob.composer;
  await box.click();
  await box.pressSequentially('Have you read it @ali');
  const list = bob.page.getByRole('listbox', { name: 'Mention suggestions' });
  await visible(list, 'Bob: listbox "Mention suggestions"');
  const options = list.getByRole('option');
  assert((await options.count()) === 1, `Bob: ${await options.count()} suggestions for "ali", want Alice only`);
  assert((await options.first().innerText()).includes(`@${alice.username}`), 'Bob: the suggestion names @alice…');
  await bob.page.keyboard.press('Escape');
  await gone(list, 'Bob: Escape closes the suggestions');
  assert((await box.inputValue()) === 'Have you read it @ali', 'Bob: Escape leaves the text alone');
  await box.pressSequentially('c');
  await visible(list, 'Bob: the suggestions again as he types on');
  await bob.page.keyboard.press('ArrowDown'); // one option: wraps around to it
  await bob.page.keyboard.press('Enter');
  await gone(list, 'Bob: picking closes the suggestions');
  const picked = await box.inputValue();
  assert(picked === `Have you read it @${alice.username} `, `Bob: the composer reads ${JSON.stringify(picked)}`);
  await box.pressSequentially('chapter 3?');
  await bob.page.keyboard.press('Enter');
  const text = `Have you read it @${alice.username} chapter 3?`;
  await bob.waitStatus(text, 'Delivered');
  const bobMention = bob.message(text).locator('.mention');
  await visible(bobMention, 'Bob: the mention styled in his message');
  assert((await bobMention.innerText()) === `@${alice.username}`, 'Bob: the mention span holds @alice…');
  assert((await bob.message(text).locator('.mention-me').count()) === 0, 'Bob: not highlighted as mentioning him');
  await bob.shot('mention-sent');

  // Alice: the muted group's @ badge, then the highlight.
  await visible(entry.getByRole('img', { name: '1 mention' }), "Alice: the muted group's @ badge");
  await visible(entry.getByRole('img', { name: '1 unread' }), "Alice: the muted group's unread badge");
  await alice.shot('mention-badge');
  await alice.openRoom(name);
  const msg = await alice.waitMessage(text);
  assert((await msg.getAttribute('data-mentions-me')) === 'true', 'Alice: the message is marked as mentioning her');
  const mine = msg.locator('.mention.mention-me');
  await visible(mine, 'Alice: her name highlighted');
  assert((await mine.innerText()) === `@${alice.username}`, 'Alice: the highlight holds @alice…');
  await gone(entry.getByRole('img', { name: '1 mention' }), 'Alice: the badge goes once she reads the group');
  await alice.shot('mention-highlight');
  log('Alice saw the @ badge on the muted group and the highlight');
  for (const u of [alice, bob]) assert(u.consoleErrors.length === 0, `${u.first}: console errors ${JSON.stringify(u.consoleErrors)}`);
}
