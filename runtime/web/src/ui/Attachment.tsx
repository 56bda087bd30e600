import { useContext, useEffect, useState } from 'react';
import { OverlayCtx } from './overlay';
import { useCtl } from './hooks';
import type { FileMeta } from '../api/upload';
import { Dialog, Icon } from './Dialog';
import { formatSize } from './format';

/** One attachment: an image thumbnail that opens a viewer, or a download link. */
export function Attachment({ id }: { id: string }) {
  const ctl = useCtl();
  const [meta, setMeta] = useState<FileMeta | null>(null);
  const [error, setError] = useState('');
  const open = useContext(OverlayCtx);
  const [gen, setGen] = useState(0);

  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    ctl
      .fileMeta(id)
      .then((m) => {
        if (!live) return;
        setMeta(m);
        setError('');
        const exp = m.urls_expire_at ? Date.parse(m.urls_expire_at) : NaN;
        // Signed URLs are short-lived: fetch fresh ones shortly before they expire.
        if (Number.isFinite(exp)) timer = setTimeout(() => setGen((g) => g + 1), Math.max(5_000, exp - Date.now() - 20_000));
      })
      .catch((e: unknown) => live && setError(ctl.humanError(e)));
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [ctl, id, gen]);

  if (error) return <span className="att att-error">{error}</span>;
  if (!meta) return <span className="att att-loading" aria-label="Loading attachment" role="img" />;
  const name = meta.name || 'file';
  if (meta.status === 'removed') return <span className="att att-error">{name} was removed</span>;
  const isImage = meta.has_thumbnail || (/^image\/(png|jpeg|gif|webp)$/.test(meta.content_type ?? '') && !!meta.url);
  if (isImage) {
    const thumb = meta.thumbnail_url ?? meta.url;
    return (
      <button type="button" className="att-image" aria-label={'Open image ' + name} onClick={() => open({ kind: 'image', fileId: id })}>
        <img src={thumb} alt={name} onLoad={() => window.dispatchEvent(new Event('parley:media'))} onError={() => setGen((g) => g + 1)} />
      </button>
    );
  }
  return (
    <a className="att-file" href={meta.download_url ?? meta.url} download={name} aria-label={'Download ' + name}>
      <Icon name="file" className="att-file-icon" />
      <span className="att-file-text">
        <span className="att-file-name">{name}</span>
        <span className="att-file-size">{formatSize(meta.size)}</span>
      </span>
      <Icon name="download" />
    </a>
  );
}

/** The full-size image with a Download link. */
export function ImageViewer({ fileId, onClose }: { fileId: string; onClose: () => void }) {
  const ctl = useCtl();
  const [meta, setMeta] = useState<FileMeta | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    let live = true;
    ctl
      .fileMeta(fileId)
      .then((m) => live && setMeta(m))
      .catch((e: unknown) => live && setError(ctl.humanError(e)));
    return () => {
      live = false;
    };
  }, [ctl, fileId]);
  const name = meta?.name || 'image';
  return (
    <Dialog title="Image viewer" hideTitle onClose={onClose} className="viewer">
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      {meta && (
        <figure className="viewer-figure">
          <img src={meta.url} alt={name} />
          <figcaption>
            <span className="viewer-name">{name}</span>
            <a className="button" href={meta.download_url ?? meta.url} download={name}>
              <Icon name="download" /> Download
            </a>
          </figcaption>
        </figure>
      )}
    </Dialog>
  );
}
