// offline: Bob loses the network while Alice writes five messages. He sees the
// Reconnecting… banner, and once back online has all five exactly once, in order, with no
// gap; then his own message reaches Alice.
//
// Bob's browser reaches the server through a TCP proxy in this script: context.setOffline
// makes the browser offline for new requests, and cutting the proxy kills the open
// WebSocket the way a real network loss does (Chromium's offline emulation does not
// reliably close it).
import { User, expectContiguous, expectOnceInOrder, gone, log, settled, tcpProxy, visible } from './lib.mjs';

export default async function offline(browser) {
  const proxy = await tcpProxy();
  try {
    const alice = await new User(browser, 'Alice').open();
    const bob = await new User(browser, 'Bob', { base: proxy.url }).open();
    await alice.register();
    await bob.register();
    await alice.startDM(bob);
    const first = 'Are you there?';
    await alice.send(first);
    await bob.openRoom(alice.displayName);
    await bob.waitMessage(first);
    await alice.waitStatus(first, 'Read');

    await bob.context.setOffline(true);
    proxy.cut();
    log('Bob is offline');
    await visible(bob.reconnecting, 'Bob: the "Reconnecting…" status', 60_000);
    log('Bob sees Reconnecting…');
  await settled(bob.reconnecting, 'the Reconnecting… banner');
  await bob.shot('reconnecting');

    const bodies = [first];
    for (let i = 1; i <= 5; i++) {
      const body = `While you were away #${i}`;
      bodies.push(body);
      await alice.send(body);
    }
    // Every one of them stored (a sequence number) before Bob comes back.
    for (const b of bodies) await visible(alice.message(b).and(alice.log.locator('[data-seq]')), `Alice: "${b}" stored`);

    proxy.restore();
    await bob.context.setOffline(false);
    log('Bob is back online');
    await gone(bob.reconnecting, 'Bob: the "Reconnecting…" status', 60_000);
    log('Bob reconnected');
    await bob.waitMessage(bodies.at(-1));
    await expectContiguous(bob, 6);
    await expectOnceInOrder(bob, bodies);

    const back = 'Back online, got all five';
    await bob.send(back);
    await alice.waitMessage(back);
    await expectContiguous(alice, 7);
    await expectOnceInOrder(alice, [...bodies, back]);
  } finally {
    proxy.close();
  }
}
