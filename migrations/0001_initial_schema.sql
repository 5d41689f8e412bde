-- The whole schema of tradebot: accounts, exchange keys, bots and their state, orders, trades,
-- backtests, and the candle cache.
-- depends:

CREATE TABLE users (
    id                      bigserial PRIMARY KEY,
    email                   text NOT NULL CHECK (email = lower(btrim(email)) AND length(email) BETWEEN 3 AND 320),
    password_hash           text NOT NULL,
    is_active               boolean NOT NULL DEFAULT true,
    -- Bumped by a password change or reset: tokens carry the version they were issued under.
    token_version           integer NOT NULL DEFAULT 0,
    reset_token_hash        bytea,
    reset_token_expires_at  timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((reset_token_hash IS NULL) = (reset_token_expires_at IS NULL))
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Logged-out tokens, until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti         text PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

CREATE TABLE api_keys (
    id                  bigserial PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label               text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    exchange            text NOT NULL CHECK (exchange IN ('binanceusdm')),
    -- Fernet tokens; the clear key and secret never reach the database.
    api_key_encrypted   bytea NOT NULL,
    secret_encrypted    bytea NOT NULL,
    api_key_hint        text NOT NULL CHECK (length(api_key_hint) <= 4),
    is_valid            boolean,
    validated_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_id ON api_keys (user_id, id);

CREATE TABLE bot_configs (
    id                  bigserial PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A deleted key leaves its bots stopped and keyless rather than deleting their history.
    api_key_id          bigint REFERENCES api_keys (id) ON DELETE SET NULL,
    name                text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    exchange            text NOT NULL DEFAULT 'binanceusdm' CHECK (exchange IN ('binanceusdm')),
    symbol              text NOT NULL CHECK (length(symbol) BETWEEN 1 AND 64),
    strategy            text NOT NULL DEFAULT 'ema_cross' CHECK (strategy IN ('ema_cross')),
    timeframe           text NOT NULL CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d')),
    ema_period          integer NOT NULL CHECK (ema_period BETWEEN 2 AND 1000),
    leverage            integer NOT NULL DEFAULT 1 CHECK (leverage BETWEEN 1 AND 125),
    order_size_pct      double precision NOT NULL DEFAULT 10 CHECK (order_size_pct > 0 AND order_size_pct <= 100),
    allow_short         boolean NOT NULL DEFAULT false,
    max_daily_trades    integer NOT NULL DEFAULT 50 CHECK (max_daily_trades BETWEEN 1 AND 100000),
    max_daily_loss_pct  double precision NOT NULL DEFAULT 5 CHECK (max_daily_loss_pct > 0 AND max_daily_loss_pct <= 100),
    stop_loss_pct       double precision CHECK (stop_loss_pct > 0 AND stop_loss_pct < 100),
    take_profit_pct     double precision CHECK (take_profit_pct > 0 AND take_profit_pct <= 1000),
    is_active           boolean NOT NULL DEFAULT false,
    -- Bots are soft-deleted so their orders and trades stay readable.
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT (is_active AND deleted_at IS NOT NULL))
);
CREATE INDEX bot_configs_user_id ON bot_configs (user_id, id) WHERE deleted_at IS NULL;
CREATE INDEX bot_configs_active ON bot_configs (id) WHERE is_active;
CREATE INDEX bot_configs_api_key_id ON bot_configs (api_key_id);

CREATE TABLE bot_state (
    bot_id              bigint PRIMARY KEY REFERENCES bot_configs (id) ON DELETE CASCADE,
    status              text NOT NULL DEFAULT 'stopped'
                        CHECK (status IN ('stopped', 'starting', 'running', 'paused', 'stopping', 'error')),
    in_position         boolean NOT NULL DEFAULT false,
    position_side       text CHECK (position_side IN ('long', 'short')),
    position_size       numeric NOT NULL DEFAULT 0 CHECK (position_size >= 0),
    entry_price         numeric CHECK (entry_price > 0),
    daily_pnl           numeric NOT NULL DEFAULT 0,
    daily_trades_count  integer NOT NULL DEFAULT 0 CHECK (daily_trades_count >= 0),
    daily_date          date,
    pause_reason        text,
    last_error_message  text,
    last_run_at         timestamptz,
    last_updated_at     timestamptz NOT NULL DEFAULT now(),
    replica_id          text,
    -- The fencing token of the lease under which the last write was made; writes under an older
    -- token are refused (DESIGN.md invariant 1).
    fence_token         bigint NOT NULL DEFAULT 0,
    strategy_state      jsonb,
    signal_seq          bigint NOT NULL DEFAULT 0,
    last_candle_time    bigint,
    CHECK (in_position = (position_side IS NOT NULL)),
    CHECK (in_position OR position_size = 0)
);

-- Every lease acquisition, so "never owned by two replicas at once" can be checked afterwards.
CREATE TABLE bot_ownership (
    bot_id       bigint NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    fence_token  bigint NOT NULL,
    replica_id   text NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    PRIMARY KEY (bot_id, fence_token)
);

CREATE TABLE orders (
    id                  bigserial PRIMARY KEY,
    bot_id              bigint NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    user_id             bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_order_id     text NOT NULL UNIQUE CHECK (client_order_id ~ '^[A-Za-z0-9_-]{1,36}$'),
    exchange_order_id   text,
    symbol              text NOT NULL,
    side                text NOT NULL CHECK (side IN ('buy', 'sell')),
    type                text NOT NULL DEFAULT 'market' CHECK (type IN ('market', 'limit')),
    amount              numeric NOT NULL CHECK (amount > 0),
    reduce_only         boolean NOT NULL DEFAULT false,
    intent              text NOT NULL,
    signal_seq          bigint NOT NULL,
    fence_token         bigint NOT NULL,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'open', 'filled', 'partially_filled', 'canceled',
                                          'rejected', 'expired', 'unknown')),
    filled_amount       numeric NOT NULL DEFAULT 0 CHECK (filled_amount >= 0),
    average_price       numeric,
    fee                 numeric NOT NULL DEFAULT 0,
    error_message       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_bot_id ON orders (bot_id, id DESC);
