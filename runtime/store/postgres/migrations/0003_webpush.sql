-- Web Push subscriptions: one row per push endpoint (a browser profile), owned by a user.
CREATE TABLE IF NOT EXISTS webpush_subscriptions (
    endpoint   text        PRIMARY KEY,
    user_id    text        NOT NULL,
    p256dh     text        NOT NULL,
    auth       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS webpush_subscriptions_user_id ON webpush_subscriptions (user_id);
