-- Accounts, sessions, invites, login throttling and blocks.
CREATE TABLE users (
    id             text PRIMARY KEY,
    username       text NOT NULL,
    username_key   text NOT NULL UNIQUE, -- lower(username): names are unique case-insensitively
    password_hash  text NOT NULL,
    display_name   text NOT NULL DEFAULT '',
    avatar_file_id text NOT NULL DEFAULT '',
    status_text    text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL
);
-- Prefix search ("start a conversation") uses LIKE 'prefix%' on the key.
CREATE INDEX users_username_prefix ON users (username_key text_pattern_ops);

CREATE TABLE sessions (
    id         text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE invites (
    code_hash  bytea PRIMARY KEY,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    used_by    text,
    used_at    timestamptz
);

CREATE TABLE throttle (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL
);

CREATE TABLE blocks (
    blocker_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);

-- Rooms, members with their receipt cursors, and messages.
CREATE TABLE rooms (
    id         text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('direct', 'group')),
    name       text NOT NULL DEFAULT '',
    topic      text NOT NULL DEFAULT '',
    owner_id   text,
    -- "low|high" user ids of a direct room: the unique key makes it one room per pair.
    direct_key text UNIQUE,
    -- The last sequence number given out; incremented under the row lock in the
    -- message transaction, so sequences are gap-free per room.
    last_seq   bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE members (
    room_id            text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id            text NOT NULL,
    joined_at          timestamptz NOT NULL,
    delivered_seq      bigint NOT NULL DEFAULT 0,
    read_seq           bigint NOT NULL DEFAULT 0,
    receipt_updated_at timestamptz NOT NULL,
    PRIMARY KEY (room_id, user_id),
    CHECK (read_seq <= delivered_seq)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE messages (
    id          text PRIMARY KEY,
    room_id     text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    sender_id   text NOT NULL,
    client_id   text NOT NULL,
    body        text NOT NULL,
    attachments text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    UNIQUE (room_id, seq),
    UNIQUE (sender_id, client_id)
);