CREATE INDEX orders_pending ON orders (bot_id) WHERE status IN ('pending', 'unknown', 'open');

CREATE TABLE trades (
    id               bigserial PRIMARY KEY,
    bot_id           bigint NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- One trade per filled order: recording it twice is impossible.
    order_id         bigint NOT NULL UNIQUE REFERENCES orders (id) ON DELETE CASCADE,
    symbol           text NOT NULL,
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    price            numeric NOT NULL CHECK (price > 0),
    amount           numeric NOT NULL CHECK (amount > 0),
    fee              numeric NOT NULL DEFAULT 0 CHECK (fee >= 0),
    realized_pnl     numeric NOT NULL DEFAULT 0,
    client_order_id  text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trades_user_newest ON trades (user_id, created_at DESC, id DESC);
CREATE INDEX trades_bot_newest ON trades (bot_id, created_at DESC, id DESC);

CREATE TABLE backtests (
    id               bigserial PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    exchange         text NOT NULL DEFAULT 'binanceusdm',
    symbol           text NOT NULL,
    timeframe        text NOT NULL CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d')),
    start_time       timestamptz NOT NULL,
    end_time         timestamptz NOT NULL,
    strategy         text NOT NULL CHECK (strategy IN ('ema_cross')),
    parameters       jsonb NOT NULL,
    initial_balance  numeric NOT NULL CHECK (initial_balance > 0),
    fee_rate         double precision NOT NULL DEFAULT 0.0004 CHECK (fee_rate >= 0 AND fee_rate < 0.1),
    slippage_bps     double precision NOT NULL DEFAULT 0 CHECK (slippage_bps >= 0 AND slippage_bps < 1000),
    result           jsonb,
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK (start_time < end_time),
    CHECK ((status = 'done') = (result IS NOT NULL))
);
CREATE INDEX backtests_user_id ON backtests (user_id, id DESC);

-- Candles fetched from the exchange for backtests, and which ranges were fetched completely, so a
-- second backtest over the same range makes no exchange call and a real gap is not refetched forever.
CREATE TABLE candles (
    exchange   text NOT NULL,
    symbol     text NOT NULL,
    timeframe  text NOT NULL,
    open_time  bigint NOT NULL,
    open       double precision NOT NULL,
    high       double precision NOT NULL,
    low        double precision NOT NULL,
    close      double precision NOT NULL,
    volume     double precision NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, open_time),
    CHECK (high >= low)
);

CREATE TABLE candle_coverage (
    exchange    text NOT NULL,
    symbol      text NOT NULL,
    timeframe   text NOT NULL,
    start_time  bigint NOT NULL,
    end_time    bigint NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, symbol, timeframe, start_time),
    CHECK (start_time < end_time)
);

-- Leader-only scheduled jobs record each run so a new leader does not run the same one twice.
CREATE TABLE job_runs (
    job        text NOT NULL,
    run_key    text NOT NULL,
    ran_at     timestamptz NOT NULL DEFAULT now(),
    replica_id text NOT NULL,
    PRIMARY KEY (job, run_key)
);
