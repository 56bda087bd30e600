-- Files: metadata of uploads (the bytes live in the blob store).
CREATE TABLE IF NOT EXISTS files (
    id           text        PRIMARY KEY,
    uploader_id  text        NOT NULL,
    size         bigint      NOT NULL CHECK (size >= 0),
    sha256       text        NOT NULL,
    content_type text        NOT NULL,
    claimed_type text        NOT NULL DEFAULT '',
    name         text        NOT NULL,
    created_at   timestamptz NOT NULL,
    status       text        NOT NULL CHECK (status IN ('uploaded', 'removed')),
    thumbnail_id text        NOT NULL DEFAULT ''
);

-- Quota sums a user's live files.
CREATE INDEX IF NOT EXISTS files_uploader_live ON files (uploader_id) WHERE status = 'uploaded';

-- Orphan cleanup pages through old live files by id.
CREATE INDEX IF NOT EXISTS files_live_created ON files (created_at, id) WHERE status = 'uploaded';

-- Download authorization asks which rooms hold a message attaching a file.
CREATE INDEX IF NOT EXISTS messages_attachments_idx ON messages USING gin (attachments);
