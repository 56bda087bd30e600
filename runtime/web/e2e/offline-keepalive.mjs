// offline-keepalive: Bob's browser goes offline with context.setOffline alone, the way a
// dropped Wi-Fi looks: no TCP reset, the WebSocket just goes silent. The client must notice
// by itself (its keepalive) and show Reconnecting…; Alice writes meanwhile; once online,
// Bob has everything exactly once. How long the detection took is printed, not asserted.
import { User, expectContiguous, expectOnceInOrder, gone, log, visible } from './lib.mjs';

export default async function offlineKeepalive(browser) {
  const alice = await new User(browser, 'Alice').open();
  const bob = await new User(browser, 'Bob').open();
  await alice.register();
  await bob.register();
  await alice.startDM(bob);
  const bodies = ['Still there?'];
  await alice.send(bodies[0]);
  await bob.openRoom(alice.displayName);
  await bob.waitMessage(bodies[0]);

  await bob.context.setOffline(true);
  const t0 = Date.now();
  await visible(bob.reconnecting, 'Bob: the "Reconnecting…" status, from the client\'s keepalive', 90_000);
  log(`Bob's client noticed the silent connection after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (let i = 1; i <= 3; i++) {
    bodies.push(`Sent while your Wi-Fi was down #${i}`);
    await alice.send(bodies.at(-1));
  }
  for (const b of bodies) await visible(alice.message(b).and(alice.log.locator('[data-seq]')), `Alice: "${b}" stored`);
  await bob.context.setOffline(false);
  await gone(bob.reconnecting, 'Bob: the "Reconnecting…" status', 60_000);
  await bob.waitMessage(bodies.at(-1));
  await expectContiguous(bob, bodies.length);
  await expectOnceInOrder(bob, bodies);
}
