-- Refresh-token families: every session rotated from one login shares the family id of
-- the first, so reuse of a rotated token can revoke the whole family. The column stays
-- nullable so a binary of the previous version, still running during an upgrade, can
-- insert sessions; a NULL family means the session is its own family (its id).
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS family_id text;
UPDATE sessions SET family_id = id WHERE family_id IS NULL;
CREATE INDEX IF NOT EXISTS sessions_family ON sessions (family_id);
