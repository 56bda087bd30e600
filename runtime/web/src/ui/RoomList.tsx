import { memo } from 'react';
import { useApp, useCtl } from './hooks';
import { isQuiet, ordered, type RoomEntry } from '../state/rooms';
import { Avatar } from './Avatar';
import { formatListTime } from './format';

export function RoomList() {
  const rooms = useApp((s) => s.rooms);
  const loaded = useApp((s) => s.roomsLoaded);
  const list = ordered(rooms);
  if (!loaded) return <p className="empty-list">Loading conversations…</p>;
  if (list.length === 0)
    return (
      <p className="empty-list">
        No conversations yet.
        <br />
        Start one with <strong>New chat</strong>.
      </p>
    );
  return (
    <ul className="room-list">
      {list.map((e) => (
        <RoomItem key={e.id} entry={e} />
      ))}
    </ul>
  );
}

const RoomItem = memo(function RoomItem({ entry }: { entry: RoomEntry }) {
  const ctl = useCtl();
  const active = useApp((s) => s.activeRoom === entry.id);
  // Subscribed so that names resolve as members and profiles load.
  useApp((s) => s.members[entry.id]);
  useApp((s) => s.users);
  const peer = entry.room.kind === 'direct' ? ctl.dmPeer(entry.id) : undefined;
  const online = useApp((s) => (peer ? (s.presence[peer] ?? false) : false));
  const draftTyping = useApp((s) => Object.keys(s.typing[entry.id] ?? {}).length > 0);
  const name = ctl.roomName(entry.id);
  const quiet = isQuiet(entry);
  const last = entry.last;
  let preview = '';
  if (last) {
    const who =
      entry.room.kind === 'group' && last.senderId
        ? last.senderId === ctl.s.me?.id
          ? 'You: '
          : ctl.userName(last.senderId) + ': '
        : last.senderId === ctl.s.me?.id
          ? 'You: '
          : '';
    preview = last.hidden
      ? 'Message hidden'
      : who + (last.body || (last.attachments ? (last.attachments > 1 ? `📎 ${last.attachments} files` : '📎 Attachment') : ''));
  }
  return (
    <li>
      <a
        href={'#/room/' + encodeURIComponent(entry.id)}
        className={'room-item' + (active ? ' active' : '') + (entry.unread > 0 && !quiet ? ' has-unread' : '') + (quiet ? ' quiet' : '')}
        aria-current={active ? 'page' : undefined}
      >
        <span className="room-text">
          <span className="room-top">
            <span className="room-name">{name}</span>
            {last && <span className="room-time">{formatListTime(last.at)}</span>}
          </span>
          <span className="room-bottom">
            <span className="room-preview">
              {draftTyping ? <em>typing…</em> : preview || (entry.room.kind === 'group' ? 'Group created' : 'Say hello 👋')}
            </span>
            {entry.level === 'muted' && (
              <span className="muted-icon" role="img" aria-label="muted" title="Muted">
                <svg className="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
                  <path d="M4 9h4l5-4v14l-5-4H4zM16 9l5 6M21 9l-5 6" />
                </svg>
              </span>
            )}
            {entry.mentions > 0 && (
              <span className="badge mention-badge" role="img" aria-label={entry.mentions === 1 ? '1 mention' : `${entry.mentions} mentions`}>
                @
              </span>
            )}
            {entry.unread > 0 && (
              <span className={'badge' + (quiet ? ' quiet' : '')} role="img" aria-label={`${entry.unread} unread`}>
                {entry.unread > 99 ? '99+' : entry.unread}
              </span>
            )}
          </span>
        </span>
        <span className="room-avatar">
          <Avatar userId={peer} name={name} />
          {entry.room.kind === 'direct' && (
            <span className={'dot ' + (online ? 'online' : 'offline')} role="img" aria-label={online ? 'online' : 'offline'} />
          )}
        </span>
      </a>
    </li>
  );
});
