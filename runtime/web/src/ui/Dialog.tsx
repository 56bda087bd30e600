import { useEffect, useId, useRef, type ReactNode } from 'react';

/** A modal native <dialog>: focus trap and Escape come from showModal(). */
export function Dialog(props: { title: string; onClose: () => void; children: ReactNode; className?: string; hideTitle?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  const onClose = useRef(props.onClose);
  onClose.current = props.onClose;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (!d.open) d.showModal();
    // A close event queued by an earlier cleanup (StrictMode remounts) must not close the reopened dialog.
    const close = () => {
      if (!d.open) onClose.current();
    };
    d.addEventListener('close', close);
    return () => {
      d.removeEventListener('close', close);
      if (d.open) d.close();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      className={'dialog ' + (props.className ?? '')}
      aria-labelledby={id}
      onClick={(e) => {
        if (e.target === ref.current) ref.current?.close();
      }}
    >
      <div className="dialog-inner">
        <header className="dialog-head">
          <h2 id={id} className={props.hideTitle ? 'sr-only' : ''}>
            {props.title}
          </h2>
          <button type="button" className="icon-btn" aria-label="Close" onClick={() => ref.current?.close()}>
            <Icon name="close" />
          </button>
        </header>
        {props.children}
      </div>
    </dialog>
  );
}

const paths: Record<string, string> = {
  close: 'M6 6l12 12M18 6L6 18',
  back: 'M15 5l-7 7 7 7',
  send: 'M4 12l16-8-6 16-3-7-7-1z',
  attach: 'M16.5 6.5l-8 8a2.5 2.5 0 003.5 3.5l8-8a4.5 4.5 0 00-6.4-6.4l-8 8a6.5 6.5 0 009.2 9.2l6.2-6.2',
  chat: 'M4 5h16v11H9l-5 4z',
  group:
    'M9 11a3.5 3.5 0 100-7 3.5 3.5 0 000 7zM2.5 20c.5-3.5 3.2-5.5 6.5-5.5s6 2 6.5 5.5M16 4.5a3.5 3.5 0 010 6.5M18 14.8c2 .7 3.3 2.5 3.6 5.2',
  info: 'M12 8h.01M11 12h1v5h1M12 21a9 9 0 100-18 9 9 0 000 18z',
  clock: 'M12 7v5l3 2M12 21a9 9 0 100-18 9 9 0 000 18z',
  check: 'M5 12.5l4.5 4.5L19 7.5',
  checks: 'M2 12.5L6.5 17 16 7.5M11 16l1 1 9.5-9.5',
  alert: 'M12 8v5M12 16.5h.01M12 3l10 18H2z',
  download: 'M12 4v11M7 10l5 5 5-5M5 20h14',
  file: 'M6 3h8l5 5v13H6zM14 3v5h5',
  down: 'M6 9l6 6 6-6',
  more: 'M5 12h.01M12 12h.01M19 12h.01',
  reply: 'M10 8L4 13l6 5M4 13h10a6 6 0 016 6',
};

export function Icon({ name, className }: { name: keyof typeof paths | string; className?: string }) {
  return (
    <svg className={'icon ' + (className ?? '')} viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d={paths[name] ?? ''} />
    </svg>
  );
}
