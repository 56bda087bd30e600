// conversation-actions: what people do to messages, between Alice (desktop) and Bob (phone
// size, reaching the server through a TCP proxy so that he can lose the network).
//
// Replies: Bob opens a message's actions (the `Message actions` button), picks `Reply`,
// cancels once (`Cancel reply`), replies; both see the quote. Alice answers Bob's reply
// while Bob is offline; after he resumes, the reply and its quote are there. A reply to a
// message far out of the loaded page shows a quote fetched from the server, and `Go to
// replied message` loads older history down to the original and scrolls to it.
import { PHONE, User, api, assert, expectContiguous, gone, log, tcpProxy, until, visible } from './lib.mjs';

// sendAPI sends through REST, waiting out the per-user rate limit.
async function sendAPI(user, roomId, body) {
  for (let i = 0; ; i++) {
    try {
      return (await api('POST', `/rooms/${roomId}/messages`, { token: user.token, body })).message;
    } catch (err) {
      if (err.status !== 429 || i > 50) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

// own is the message holding text itself, not in the quote of a reply to it.
function own(user, text) {
  const quoting = user.page.getByRole('button', { name: 'Go to replied message' }).filter({ hasText: text });
  return user.message(text).filter({ hasNot: quoting });
}

// actions opens the actions of the message holding text and returns the dialog.
async function actions(user, text) {
  const msg = await visible(own(user, text), `${user.first}: message "${text}"`);
  await msg.hover();
  await msg.getByRole('button', { name: 'Message actions', exact: true }).click();
  return visible(user.page.getByRole('dialog', { name: 'Message actions' }), `${user.first}: the Message actions dialog`);
}

async function reply(user, text, answer) {
  const dialog = await actions(user, text);
  await dialog.getByRole('button', { name: 'Reply', exact: true }).click();
  await gone(dialog, `${user.first}: the Message actions dialog`);
  await visible(user.page.getByRole('button', { name: 'Cancel reply', exact: true }), `${user.first}: the reply bar`);
  await user.send(answer);
  await gone(user.page.getByRole('button', { name: 'Cancel reply', exact: true }), `${user.first}: the reply bar after sending`);
}

async function editMessage(user, text, next) {
  const dialog = await actions(user, text);
  await dialog.getByRole('button', { name: 'Edit', exact: true }).click();
  const editor = await visible(user.page.getByRole('textbox', { name: 'Edit message' }), `${user.first}: the inline editor`);
  await editor.fill(next);
  await editor.press('Enter');
  await gone(editor, `${user.first}: the inline editor after Enter`);
  await expectEdited(user, next);
}

async function expectEdited(user, text) {
  await visible(own(user, text).filter({ hasText: /edited/ }), `${user.first}: "${text}" marked edited`);
}

async function deleteMessage(user, text) {
  const dialog = await actions(user, text);
  await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
  const confirm = await visible(user.page.getByRole('dialog', { name: 'Delete message' }), `${user.first}: the Delete message dialog`);
  await confirm.getByRole('button', { name: 'Delete', exact: true }).click();
  await gone(confirm, `${user.first}: the Delete message dialog`);
}

async function tombstone(user, seq) {
  await visible(user.log.locator(`[data-seq="${seq}"]`).filter({ hasText: 'Message deleted' }), `${user.first}: message ${seq} is a tombstone`);
}

async function pickReaction(user, text, emoji) {
  const dialog = await actions(user, text);
  await dialog.getByRole('button', { name: 'React', exact: true }).click();
  const picker = await visible(user.page.getByRole('dialog', { name: 'Add reaction' }), `${user.first}: the Add reaction dialog`);
  await picker.getByRole('button', { name: emoji, exact: true }).first().click();
  await gone(picker, `${user.first}: the Add reaction dialog`);
}

// chip waits for the reaction toggle button named name (`<emoji> <count>`) on a message,
// pressed or not.
async function chip(user, text, name, pressed) {
  const b = own(user, text).getByRole('button', { name, exact: true, pressed });
  return visible(b, `${user.first}: reaction "${name}"${pressed ? ' (mine)' : ''} on "${text}"`);
}

// expectQuote checks that the message holding text quotes quoted.
async function expectQuote(user, text, quoted) {
  const quote = own(user, text).getByRole('button', { name: 'Go to replied message' });
  await visible(quote.filter({ hasText: quoted }), `${user.first}: "${text}" quotes "${quoted}"`);
  return quote;
}

export default async function conversationActions(browser) {
  const proxy = await tcpProxy();
  try {
    const alice = await new User(browser, 'Alice').registerAPI();
    await alice.open();
    await alice.login();
    const bob = await new User(browser, 'Bob', { base: proxy.url, viewport: PHONE }).open();
    await bob.register();
    await alice.startDM(bob);
    const roomId = decodeURIComponent(/#\/room\/(.+)$/.exec(alice.page.url())[1]);

    // --- Replies ---
    const q = 'Lunch at noon?';
    await alice.send(q);
    await bob.openRoom(alice.displayName);
    await bob.waitMessage(q);

    // Reply, then change one's mind: the reply bar goes away and nothing is sent.
    let dialog = await actions(bob, q);
    await dialog.getByRole('button', { name: 'Reply', exact: true }).click();
    const cancel = await visible(bob.page.getByRole('button', { name: 'Cancel reply', exact: true }), 'Bob: the reply bar');
    await cancel.click();
    await gone(cancel, 'Bob: the reply bar after Cancel reply');

    const a1 = 'Yes, noon works';
    await reply(bob, q, a1);
    await expectQuote(bob, a1, q);
    await alice.waitMessage(a1);
    await expectQuote(alice, a1, q);
    log('a reply and its quote reach both');

    const tickets = 'I will bring the tickets';
    await alice.send(tickets);
    await bob.waitMessage(tickets);

    // Bob loses the network. Meanwhile Alice replies to his reply, edits her question and
    // deletes a message: after he resumes, all of it is there, in order.
    await bob.context.setOffline(true);
    proxy.cut();
    await visible(bob.reconnecting, 'Bob: the "Reconnecting…" status', 60_000);
    const a2 = 'Great, see you at the usual place';
    await reply(alice, a1, a2);
    await visible(alice.message(a2).and(alice.log.locator('[data-seq]')), `Alice: "${a2}" stored`);
    const q2 = 'Lunch at 12:30?';
    await editMessage(alice, q, q2);
    await deleteMessage(alice, tickets);
    await tombstone(alice, 3);
    await pickReaction(alice, q2, '🎉');
    await chip(alice, q2, '🎉 1', true);
    proxy.restore();
    await bob.context.setOffline(false);
    await gone(bob.reconnecting, 'Bob: the "Reconnecting…" status', 60_000);
    await bob.waitMessage(a2);
    await expectQuote(bob, a2, a1);
    await expectEdited(bob, q2);
    await tombstone(bob, 3);
    await chip(bob, q2, '🎉 1', false);
    assert((await own(bob, tickets).count()) === 0, 'Bob still sees the deleted message');
    await expectContiguous(bob, 4);
    for (const t of [q2, a1, a2]) assert((await own(bob, t).count()) === 1, `Bob: "${t}" once`);
    log('a reply, an edit, a deletion and a reaction made while Bob was offline are applied after resume');

    // Editing, cancelled with Escape, then saved with Enter; Bob sees it live.
    dialog = await actions(alice, a2);
    await dialog.getByRole('button', { name: 'Edit', exact: true }).click();
    const editor = await visible(alice.page.getByRole('textbox', { name: 'Edit message' }), 'Alice: the inline editor');
    await editor.fill('never mind');
    await editor.press('Escape');
    await gone(editor, 'Alice: the inline editor after Escape');
    await visible(own(alice, a2), `Alice: "${a2}" unchanged after Escape`);
    const a2b = 'Great, see you at the usual place, table by the window';
    await editMessage(alice, a2, a2b);
    await expectEdited(bob, a2b);
    await expectQuote(bob, a2b, a1);

    // Bob deletes his reply: a tombstone for both, and the quote of it says so.
    await deleteMessage(bob, a1);
    for (const u of [alice, bob]) {
      await tombstone(u, 2);
      await visible(
        own(u, a2b).getByRole('button', { name: 'Go to replied message' }).filter({ hasText: 'Message deleted' }),
        `${u.first}: the quote of the deleted message says "Message deleted"`,
      );
    }
    log('edits and deletions reach the other side live; quotes of deleted messages say so');

    // Reactions: Bob joins Alice's 🎉 by its chip, adds 👍 from the picker (then it is a
    // recent emoji), and takes it back; Alice sees each toggle live.
    await (await chip(bob, q2, '🎉 1', false)).click();
    await chip(bob, q2, '🎉 2', true);
    await chip(alice, q2, '🎉 2', true);
    await pickReaction(bob, q2, '👍');
    await chip(bob, q2, '👍 1', true);
    await chip(alice, q2, '👍 1', false);
    const picker = await actions(bob, q2);
    await picker.getByRole('button', { name: 'React', exact: true }).click();
    const emoji = await visible(bob.page.getByRole('dialog', { name: 'Add reaction' }), 'Bob: the Add reaction dialog');
    await visible(emoji.getByRole('region', { name: 'Recent' }).getByRole('button', { name: '👍', exact: true }), 'Bob: 👍 among the recent emoji');
    await bob.page.keyboard.press('Escape');
    await gone(emoji, 'Bob: the Add reaction dialog');
    await (await chip(bob, q2, '👍 1', true)).click();
    for (const u of [alice, bob]) await gone(own(u, q2).getByRole('button', { name: '👍 1', exact: true }), `${u.first}: the 👍 chip after Bob took it back`);
    log('reactions toggle live on both sides, with recent emoji in the picker');

    // A reply to a message far back: fill more than a page, then reply to the first one.
    const page = await api('GET', `/rooms/${roomId}/messages?after=0&limit=1`, { token: alice.token });
    const first = page.messages[0];
    assert(first.body === q2 && first.edited_at, `the first message is ${JSON.stringify(first)}, want "${q2}", edited`);
    for (let i = 1; i <= 52; i++) await sendAPI(alice, roomId, { client_id: `filler-${i}`, body: `Filler ${i}` });
    const a3 = 'Reminder: lunch, see above';
    const sent = await sendAPI(alice, roomId, { client_id: 'reminder', body: a3, reply_to: first.id });
    assert(sent.reply_to === first.id, `REST reply_to = ${sent.reply_to}`);
    await bob.waitMessage(a3);

    // Bob reloads: only the latest page is loaded, so the quote is fetched by id.
    await bob.page.reload();
    await bob.waitHeading(alice.displayName); // the room stays open across the reload (#/room/…)
    await bob.waitMessage(a3);
    await gone(bob.reconnecting, 'Bob: the "Reconnecting…" status after the reload', 60_000);
    assert((await own(bob, q2).count()) === 0, 'the original is not loaded after the reload');
    const quote = await expectQuote(bob, a3, q2);
    await quote.click();
    const original = await visible(own(bob, q2), 'Bob: the original after Go to replied message', 30_000);
    await until(
      () => original.evaluate((el) => {
        const log = el.closest('[role="log"]').getBoundingClientRect();
        const r = el.getBoundingClientRect();
        return r.top >= log.top && r.bottom <= log.bottom && document.activeElement === el;
      }),
      'the original message in view and focused',
    );
    log('Go to replied message loads older history and scrolls to the original');
    await bob.shot('reply-jump-phone');
    await alice.shot('reply-desktop');
  } finally {
    proxy.close();
  }
}
