import { lazy, Suspense, useEffect, useState } from 'react';
import { useApp, useCtl } from './hooks';
import { RoomList } from './RoomList';
import { Conversation } from './Conversation';
import { NewChat, NewGroup } from './NewChat';
import { Avatar } from './Avatar';
import { Icon } from './Dialog';
import { loudUnread } from '../state/rooms';

const Account = lazy(() => import('./Account'));
const Search = lazy(() => import('./Search'));

function roomFromHash(): string | null {
  const m = /^#\/room\/(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]!) : null;
}

export function Shell() {
  const ctl = useCtl();
  const active = useApp((s) => s.activeRoom);
  const roomExists = useApp((s) => (s.activeRoom ? !!s.rooms[s.activeRoom] : false));
  const roomsLoaded = useApp((s) => s.roomsLoaded);
  const me = useApp((s) => s.me);
  const [dialog, setDialog] = useState<'chat' | 'group' | 'account' | 'search' | null>(null);
  // Muted (and mentions-only) rooms keep their badge in the list but stay out of the title.
  const unread = useApp((s) => loudUnread(s.rooms));

  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) Parley` : 'Parley';
  }, [unread]);

  useEffect(() => {
    const sync = () => ctl.openRoom(roomFromHash());
    sync();
    window.addEventListener('hashchange', sync);
    return () => window.removeEventListener('hashchange', sync);
  }, [ctl]);

  // A room that went away (left, removed) closes.
  useEffect(() => {
    if (active && roomsLoaded && !roomExists) location.hash = '#/';
  }, [active, roomsLoaded, roomExists]);

  const open = (id: string) => {
    setDialog(null);
    location.hash = '#/room/' + encodeURIComponent(id);
  };
  const myName = me?.display_name || me?.username || '';

  return (
    <div className={'shell' + (active ? ' has-room' : '')}>
      <ConnectionBanner />
      <div className="sidebar">
        <header className="side-head">
          <h1 className="app-title">Parley</h1>
          <div className="side-actions">
            <button type="button" className="icon-btn" aria-label="Search" title="Search messages" onClick={() => setDialog('search')}>
              <svg className="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
                <path d="M10.5 17a6.5 6.5 0 100-13 6.5 6.5 0 000 13zM15.5 15.5L20 20" />
              </svg>
            </button>
            <button type="button" className="icon-btn" aria-label="New chat" title="New chat" onClick={() => setDialog('chat')}>
              <Icon name="chat" />
            </button>
            <button type="button" className="icon-btn" aria-label="New group" title="New group" onClick={() => setDialog('group')}>
              <Icon name="group" />
            </button>
            <button
              type="button"
              className="icon-btn account-btn"
              aria-label="Account"
              title={myName ? `Account (${myName})` : 'Account'}
              onClick={() => setDialog('account')}
            >
              <Avatar userId={me?.id} name={myName} size="sm" textless />
            </button>
          </div>
        </header>
        <nav aria-label="Conversations" className="rooms-nav">
          <RoomList />
        </nav>
      </div>
      {active && roomExists ? (
        <Conversation roomId={active} />
      ) : (
        <main className="conversation placeholder">
          <div className="placeholder-inner">
            <img src="/icon.svg" alt="" width="72" height="72" />
            <h2>{active && !roomsLoaded ? 'Loading…' : 'Your conversations'}</h2>
            <p className="muted">Pick a conversation, or start a new one.</p>
            <div className="placeholder-actions">
              <button type="button" className="primary" onClick={() => setDialog('chat')}>
                Start a chat
              </button>
            </div>
          </div>
        </main>
      )}
      {dialog === 'chat' && <NewChat onClose={() => setDialog(null)} onOpen={open} />}
      {dialog === 'group' && <NewGroup onClose={() => setDialog(null)} onOpen={open} />}
      {dialog === 'account' && (
        <Suspense fallback={null}>
          <Account onClose={() => setDialog(null)} />
        </Suspense>
      )}
      {dialog === 'search' && (
        <Suspense fallback={null}>
          <Search onClose={() => setDialog(null)} />
        </Suspense>
      )}
      <Notices />
    </div>
  );
}

function ConnectionBanner() {
  const conn = useApp((s) => s.conn);
  const everOpen = useApp((s) => s.everOpen);
  const [late, setLate] = useState(false);
  // The first connection gets a moment before the banner shows; later drops show at once.
  useEffect(() => {
    const t = setTimeout(() => setLate(true), 1500);
    return () => clearTimeout(t);
  }, []);
  const down = conn !== 'open' && (everOpen || late);
  return (
    <div className={'conn-banner' + (down ? ' show' : '')} role="status">
      {down ? 'Reconnecting…' : ''}
    </div>
  );
}

function Notices() {
  const ctl = useCtl();
  const notices = useApp((s) => s.notices);
  return (
    <div className="notices" role="alert">
      {notices.map((n) => (
        <div key={n.id} className="notice">
          <span>{n.text}</span>
          <button type="button" className="icon-btn sm" aria-label="Dismiss" onClick={() => ctl.dismiss(n.id)}>
            <Icon name="close" />
          </button>
        </div>
      ))}
    </div>
  );
}
