import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { Controller } from './app/controller';
import { Ctx } from './ui/hooks';
import { App } from './ui/App';
import './ui/styles.css';

const ctl = new Controller();

const wake = () => {
  ctl.wake();
  ctl.markReadActive();
};
window.addEventListener('online', wake);
// A socket does not notice a dropped network by itself: probe it instead of waiting for the keepalive.
window.addEventListener('offline', () => ctl.probe());
window.addEventListener('focus', wake);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') wake();
});
navigator.serviceWorker?.addEventListener('message', (e: MessageEvent) => {
  const d = e.data as { type?: string; room?: string } | null;
  if (d?.type === 'open-room' && d.room) location.hash = '#/room/' + encodeURIComponent(d.room);
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <Ctx.Provider value={ctl}>
      <App />
    </Ctx.Provider>
  </StrictMode>,
);
void ctl.start();
