-- Outbound notifications (CONTRACT.md "Webhooks", DESIGN.md "Outbound notifications"): users'
-- webhooks, their preferences per channel, and the transactional outbox the delivery workers of
-- every replica drain. An event and its delivery rows are written in the transaction that records
-- the trade or state change (tradebot.notifications.outbox), so none is lost to a crash.
-- depends: 0008_strategy_parameters

CREATE TABLE webhooks (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url          text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    events       text[] NOT NULL CHECK (cardinality(events) >= 1 AND events <@ ARRAY['trade', 'state', 'error']),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- The signing key: HMAC needs it in clear; it is shown to the user once, at creation.
    secret       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_user_id ON webhooks (user_id, id);

-- Which events go to which channel, per user; no row means the defaults (everything on).
CREATE TABLE notification_preferences (
    user_id        bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    webhook_events text[] NOT NULL,
    mail_events    text[] NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One event, shared by its deliveries (the body is built from it, the same bytes on every attempt).
CREATE TABLE notification_events (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bot_id      bigint,
    event       text NOT NULL CHECK (event IN ('trade', 'state', 'error', 'ping')),
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One per event and webhook; its id is the dedup id receivers see, and the order deliveries of a
-- webhook are sent in (one bot's events are written under its state-row lock, so its ids grow in
-- commit order).
CREATE TABLE webhook_deliveries (
    id                bigserial PRIMARY KEY,
    webhook_id        bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id          bigint NOT NULL REFERENCES notification_events (id) ON DELETE CASCADE,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    -- A manual retry of a failed delivery allows one more attempt than it has had.
    attempts_allowed  integer NOT NULL DEFAULT 8,
    last_status_code  integer,
    last_error        text,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id DESC);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
-- The delivery log is kept for TRADEBOT_NOTIFICATIONS_KEEP_DAYS; these find what is older.
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (created_at) WHERE status <> 'pending';
CREATE INDEX notification_events_created_at ON notification_events (created_at);

-- Mail for a bot gone to error or paused by a daily limit (user preference, on by default).
CREATE TABLE mail_deliveries (
    id               bigserial PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES notification_events (id) ON DELETE CASCADE,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('error', 'paused')),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX mail_deliveries_pending ON mail_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX mail_deliveries_event ON mail_deliveries (event_id);
CREATE INDEX mail_deliveries_done ON mail_deliveries (created_at) WHERE status <> 'pending';
