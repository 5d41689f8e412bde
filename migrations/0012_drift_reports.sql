-- Live-versus-backtest drift (GET /bots/{id}/drift and the leader's nightly job):
-- - orders.candle_time: the open time (ms) of the candle whose close decided the order, so a fill
--   pairs with the backtest's fill of the same decision whatever the wall clock said (NULL for
--   orders recorded before this migration: the report then reads the candle from the trade's time);
-- - bot_drift_reports: the last nightly report per bot;
-- - bot_state.drift_warning: set by the nightly job when the PnL gap passes the threshold, shown
--   in the state object; only that job writes it (never the actor, whose writes are fenced).
-- depends: 0008_strategy_parameters

ALTER TABLE orders ADD COLUMN candle_time bigint;

ALTER TABLE bot_state ADD COLUMN drift_warning text;

CREATE TABLE bot_drift_reports (
    bot_id       bigint PRIMARY KEY REFERENCES bot_configs (id) ON DELETE CASCADE,
    since        timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    pnl_gap_bps  double precision NOT NULL,
    report       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (since < until)
);
