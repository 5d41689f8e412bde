-- The optimiser (POST /api/v1/optimizations): a search over a strategy's parameters, its trials
-- spread over every replica in chunks.
--
-- optimization_chunks is the work queue: a replica's worker claims a chunk with FOR UPDATE SKIP
-- LOCKED, taking a lease (lease_owner, leased_until) and a fencing token (lease_token, bumped on
-- every claim); it renews the lease while it computes. A chunk whose lease lapsed (its replica was
-- killed) is claimable again, and a finish is accepted only with the current token, so a trial is
-- recorded exactly once (optimization_trials' primary key says so too).
-- depends: 0008_strategy_parameters

CREATE TABLE optimizations (
    id               bigserial PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled')),
    exchange         text NOT NULL DEFAULT 'binanceusdm',
    symbol           text NOT NULL,
    timeframe        text NOT NULL,
    start_time       timestamptz NOT NULL,
    end_time         timestamptz NOT NULL,
    strategy         text NOT NULL CHECK (length(strategy) BETWEEN 1 AND 64),
    space            jsonb NOT NULL CHECK (jsonb_typeof(space) = 'object'),
    fixed            jsonb NOT NULL CHECK (jsonb_typeof(fixed) = 'object'),
    objective        text NOT NULL CHECK (objective IN ('sharpe', 'return_pct', 'calmar', 'profit_factor')),
    method           text NOT NULL CHECK (method IN ('grid', 'random', 'tpe')),
    max_trials       integer NOT NULL CHECK (max_trials > 0),
    seed             bigint NOT NULL,
    test_fraction    double precision NOT NULL CHECK (test_fraction >= 0 AND test_fraction < 1),
    initial_balance  double precision NOT NULL CHECK (initial_balance > 0),
    fee_rate         double precision,
    slippage_bps     double precision,
    trials_total     integer NOT NULL CHECK (trials_total >= 0),
    trials_done      integer NOT NULL DEFAULT 0 CHECK (trials_done >= 0 AND trials_done <= trials_total),
    candles_count    integer,
    split_time       timestamptz,
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK (start_time < end_time)
);
CREATE INDEX optimizations_user ON optimizations (user_id, id DESC);

CREATE TABLE optimization_chunks (
    id               bigserial PRIMARY KEY,
    optimization_id  bigint NOT NULL REFERENCES optimizations (id) ON DELETE CASCADE,
    first_trial      integer NOT NULL CHECK (first_trial >= 0),
    trials           jsonb NOT NULL CHECK (jsonb_typeof(trials) = 'array'),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done')),
    lease_owner      text,
    lease_token      bigint NOT NULL DEFAULT 0,
    leased_until     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (optimization_id, first_trial)
);
-- Workers look only at chunks not done yet.
CREATE INDEX optimization_chunks_open ON optimization_chunks (id) WHERE status <> 'done';

CREATE TABLE optimization_trials (
    optimization_id  bigint NOT NULL REFERENCES optimizations (id) ON DELETE CASCADE,
    trial_no         integer NOT NULL CHECK (trial_no >= 0),
    parameters       jsonb NOT NULL,
    train            jsonb NOT NULL,
    test             jsonb,
    score            double precision NOT NULL,
    chunk_id         bigint NOT NULL,
    replica_id       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (optimization_id, trial_no)
);
