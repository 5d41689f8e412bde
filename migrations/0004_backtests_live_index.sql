-- Every replica sweeps pending/running backtests whose heartbeat stopped (about once a minute);
-- only those rows are indexed, so the sweep never scans finished history.
-- depends: 0003_one_active_bot_per_market

CREATE INDEX backtests_live_updated ON backtests (updated_at) WHERE status IN ('pending', 'running');
