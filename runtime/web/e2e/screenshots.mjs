// screenshots: the login screen, the room list and a conversation (an image, receipts,
// the typing indicator) at 1280x800 and 390x844, written to PARLEY_ARTIFACTS. The Go test
// copies conversation-desktop.png and conversation-phone.png to docs/images/ when
// PARLEY_UPDATE_SCREENSHOTS=1.
import { DESKTOP, PHONE, User, imageLoaded, log, samplePNG, upload, visible, waitTyping } from './lib.mjs';

export default async function screenshots(browser) {
  const alice = await new User(browser, 'Alice', { displayName: 'Alice Martin' }).open();
  const bob = await new User(browser, 'Bob', { displayName: 'Bob Chen' }).open();

  await alice.goto('/');
  await visible(alice.page.getByRole('textbox', { name: 'Username', exact: true }), 'the login form');
  await alice.shot('login-desktop');
  await alice.page.setViewportSize(PHONE);
  await alice.shot('login-phone');
  await alice.page.setViewportSize(DESKTOP);

  await alice.register();
  await bob.register();
  await alice.startDM(bob);
  await alice.send('Hi Bob! Here is the view from the ridge yesterday');
  const image = { name: 'ridge.png', mimeType: 'image/png', buffer: samplePNG() };
  const open = (u) => u.log.getByRole('button', { name: `Open image ${image.name}`, exact: true });
  await upload(alice, image, open(alice));
  await visible(bob.room(alice.displayName).locator('[aria-label$=" unread"]'), "Bob: Alice's DM with an unread badge");
  await bob.shot('rooms-desktop');
  await bob.openRoom(alice.displayName);
  await imageLoaded(open(bob).getByRole('img'), 'Bob: the thumbnail');
  await bob.send('Wow, what a view! Which trail was that?');
  await alice.waitMessage('Which trail was that?');
  const last = 'The north loop, about four hours. Want to come next weekend?';
  await alice.send(last);
  await alice.waitStatus(last, 'Read');
  await imageLoaded(open(alice).getByRole('img'), 'Alice: the thumbnail');

  await waitTyping(bob, alice);
  await alice.shot('conversation-desktop');

  await alice.page.setViewportSize(PHONE);
  await visible(alice.log, 'Alice: the conversation at phone size');
  await waitTyping(bob, alice);
  await alice.shot('conversation-phone');
  await alice.page.getByRole('button', { name: 'Back to conversations', exact: true }).click();
  await visible(alice.nav, 'Alice: the room list at phone size');
  await alice.shot('rooms-phone');
  log('screenshots done');
}
