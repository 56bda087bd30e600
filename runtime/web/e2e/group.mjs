// group: Alice creates a group with Bob and Carol; each one's message reaches the other
// two, in order, once; the ticks reach Read when everyone has the room open.
import { User, expectContiguous, expectOnceInOrder, log } from './lib.mjs';

export default async function group(browser) {
  const alice = await new User(browser, 'Alice').open();
  const bob = await new User(browser, 'Bob').open();
  const carol = await new User(browser, 'Carol').open();
  for (const u of [alice, bob, carol]) await u.register();

  const name = `Hiking club ${alice.username.slice(-4)}`;
  await alice.createGroup(name, [bob, carol]);
  const g1 = 'Alice: who is in for Saturday?';
  await alice.send(g1);
  await alice.waitMessage(g1);
  for (const u of [bob, carol]) {
    await u.openRoom(name);
    await u.waitMessage(g1);
  }
  await alice.waitStatus(g1, 'Read');
  log('Alice: Read on the group message');

  const g2 = 'Bob: count me in';
  await bob.send(g2);
  for (const u of [alice, carol]) await u.waitMessage(g2);
  const g3 = 'Carol: me too, I bring snacks';
  await carol.send(g3);
  for (const u of [alice, bob]) await u.waitMessage(g3);
  await bob.waitStatus(g2, 'Read');
  await carol.waitStatus(g3, 'Read');

  await alice.shot('group');
  for (const u of [alice, bob, carol]) {
    await expectContiguous(u, 3);
    await expectOnceInOrder(u, [g1, g2, g3]);
  }
}
