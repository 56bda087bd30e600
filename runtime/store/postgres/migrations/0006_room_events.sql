-- Replies: a message may answer another message of the same room (its server id; ''
-- for none). The service checks the room when the reply is sent; no foreign key, so a
-- batch COPY stays one round trip.
ALTER TABLE messages ADD COLUMN reply_to text NOT NULL DEFAULT '';

-- Room events: edits, deletions and reaction toggles of messages, numbered per room (rooms.last_event_seq,
-- incremented under the room's row lock like last_seq) so that clients replay them in
-- order after a reconnect. A message keeps its current state (edited body, or a tombstone
-- with no body and no attachments) and the event that last changed it.
ALTER TABLE messages
    ADD COLUMN edited_at  timestamptz,
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN event_seq  bigint NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN last_event_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE room_events (
    room_id    text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    event_seq  bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('edit', 'delete', 'react')),
    message_id text NOT NULL,
    actor_id   text NOT NULL,
    -- The actor's idempotency key ('' when the change is naturally idempotent).
    client_id  text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    PRIMARY KEY (room_id, event_seq)
);
CREATE UNIQUE INDEX room_events_client ON room_events (actor_id, client_id) WHERE client_id <> '';

-- Reactions: one row per (message, user, emoji); toggled by 'react' room events.
CREATE TABLE reactions (
    message_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    emoji      text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);
