import { useId, useState } from 'react';
import { useApp, useCtl } from './hooks';
import type { NotifyLevel } from '../state/rooms';

const choices: { level: NotifyLevel; label: string; hint: string }[] = [
  { level: 'all', label: 'All messages', hint: 'A notification for every message.' },
  { level: 'mentions', label: 'Mentions only', hint: 'No notifications until someone mentions you.' },
  { level: 'muted', label: 'Muted', hint: 'No notifications; the unread count stays quiet.' },
];

/** My notification level for a room: a radio group named Notifications. */
export function NotifySetting({ roomId }: { roomId: string }) {
  const ctl = useCtl();
  const level = useApp((s) => s.rooms[roomId]?.level ?? 'all');
  // The choice shows at once; it reverts if the server refuses it.
  const [pending, setPending] = useState<NotifyLevel | null>(null);
  const [error, setError] = useState('');
  const name = 'notify-' + roomId;
  const legend = useId();
  return (
    <fieldset className="notify-setting" role="radiogroup" aria-labelledby={legend} aria-busy={pending !== null}>
      <legend id={legend}>Notifications</legend>
      {choices.map((c) => (
        <label key={c.level} className="radio-row">
          <input
            type="radio"
            name={name}
            value={c.level}
            checked={(pending ?? level) === c.level}
            onChange={() => {
              setPending(c.level);
              setError('');
              ctl
                .setNotificationLevel(roomId, c.level)
                .catch((e: unknown) => setError(ctl.humanError(e)))
                .finally(() => setPending((p) => (p === c.level ? null : p)));
            }}
          />
          <span>
            {c.label}
            <span className="muted small radio-hint">{c.hint}</span>
          </span>
        </label>
      ))}
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
    </fieldset>
  );
}
