import { useState } from 'react';
import { useApp, useCtl } from './hooks';
import { Dialog } from './Dialog';
import { Avatar } from './Avatar';
import { PeoplePicker } from './PeoplePicker';
import { NotifySetting } from './NotifySetting';

export default function RoomDetails({ roomId, onClose }: { roomId: string; onClose: () => void }) {
  const ctl = useCtl();
  const entry = useApp((s) => s.rooms[roomId]);
  const members = useApp((s) => s.members[roomId]) ?? [];
  const users = useApp((s) => s.users);
  const presence = useApp((s) => s.presence);
  const blocked = useApp((s) => s.blocked);
  const me = useApp((s) => s.me?.id ?? '');
  const [error, setError] = useState('');
  const [info, setInfo] = useState('');
  const [name, setName] = useState(entry?.room.name ?? '');
  const [busy, setBusy] = useState(false);

  if (!entry) return null;
  const isOwner = entry.room.owner_id === me;

  async function run(f: () => Promise<unknown>, done?: string) {
    setBusy(true);
    setError('');
    setInfo('');
    try {
      await f();
      if (done) setInfo(done);
    } catch (e) {
      setError(ctl.humanError(e));
    } finally {
      setBusy(false);
    }
  }

  if (entry.room.kind === 'direct') {
    const peer = ctl.dmPeer(roomId);
    const u = peer ? users[peer] : undefined;
    const pname = peer ? ctl.userName(peer) : 'Unknown';
    const isBlocked = peer ? !!blocked[peer] : false;
    return (
      <Dialog title="Room details" onClose={onClose}>
        <div className="profile">
          <Avatar userId={peer} name={pname} size="lg" />
          <p className="profile-name">{pname}</p>
          {u?.username && <p className="muted">@{u.username}</p>}
          {u?.status_text && <p className="profile-status">{u.status_text}</p>}
          <p className="muted small">{peer && presence[peer] ? 'online' : 'offline'}</p>
        </div>
        <NotifySetting roomId={roomId} />
        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        {info && <p className="form-info">{info}</p>}
        {peer && (
          <button
            type="button"
            className={isBlocked ? 'secondary wide' : 'danger wide'}
            disabled={busy}
            onClick={() =>
              run(() => (isBlocked ? ctl.unblock(peer) : ctl.block(peer)), isBlocked ? `${pname} is unblocked.` : `${pname} is blocked.`)
            }
          >
            {isBlocked ? 'Unblock' : 'Block'}
          </button>
        )}
      </Dialog>
    );
  }

  return (
    <Dialog title="Room details" onClose={onClose}>
      <div className="stack">
        <NotifySetting roomId={roomId} />
        {isOwner ? (
          <form
            className="row-form"
            onSubmit={(e) => {
              e.preventDefault();
              if (name.trim()) void run(() => ctl.rename(roomId, name.trim()), 'Renamed.');
            }}
          >
            <div className="field grow">
              <label htmlFor="rename">Group name</label>
              <input id="rename" value={name} maxLength={100} onChange={(e) => setName(e.target.value)} />
            </div>
            <button type="submit" className="secondary" disabled={busy || !name.trim()}>
              Rename
            </button>
          </form>
        ) : (
          <p className="profile-name">{entry.room.name}</p>
        )}
        <h3 className="section-title">{members.length} members</h3>
        <ul className="members">
          {members.map((id) => {
            const n = ctl.userName(id);
            return (
              <li key={id} className="member">
                <Avatar userId={id} name={n} size="sm" />
                <span className="member-text">
                  <span className="person-name">
                    {n}
                    {id === me ? ' (you)' : ''}
                  </span>
                  <span className="person-user">
                    {users[id]?.username ? '@' + users[id]?.username : ''}
                    {entry.room.owner_id === id ? ' · owner' : ''}
                  </span>
                </span>
                {isOwner && id !== me && (
                  <span className="member-actions">
                    <button
                      type="button"
                      className="small-btn"
                      disabled={busy}
                      onClick={() => run(() => ctl.transferOwner(roomId, id), `${n} is now the owner.`)}
                    >
                      Make {n} owner
                    </button>
                    <button
                      type="button"
                      className="small-btn danger-text"
                      disabled={busy}
                      onClick={() => run(() => ctl.removeMember(roomId, id), `${n} was removed.`)}
                    >
                      Remove {n}
                    </button>
                  </span>
                )}
              </li>
            );
          })}
        </ul>
        <PeoplePicker
          label="Add people"
          exclude={members}
          onPick={(u) => run(() => ctl.addMember(roomId, u.id ?? ''), `${u.display_name || u.username} was added.`)}
        />
        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        {info && <p className="form-info">{info}</p>}
        <button
          type="button"
          className="danger wide"
          disabled={busy}
          onClick={() =>
            run(async () => {
              await ctl.removeMember(roomId, me);
              onClose();
              location.hash = '#/';
            })
          }
        >
          Leave group
        </button>
      </div>
    </Dialog>
  );
}
