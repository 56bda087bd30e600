-- Mentions: the ids of the members a message's body mentions ("@username", "@room" from
-- the owner of a group), resolved by core when it stores the message and again when the
-- body is edited. The GIN index serves the room list's per-room count of unread messages
-- mentioning the viewer.
ALTER TABLE messages ADD COLUMN mentions text[] NOT NULL DEFAULT '{}';
CREATE INDEX messages_mentions ON messages USING gin (mentions);
