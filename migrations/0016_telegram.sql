-- Telegram (README "Notifications" → Telegram): the chat a user linked, the one-time codes that
-- link it, the telegram channel's preferences, and its outbox rows. A message to a chat is a
-- delivery of the same event the webhooks and mail get, written in the same transaction by the
-- same hook (tradebot.notifications.outbox).
-- depends: 0010_notifications

-- One chat per user and one user per chat: a chat's commands act for exactly one user.
CREATE TABLE telegram_links (
    user_id    bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    chat_id    bigint NOT NULL UNIQUE,
    username   text,
    linked_at  timestamptz NOT NULL DEFAULT now()
);

-- A code sent as `/start <code>`: only its SHA-256 is stored (a leaked table links no chat); it
-- expires and is used at most once. A new code replaces the user's previous one.
CREATE TABLE telegram_link_codes (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- NULL: the defaults (every event the channel carries), like a user without a preferences row.
ALTER TABLE notification_preferences ADD COLUMN telegram_events text[];

CREATE TABLE telegram_deliveries (
    id               bigserial PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES notification_events (id) ON DELETE CASCADE,
    chat_id          bigint NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX telegram_deliveries_pending ON telegram_deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX telegram_deliveries_chat ON telegram_deliveries (chat_id, id) WHERE status = 'pending';
CREATE INDEX telegram_deliveries_event ON telegram_deliveries (event_id);
CREATE INDEX telegram_deliveries_done ON telegram_deliveries (created_at) WHERE status <> 'pending';
