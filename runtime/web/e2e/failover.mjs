// failover (behind the ingress): a DM across two gateways; the driver kills one gateway
// mid-conversation; the clients reconnect (through the ingress, to the other gateway) and
// nothing is lost or doubled.
import { User, expectContiguous, expectOnceInOrder, gone, hook, log } from './lib.mjs';

export default async function failover(browser) {
  const alice = await new User(browser, 'Alice').open();
  const bob = await new User(browser, 'Bob').open();
  await alice.register();
  await bob.register();
  await alice.startDM(bob);
  const bodies = ['Before the outage 1'];
  await alice.send(bodies[0]);
  await bob.openRoom(alice.displayName);
  await bob.waitMessage(bodies[0]);
  bodies.push('Before the outage 2');
  await bob.send(bodies[1]);
  await alice.waitMessage(bodies[1]);

  await hook('kill-gateway');
  for (let i = 1; i <= 3; i++) {
    const b = `During the failover ${i}`;
    bodies.push(b);
    await alice.send(b);
  }
  // Every WebSocket is back, on the surviving gateway.
  await hook('reconnected');
  const reply = 'Bob still here after the failover';
  await bob.waitMessage(bodies.at(-1), 60_000);
  bodies.push(reply);
  await bob.send(reply);
  await alice.waitMessage(reply, 60_000);
  for (const u of [alice, bob]) {
    await gone(u.reconnecting, `${u.first}: the "Reconnecting…" status`, 60_000);
    await expectContiguous(u, bodies.length);
    await expectOnceInOrder(u, bodies);
  }
  log('no message lost or doubled across the gateway failure');
}
