import { useEffect, useId, useState } from 'react';
import { useCtl } from './hooks';
import type { User } from '../api/http';
import { Avatar } from './Avatar';

/** A textbox that searches people by username prefix; each result is a button. */
export function PeoplePicker({
  label,
  onPick,
  exclude = [],
  autoFocus,
}: {
  label: string;
  onPick: (u: User) => void;
  exclude?: readonly string[];
  autoFocus?: boolean;
}) {
  const ctl = useCtl();
  const [q, setQ] = useState('');
  const [results, setResults] = useState<User[]>([]);
  const [error, setError] = useState('');
  const [searching, setSearching] = useState(false);
  const id = useId();

  useEffect(() => {
    const prefix = q.trim().replace(/^@/, '');
    if (!prefix) {
      setResults([]);
      setError('');
      return;
    }
    let live = true;
    setSearching(true);
    const t = setTimeout(() => {
      ctl
        .searchUsers(prefix.slice(0, 32))
        .then((us) => {
          if (!live) return;
          setResults(us);
          setError('');
        })
        .catch((e: unknown) => live && setError(ctl.humanError(e)))
        .finally(() => live && setSearching(false));
    }, 150);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [q, ctl]);

  const shown = results.filter((u) => u.id && !exclude.includes(u.id));
  return (
    <div className="picker">
      <label htmlFor={id} className="field-label">
        {label}
      </label>
      <input
        id={id}
        type="text"
        value={q}
        onChange={(e) => setQ(e.target.value)}
        placeholder="Search by username"
        autoComplete="off"
        autoCapitalize="off"
        spellCheck={false}
        autoFocus={autoFocus}
      />
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      {q.trim() && !searching && !error && shown.length === 0 && <p className="muted small">No one found.</p>}
      {shown.length > 0 && (
        <ul className="people">
          {shown.map((u) => (
            <li key={u.id}>
              <button type="button" className="person" onClick={() => onPick(u)}>
                <Avatar userId={u.id} name={u.display_name || u.username || '?'} size="sm" />
                <span className="person-text">
                  <span className="person-name">{u.display_name || u.username}</span>
                  <span className="person-user">@{u.username}</span>
                </span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
