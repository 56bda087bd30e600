import { useEffect, useRef, useState } from 'react';
import { useApp, useCtl } from './hooks';
import { Dialog } from './Dialog';
import { Avatar } from './Avatar';

export default function Account({ onClose }: { onClose: () => void }) {
  const ctl = useCtl();
  const me = useApp((s) => s.me);
  const push = useApp((s) => s.pushAvailable);
  const [displayName, setDisplayName] = useState(me?.display_name ?? '');
  const [status, setStatus] = useState(me?.status_text ?? '');
  const [error, setError] = useState('');
  const [info, setInfo] = useState('');
  const [busy, setBusy] = useState(false);
  const fileRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (push === null) void ctl.checkPush();
  }, [ctl, push]);

  async function run(f: () => Promise<string | void>, done: string) {
    setBusy(true);
    setError('');
    setInfo('');
    try {
      const r = await f();
      setInfo(typeof r === 'string' ? r : done);
    } catch (e) {
      setError(ctl.humanError(e));
    } finally {
      setBusy(false);
    }
  }

  const name = me?.display_name || me?.username || '';
  return (
    <Dialog title="Account" onClose={onClose}>
      <div className="profile">
        <Avatar userId={me?.id} name={name} size="lg" />
        <p className="profile-name">{name}</p>
        <p className="muted">@{me?.username}</p>
        <button type="button" className="secondary" disabled={busy} onClick={() => fileRef.current?.click()}>
          Change avatar
        </button>
        <input
          ref={fileRef}
          type="file"
          accept="image/png,image/jpeg,image/gif,image/webp"
          hidden
          tabIndex={-1}
          aria-hidden="true"
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = '';
            if (f) void run(() => ctl.uploadAvatar(f), 'Avatar updated.');
          }}
        />
      </div>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void run(() => ctl.saveProfile({ display_name: displayName.trim(), status_text: status.trim() }), 'Saved.');
        }}
      >
        <div className="field">
          <label htmlFor="acc-name">Display name</label>
          <input id="acc-name" value={displayName} maxLength={64} onChange={(e) => setDisplayName(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="acc-status">Status</label>
          <input
            id="acc-status"
            value={status}
            maxLength={140}
            placeholder="What are you up to?"
            onChange={(e) => setStatus(e.target.value)}
          />
        </div>
        <button type="submit" className="primary wide" disabled={busy}>
          Save
        </button>
      </form>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      {info && (
        <p className="form-info" role="status">
          {info}
        </p>
      )}
      <div className="stack account-actions">
        {push && (
          <button
            type="button"
            className="secondary wide"
            disabled={busy}
            onClick={() => run(() => ctl.enablePush(), 'Notifications are on.')}
          >
            Enable notifications
          </button>
        )}
        <button type="button" className="danger wide" onClick={() => void ctl.logout()}>
          Log out
        </button>
      </div>
    </Dialog>
  );
}
