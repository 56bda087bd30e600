-- Quota holds: bytes reserved by uploads in progress (runtime/files, filespg.Store.Reserve).
-- An upload holds its declared length (or its upper bound) before streaming and moves it
-- to its files row in the transaction that records it, so concurrent uploads cannot
-- together pass the quota, nor refuse each other for bytes nobody will store. A hold
-- whose process died stops counting at expires_at.
CREATE TABLE IF NOT EXISTS file_quota_holds (
    id          text        PRIMARY KEY,
    uploader_id text        NOT NULL,
    bytes       bigint      NOT NULL CHECK (bytes >= 0),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS file_quota_holds_uploader ON file_quota_holds (uploader_id);
