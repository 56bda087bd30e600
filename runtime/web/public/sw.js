/* Parley service worker: shows Web Push notifications and focuses the app on click. */
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data ? event.data.text() : '' };
  }
  const title = typeof data.sender_name === 'string' && data.sender_name ? data.sender_name : 'Parley';
  const body = typeof data.preview === 'string' ? data.preview : 'New message';
  const room = typeof data.room_id === 'string' ? data.room_id : typeof data.room === 'string' ? data.room : '';
  event.waitUntil(
    self.registration.showNotification(title, {
      body,
      tag: room ? 'room-' + room : 'parley',
      icon: '/icon.svg',
      data: { room },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const room = event.notification.data && event.notification.data.room;
  const url = room ? '/#/room/' + encodeURIComponent(room) : '/';
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((list) => {
      for (const client of list) {
        if ('focus' in client) {
          if (room) client.postMessage({ type: 'open-room', room });
          return client.focus();
        }
      }
      return self.clients.openWindow(url);
    }),
  );
});
