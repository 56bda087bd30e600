import { useState, type FormEvent } from 'react';
import { useApp, useCtl } from './hooks';
import { ApiError } from '../api/http';

type Field = 'username' | 'password' | 'displayName' | 'invite';

/** Which field a server error code belongs to. */
const fieldOf: Record<string, Field> = {
  username_taken: 'username',
  invalid_username: 'username',
  user_not_found: 'username',
  weak_password: 'password',
  invalid_profile: 'displayName',
  invite_required: 'invite',
};

export function validateUsername(u: string): string {
  if (u.length < 3 || u.length > 32) return 'Usernames are 3 to 32 characters.';
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(u)) return 'Use letters, digits, “_”, “.” or “-”, starting with a letter or digit.';
  return '';
}

export function validatePassword(p: string): string {
  const bytes = new TextEncoder().encode(p).length;
  if (bytes < 8) return 'Passwords are at least 8 characters.';
  if (bytes > 256) return 'Passwords are at most 256 bytes.';
  if (!p.trim()) return 'The password cannot be blank.';
  return '';
}

export function AuthScreen() {
  const ctl = useCtl();
  const authMessage = useApp((s) => s.authMessage);
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [invite, setInvite] = useState('');
  const [needInvite, setNeedInvite] = useState(false);
  const [errors, setErrors] = useState<Partial<Record<Field, string>>>({});
  const [formError, setFormError] = useState('');
  const [busy, setBusy] = useState(false);
  const register = mode === 'register';

  async function submit(e: FormEvent) {
    e.preventDefault();
    setFormError('');
    const errs: Partial<Record<Field, string>> = {};
    if (register) {
      const u = validateUsername(username);
      if (u) errs.username = u;
      const p = validatePassword(password);
      if (p) errs.password = p;
      if (displayName.length > 64) errs.displayName = 'At most 64 characters.';
    } else {
      if (!username) errs.username = 'Enter your username.';
      if (!password) errs.password = 'Enter your password.';
    }
    setErrors(errs);
    if (Object.keys(errs).length > 0) {
      const first = (['username', 'password', 'displayName', 'invite'] as const).find((f) => errs[f]);
      if (first) document.getElementById('auth-' + first)?.focus();
      return;
    }
    setBusy(true);
    try {
      if (register) await ctl.register(username, password, displayName.trim(), invite.trim());
      else await ctl.login(username, password);
    } catch (err) {
      const code = err instanceof ApiError ? err.code : '';
      const msg = err instanceof Error ? err.message : String(err);
      if (code === 'invite_required') setNeedInvite(true);
      const f = fieldOf[code];
      if (f && (register || f !== 'username')) {
        setErrors({ [f]: msg });
        document.getElementById('auth-' + f)?.focus();
      } else setFormError(msg);
    } finally {
      setBusy(false);
    }
  }

  function switchMode() {
    setMode(register ? 'login' : 'register');
    setErrors({});
    setFormError('');
  }

  const field = (f: Field, label: string, value: string, set: (v: string) => void, type: string, autoComplete: string) => (
    <div className="field">
      <label htmlFor={'auth-' + f}>{label}</label>
      <input
        id={'auth-' + f}
        type={type}
        value={value}
        autoComplete={autoComplete}
        autoCapitalize="off"
        spellCheck={false}
        aria-invalid={errors[f] ? true : undefined}
        aria-describedby={errors[f] ? 'auth-' + f + '-error' : undefined}
        onChange={(e) => set(e.target.value)}
      />
      {errors[f] && (
        <p className="field-error" id={'auth-' + f + '-error'}>
          {errors[f]}
        </p>
      )}
    </div>
  );

  return (
    <main className="auth">
      <div className="auth-card">
        <div className="brand">
          <img src="/icon.svg" alt="" width="44" height="44" />
          <h1>Parley</h1>
        </div>
        <p className="auth-sub">{register ? 'Create your account' : 'Log in to continue'}</p>
        <form onSubmit={submit} noValidate>
          {field('username', 'Username', username, setUsername, 'text', 'username')}
          {field('password', 'Password', password, setPassword, 'password', register ? 'new-password' : 'current-password')}
          {register && field('displayName', 'Display name', displayName, setDisplayName, 'text', 'name')}
          {register && needInvite && field('invite', 'Invite code', invite, setInvite, 'text', 'off')}
          {(formError || authMessage) && (
            <p className="form-error" role="alert">
              {formError || authMessage}
            </p>
          )}
          <button type="submit" className="primary wide" disabled={busy}>
            {register ? 'Create account' : 'Log in'}
          </button>
        </form>
        <button type="button" className="link-btn" onClick={switchMode}>
          {register ? 'I have an account' : 'Create an account'}
        </button>
      </div>
    </main>
  );
}
