import { useEffect, useState } from 'react';
import { useApp, useCtl } from './hooks';
import { hueClass, initials } from './format';

/** A user's avatar (their image when they set one), or a group's initials. */
/** textless: no initials as text (inside a control named otherwise, so its visible text matches its name). */
export function Avatar({
  userId,
  name,
  size = 'md',
  textless,
}: {
  userId?: string;
  name: string;
  size?: 'sm' | 'md' | 'lg';
  textless?: boolean;
}) {
  const ctl = useCtl();
  const fileId = useApp((s) => (userId ? s.users[userId]?.avatar_file_id : undefined));
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    setSrc(null);
    if (!fileId) return;
    let live = true;
    ctl
      .fileMeta(fileId)
      .then((m) => live && setSrc(m.thumbnail_url ?? m.url ?? null))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, [ctl, fileId]);
  return (
    <span className={`avatar ${size} ${hueClass(userId ?? name)}`} aria-hidden="true">
      {src ? <img src={src} alt="" onError={() => setSrc(null)} /> : textless ? <PersonIcon /> : initials(name)}
    </span>
  );
}

function PersonIcon() {
  return (
    <svg className="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d="M12 12a4 4 0 100-8 4 4 0 000 8zM4.5 20.5c.8-3.6 3.9-5.5 7.5-5.5s6.7 1.9 7.5 5.5" />
    </svg>
  );
}
