// files: an image and a text file sent in a DM. Upload progress, thumbnail, image viewer,
// and downloads whose bytes hash to exactly what was uploaded.
import { randomBytes } from 'node:crypto';
import { User, assert, downloadSHA, gone, imageLoaded, log, samplePNG, sha256, upload, visible } from './lib.mjs';

export default async function files(browser) {
  const alice = await new User(browser, 'Alice').open();
  const bob = await new User(browser, 'Bob').open();
  await alice.register();
  await bob.register();
  await alice.startDM(bob);
  await alice.send('Files are coming');
  await bob.openRoom(alice.displayName);
  await bob.waitMessage('Files are coming');

  const tag = randomBytes(2).toString('hex');
  const image = { name: `sunset-${tag}.png`, mimeType: 'image/png', buffer: samplePNG() };
  const open = (u) => u.log.getByRole('button', { name: `Open image ${image.name}`, exact: true });
  await upload(alice, image, open(alice));
  log(`Alice sent ${image.name} (${image.buffer.length} bytes)`);

  // Bob: the thumbnail decodes, the viewer opens, Download gives the original bytes.
  await visible(open(bob), `Bob: button "Open image ${image.name}"`);
  const thumb = open(bob).getByRole('img', { name: image.name, exact: true });
  const size = await imageLoaded(thumb, `Bob: thumbnail img alt="${image.name}"`);
  log(`Bob's thumbnail: ${size.w}x${size.h}`);
  assert(size.w <= 320 && size.h <= 320, `thumbnail is ${size.w}x${size.h}; the server's thumbnails are at most 320 px, so the full image was shown`);
  await open(bob).click();
  const viewer = bob.page.getByRole('dialog', { name: 'Image viewer' });
  await visible(viewer, 'Bob: dialog "Image viewer"');
  const full = await imageLoaded(viewer.getByRole('img').first(), 'Bob: the full-size image in the viewer');
  assert(full.w === 640 && full.h === 400, `viewer image is ${full.w}x${full.h}, want 640x400`);
  await bob.shot('image-viewer');
  const got = await downloadSHA(bob.page, () => viewer.getByRole('link', { name: 'Download', exact: true }).click());
  log(`Bob downloaded ${got.name}: ${got.size} bytes`);
  assert(got.sha === sha256(image.buffer), `downloaded image sha256 ${got.sha} != uploaded ${sha256(image.buffer)}`);
  assert(got.name === image.name, `download is named ${got.name}, want ${image.name}`);
  await bob.page.keyboard.press('Escape');
  await gone(viewer, 'Bob: the Image viewer after Escape');

  // A file that is not an image: a download link named after it.
  const text = { name: `notes-${tag}.txt`, mimeType: 'text/plain', buffer: Buffer.from(`Agenda ${tag}\n`.repeat(300) + randomBytes(64).toString('hex')) };
  const link = (u) => u.log.getByRole('link', { name: `Download ${text.name}`, exact: true });
  await upload(alice, text, link(alice));
  await visible(link(bob), `Bob: link "Download ${text.name}"`);
  assert((await link(bob).getAttribute('download')) !== null, 'the file link has no download attribute');
  await bob.shot('file-link');
  const got2 = await downloadSHA(bob.page, () => link(bob).click());
  log(`Bob downloaded ${got2.name}: ${got2.size} bytes`);
  assert(got2.sha === sha256(text.buffer), `downloaded text sha256 ${got2.sha} != uploaded ${sha256(text.buffer)}`);

  // Cancel upload: the request is held (so the upload is still running when the button
  // is pressed); afterwards no message carries the file, which is checked against a text
  // message sent later that does arrive.
  const cancelled = { name: `cancelled-${tag}.bin`, mimeType: 'application/octet-stream', buffer: randomBytes(256 * 1024) };
  let release;
  const held = new Promise((r) => (release = r));
  const matcher = (url) => new URL(url).pathname.startsWith('/api/v1/files');
  const handler = async (route) => {
    await held;
    await route.continue().catch(() => {}); // the client aborted it meanwhile
  };
  await alice.page.route(matcher, handler);
  await alice.main.locator('input[type=file]').first().setInputFiles(cancelled);
  const bar = alice.page.getByRole('progressbar', { name: `Uploading ${cancelled.name}` });
  await visible(bar, `Alice: progressbar "Uploading ${cancelled.name}"`);
  await alice.page.getByRole('button', { name: 'Cancel upload', exact: true }).click();
  await gone(bar, `Alice: progressbar "Uploading ${cancelled.name}" after Cancel upload`);
  release();
  await alice.page.unroute(matcher, handler);
  log('Alice cancelled an upload');
  const after = `After the cancelled upload ${tag}`;
  await alice.send(after);
  await bob.waitMessage(after);
  for (const u of [alice, bob]) {
    const n = await u.page.getByText(cancelled.name).count();
    assert(n === 0, `${u.first}: the cancelled file ${cancelled.name} shows up ${n} times`);
  }
}
