-- Paper trading records its orders and trades beside the live ones, flagged `paper` (every row
-- written so far is live). The two covering indexes serve GET /stats and the bots' lifetime
-- figures as index-only scans: per user over a time range, and per bot in time order.
-- depends: 0005_trades_fee_unknown 0006_all_binance_timeframes

ALTER TABLE orders ADD COLUMN paper boolean NOT NULL DEFAULT false;
ALTER TABLE trades ADD COLUMN paper boolean NOT NULL DEFAULT false;

CREATE INDEX trades_user_stats ON trades (user_id, created_at) INCLUDE (bot_id, paper, realized_pnl, fee);
CREATE INDEX trades_bot_stats ON trades (bot_id, created_at, id) INCLUDE (user_id, paper, realized_pnl, fee);
