// File uploads with progress (XMLHttpRequest), cancellable.
import type { components } from '../gen/api';
import { ApiError } from './http';

type Schemas = components['schemas'];
/** File metadata (docs/files.md); typed from the OpenAPI document once it describes files. */
export type FileMeta = Schemas extends { FileMeta: infer F }
  ? F
  : {
      id: string;
      name?: string;
      size?: number;
      content_type?: string;
      status?: string;
      has_thumbnail?: boolean;
      url?: string;
      download_url?: string;
      thumbnail_url?: string;
      urls_expire_at?: string;
    };

export interface UploadHandle {
  promise: Promise<FileMeta>;
  cancel: () => void;
}

export function uploadFile(file: File, token: string, onProgress: (loaded: number, total: number) => void): UploadHandle {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<FileMeta>((resolve, reject) => {
    xhr.open('PUT', '/api/v1/files?name=' + encodeURIComponent(file.name || 'file'));
    xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300 && body && typeof body === 'object') resolve(body as FileMeta);
      else {
        const code =
          body && typeof (body as { code?: unknown }).code === 'string'
            ? (body as { code: string }).code
            : xhr.status >= 500
              ? 'internal'
              : 'invalid_upload';
        reject(new ApiError(xhr.status, code));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, 'network'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'Upload cancelled.'));
    xhr.send(file);
  });
  return { promise, cancel: () => xhr.abort() };
}
