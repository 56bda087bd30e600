// dm: two people register through the UI and talk in a direct room: unread badge,
// typing, Delivered then Read, and exactly one copy of every message in order.
import { User, expectContiguous, expectOnceInOrder, log, visible, waitTyping } from './lib.mjs';

export default async function dm(browser, { base } = {}) {
  const alice = await new User(browser, 'Alice', { base }).open();
  const bob = await new User(browser, 'Bob', { base }).open();
  await alice.register();
  await bob.register();

  await alice.startDM(bob);
  const m1 = `Hi Bob, it is Alice ${alice.username.slice(-4)}`;
  await alice.send(m1);
  await alice.waitMessage(m1);

  // Bob has not opened the room: it shows in his list with an unread badge, and his
  // client reports delivery.
  const entry = await visible(bob.room(alice.displayName), `Bob: Alice's DM in the room list`);
  await visible(entry.locator('[aria-label="1 unread"]'), 'Bob: unread badge "1 unread" on the DM');
  await alice.waitStatus(m1, 'Delivered');
  log('Alice sees Delivered');

  await bob.openRoom(alice.displayName);
  await bob.waitMessage(m1);
  await alice.waitStatus(m1, 'Read');
  log('Alice sees Read');

  await waitTyping(bob, alice);
  log('Alice sees Bob typing');

  const m2 = `Hello Alice, Bob here ${bob.username.slice(-4)}`;
  await bob.send(m2);
  await alice.waitMessage(m2);
  await bob.waitMessage(m2);
  await bob.waitStatus(m2, 'Read');
  const m3 = 'Great, the chat works';
  await alice.send(m3);
  await bob.waitMessage(m3);
  await alice.waitStatus(m3, 'Read');

  // Both are connected: each sees the other online (the presence dot of a DM).
  await visible(alice.room(bob.displayName).locator('[aria-label="online"]'), "Alice: Bob's presence dot says online");
  await visible(bob.room(alice.displayName).locator('[aria-label="online"]'), "Bob: Alice's presence dot says online");

  for (const u of [alice, bob]) {
    await expectContiguous(u, 3);
    await expectOnceInOrder(u, [m1, m2, m3]);
  }
  return { alice, bob };
}
