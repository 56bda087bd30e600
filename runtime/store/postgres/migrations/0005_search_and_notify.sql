-- Full-text search over message bodies, and each member's notification level.
--
-- The text search configuration is 'simple' (lower-cased words, no stemming, no stop
-- words): rooms are multilingual, and an English stemmer would both mangle other
-- languages and drop words people search for ("the who"). It is also what the memory
-- store implements (case-insensitive whole words), so both stores answer alike.
-- A stored generated column keeps the vector in step with the body by itself (an edit
-- or a deletion that rewrites the body re-indexes it); the GIN index serves the
-- @@ websearch_to_tsquery match.
ALTER TABLE messages
    ADD COLUMN IF NOT EXISTS body_tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, body)) STORED;
CREATE INDEX IF NOT EXISTS messages_body_tsv ON messages USING gin (body_tsv);

-- Per-member notification level: 'all', 'mentions' (mentions only) or 'muted'. A
-- constant default adds the column without rewriting the table, and a binary of the
-- previous version, still running during an upgrade, inserts members that get 'all'.
ALTER TABLE members
    ADD COLUMN IF NOT EXISTS notify_level text NOT NULL DEFAULT 'all'
    CHECK (notify_level IN ('all', 'mentions', 'muted'));
