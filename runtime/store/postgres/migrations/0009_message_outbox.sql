-- Transactional outbox of chat.message_delivered. A stored message is an announcement
-- waiting to be published: rooms.announced_seq is the last message of the room the
-- relay published, so the messages after it (up to last_seq) are the outbox, committed
-- with the messages themselves and no extra row per message. Everything stored before
-- this migration was announced by the code of the time.
ALTER TABLE rooms ADD COLUMN announced_seq bigint NOT NULL DEFAULT 0;
UPDATE rooms SET announced_seq = last_seq;
-- The relay's way to the rooms with something to announce (few at any time).
CREATE INDEX rooms_unannounced ON rooms (id) WHERE last_seq > announced_seq;
