import { useState } from 'react';
import { useCtl } from './hooks';
import { Dialog } from './Dialog';
import { PeoplePicker } from './PeoplePicker';
import type { User } from '../api/http';
import { Avatar } from './Avatar';

export function NewChat({ onClose, onOpen }: { onClose: () => void; onOpen: (roomId: string) => void }) {
  const ctl = useCtl();
  const [error, setError] = useState('');
  return (
    <Dialog title="New chat" onClose={onClose}>
      <PeoplePicker
        label="Search people"
        autoFocus
        onPick={(u) => {
          setError('');
          ctl
            .startDirect(u.id ?? '')
            .then((id) => onOpen(id))
            .catch((e: unknown) => setError(ctl.humanError(e)));
        }}
      />
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}

export function NewGroup({ onClose, onOpen }: { onClose: () => void; onOpen: (roomId: string) => void }) {
  const ctl = useCtl();
  const [name, setName] = useState('');
  const [picked, setPicked] = useState<User[]>([]);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <Dialog title="New group" onClose={onClose}>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          if (!name.trim()) {
            setError('Give the group a name.');
            return;
          }
          setBusy(true);
          setError('');
          ctl
            .createGroup(
              name.trim(),
              picked.map((u) => u.id ?? ''),
            )
            .then((id) => onOpen(id))
            .catch((err: unknown) => setError(ctl.humanError(err)))
            .finally(() => setBusy(false));
        }}
      >
        <div className="field">
          <label htmlFor="group-name">Group name</label>
          <input id="group-name" value={name} maxLength={100} onChange={(e) => setName(e.target.value)} autoFocus />
        </div>
        {picked.length > 0 && (
          <ul className="chips" aria-label="Members to add">
            {picked.map((u) => (
              <li key={u.id} className="chip">
                <Avatar userId={u.id} name={u.display_name || u.username || '?'} size="sm" />
                <span>{u.display_name || u.username}</span>
                <button
                  type="button"
                  className="chip-x"
                  aria-label={'Remove ' + (u.display_name || u.username)}
                  onClick={() => setPicked((p) => p.filter((x) => x.id !== u.id))}
                >
                  ×
                </button>
              </li>
            ))}
          </ul>
        )}
        <PeoplePicker label="Add people" exclude={picked.map((u) => u.id ?? '')} onPick={(u) => setPicked((p) => [...p, u])} />
        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary wide" disabled={busy}>
          Create group
        </button>
      </form>
    </Dialog>
  );
}
