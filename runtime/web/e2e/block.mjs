// block: Bob blocks Alice from the DM's Room details. Alice's next message fails with a
// human explanation and never reaches Bob, which is checked against a message from Carol
// that is sent after Alice's failed send and does reach him.
import { User, assert, log, until, visible } from './lib.mjs';

export default async function block(browser) {
  const alice = await new User(browser, 'Alice').open();
  const bob = await new User(browser, 'Bob').open();
  const carol = await new User(browser, 'Carol').open();
  for (const u of [alice, bob, carol]) await u.register();

  await alice.startDM(bob);
  const before = 'Before the block';
  await alice.send(before);
  await bob.openRoom(alice.displayName);
  await bob.waitMessage(before);
  await carol.startDM(bob);

  await bob.page.getByRole('button', { name: 'Room details', exact: true }).click();
  const details = bob.page.getByRole('dialog', { name: 'Room details' });
  await visible(details, 'Bob: dialog "Room details"');
  await details.getByRole('button', { name: 'Block', exact: true }).click();
  await visible(details.getByRole('button', { name: 'Unblock', exact: true }), 'Bob: the Unblock button after blocking');
  log('Bob blocked Alice');
  await bob.shot('blocked');
  await bob.page.keyboard.press('Escape');

  const blocked = `You should never see this ${alice.username.slice(-4)}`;
  await alice.send(blocked);
  await alice.waitStatus(blocked, 'Failed');
  const msg = alice.message(blocked);
  await visible(msg.getByRole('button', { name: 'Retry', exact: true }), 'Alice: Retry on the failed message');
  await visible(msg.getByRole('button', { name: 'Discard', exact: true }), 'Alice: Discard on the failed message');
  // The explanation: next to the message, or in an alert.
  const explanation = await until(async () => {
    const own = (await msg.first().innerText()).replace(blocked, '').replace(/\b(Retry|Discard|Failed)\b/g, '').trim();
    const alerts = (await alice.page.getByRole('alert').allInnerTexts()).join(' ').trim();
    const text = [own, alerts].filter(Boolean).join(' | ');
    return /[A-Za-z]{3,}\s+[A-Za-z]{2,}/.test(text) ? text : null;
  }, 'Alice: a human-readable error with the failed message');
  await alice.shot('failed-send');
  log(`Alice's failed send says: ${JSON.stringify(explanation)}`);
  assert(!/^(blocked|error|failed)$/i.test(explanation), `the error is a bare code: ${explanation}`);

  // Control: Carol writes to Bob after Alice's send was refused; Bob (still in Alice's DM)
  // gets it, so anything of Alice's would have had time to arrive too.
  const control = `Carol's later message ${carol.username.slice(-4)}`;
  await carol.send(control);
  await visible(bob.room(carol.displayName).locator('[aria-label="1 unread"]'), "Bob: Carol's DM with 1 unread");
  log("Bob got Carol's later message");
  assert((await bob.page.getByText(blocked).count()) === 0, "Bob's page shows Alice's message sent after the block");
  const seqs = await bob.seqs();
  assert(JSON.stringify(seqs) === '[1]', `Bob's DM with Alice holds seqs ${JSON.stringify(seqs)}, want [1]`);
  await bob.openRoom(carol.displayName);
  await bob.waitMessage(control);
  await bob.openRoom(alice.displayName);
  await bob.waitMessage(before);
  assert((await bob.message(blocked).count()) === 0, 'Alice\'s blocked message reached Bob after reopening the DM');
}
