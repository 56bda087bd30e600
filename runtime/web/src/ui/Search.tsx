import { useEffect, useId, useRef, useState } from 'react';
import { useApp, useCtl } from './hooks';
import { Dialog } from './Dialog';
import { ordered } from '../state/rooms';
import { segments } from '../state/search';
import { formatListTime } from './format';
import type { SearchHit } from '../app/controller';

/** Message search: a query, an optional room, results that open the conversation at the hit. */
export default function Search({ onClose }: { onClose: () => void }) {
  const ctl = useCtl();
  const rooms = useApp((s) => s.rooms);
  useApp((s) => s.users);
  const active = useApp((s) => s.activeRoom);
  const [q, setQ] = useState('');
  const [room, setRoom] = useState('');
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const asked = useRef('');
  const roomSelect = useId();
  const status = useId();

  // Search as you type, a moment after the last key.
  useEffect(() => {
    const text = q.trim();
    if (!text) {
      asked.current = '';
      setHits(null);
      setNext('');
      setError('');
      return;
    }
    const key = text + '\u0000' + room;
    const t = setTimeout(() => {
      asked.current = key;
      setBusy(true);
      ctl
        .search(text, { room })
        .then((p) => {
          if (asked.current !== key) return;
          setHits(p.hits);
          setNext(p.next);
          setError('');
        })
        .catch((e: unknown) => {
          if (asked.current === key) setError(ctl.humanError(e));
        })
        .finally(() => {
          if (asked.current === key) setBusy(false);
        });
    }, 250);
    return () => clearTimeout(t);
  }, [q, room, ctl]);

  const more = () => {
    const key = asked.current;
    setBusy(true);
    ctl
      .search(q.trim(), { room, cursor: next })
      .then((p) => {
        if (asked.current !== key) return;
        setHits((h) => [...(h ?? []), ...p.hits]);
        setNext(p.next);
      })
      .catch((e: unknown) => setError(ctl.humanError(e)))
      .finally(() => setBusy(false));
  };

  const list = ordered(rooms);
  return (
    <Dialog title="Search" onClose={onClose} className="search-dialog">
      <form className="stack" role="search" onSubmit={(e) => e.preventDefault()}>
        <input
          type="search"
          aria-label="Search messages"
          placeholder="Search messages"
          autoFocus
          value={q}
          maxLength={256}
          onChange={(e) => setQ(e.target.value)}
          aria-describedby={status}
        />
        <label className="search-room" htmlFor={roomSelect}>
          <span>Room</span>
          <select id={roomSelect} value={room} onChange={(e) => setRoom(e.target.value)}>
            <option value="">All conversations</option>
            {list.map((e) => (
              <option key={e.id} value={e.id}>
                {ctl.roomName(e.id)}
              </option>
            ))}
          </select>
        </label>
      </form>
      <p id={status} className="muted small" aria-live="polite">
        {busy ? 'Searching…' : hits === null ? '' : hits.length === 0 ? 'No messages found.' : `${hits.length}${next ? '+' : ''} found`}
      </p>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      {hits && hits.length > 0 && (
        <ul className="search-results" aria-label="Search results">
          {hits.map((h) => {
            const m = h.message;
            const roomId = m.room_id ?? '';
            const roomName = rooms[roomId] ? ctl.roomName(roomId) : 'Conversation';
            const sender = m.sender_id === ctl.s.me?.id ? 'You' : ctl.userName(m.sender_id ?? '');
            return (
              <li key={m.id}>
                <button
                  type="button"
                  className={'search-hit' + (roomId === active ? ' here' : '')}
                  onClick={() => {
                    onClose();
                    ctl.openAt(roomId, m.id ?? '');
                  }}
                >
                  <span className="hit-top">
                    <span className="hit-room">{roomName}</span>
                    <span className="hit-sender">{sender}</span>
                    {m.created_at && <span className="hit-time">{formatListTime(m.created_at)}</span>}
                  </span>
                  <span className="hit-snippet">
                    {segments(h.snippet, h.highlights).map((s, i) => (s.hit ? <mark key={i}>{s.text}</mark> : <span key={i}>{s.text}</span>))}
                  </span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {next && (
        <button type="button" className="secondary wide" disabled={busy} onClick={more}>
          More results
        </button>
      )}
    </Dialog>
  );
}
