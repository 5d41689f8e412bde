-- Paper trading records its orders and trades beside the live ones, flagged `paper` (every row
-- written so far is live). The two covering indexes serve GET /stats and the bots' lifetime
-- figures as index-only scans: per user over a time range, and per bot in time order.
-- depends: 0005_trades_fee_unknown 0006_all_binance_timeframes

ALTER TABLE orders ADD COLUMN paper boolean NOT NULL DEFAULT false;
ALTER TABLE trades ADD COLUMN paper boolean NOT NULL DEFAULT false;

CREATE INDEX trades_user_stats ON trades (user_id, created_at) INCLUDE (bot_id, paper, realized_pnl, fee);
CREATE INDEX trades_bot_stats ON trades (bot_id, created_at, id) INCLUDE (user_id, paper, realized_pnl, fee);

-- Each bot's lifetime figures, kept by a trigger so GET /bots reads one row per bot instead of
-- every trade. The sums are exact under any insert, update or delete. The drawdown curve (the
-- cumulative realized_pnl − fee in trade order, from 0) is extended exactly while trades arrive in
-- (created_at, id) order and while only the newest trade changes (its fee read later, the common
-- case); anything else marks it inexact, and the reader recomputes it from the trades and stores it
-- back (tradebot.bots.stats). `version` counts changes, so a recomputation never overwrites a newer one.
CREATE TABLE bot_trade_totals (
    bot_id           bigint PRIMARY KEY REFERENCES bot_configs (id) ON DELETE CASCADE,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    trades_count     bigint NOT NULL DEFAULT 0,
    realized_pnl     numeric NOT NULL DEFAULT 0,
    fees             numeric NOT NULL DEFAULT 0,
    wins             bigint NOT NULL DEFAULT 0,
    losses           bigint NOT NULL DEFAULT 0,
    fees_unknown     bigint NOT NULL DEFAULT 0,
    curve_exact      boolean NOT NULL DEFAULT true,
    last_created_at  timestamptz,
    last_id          bigint,
    equity           numeric NOT NULL DEFAULT 0,
    peak             numeric NOT NULL DEFAULT 0,
    max_drawdown     numeric NOT NULL DEFAULT 0,
    -- The peak and drawdown before the newest trade, so a change to that trade stays exact.
    prev_peak        numeric NOT NULL DEFAULT 0,
    prev_drawdown    numeric NOT NULL DEFAULT 0,
    version          bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION bot_trade_totals_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t bot_trade_totals%ROWTYPE;
    new_net numeric;
    old_net numeric;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_net := OLD.realized_pnl - coalesce(OLD.fee, 0);
        UPDATE bot_trade_totals SET
            trades_count = trades_count - 1,
            realized_pnl = realized_pnl - OLD.realized_pnl,
            fees = fees - coalesce(OLD.fee, 0),
            wins = wins - (OLD.realized_pnl > 0)::int,
            losses = losses - (OLD.realized_pnl < 0)::int,
            fees_unknown = fees_unknown - (OLD.fee IS NULL)::int,
            version = version + 1
         WHERE bot_id = OLD.bot_id
        RETURNING * INTO t;
    END IF;
    IF TG_OP = 'DELETE' OR OLD.bot_id <> NEW.bot_id THEN
        UPDATE bot_trade_totals SET curve_exact = false WHERE bot_id = OLD.bot_id;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN NULL;
    END IF;

    new_net := NEW.realized_pnl - coalesce(NEW.fee, 0);
    INSERT INTO bot_trade_totals AS b (bot_id, user_id, trades_count, realized_pnl, fees, wins, losses, fees_unknown)
    VALUES (NEW.bot_id, NEW.user_id, 1, NEW.realized_pnl, coalesce(NEW.fee, 0), (NEW.realized_pnl > 0)::int,
            (NEW.realized_pnl < 0)::int, (NEW.fee IS NULL)::int)
    ON CONFLICT (bot_id) DO UPDATE SET
        trades_count = b.trades_count + 1,
        realized_pnl = b.realized_pnl + EXCLUDED.realized_pnl,
        fees = b.fees + EXCLUDED.fees,
        wins = b.wins + EXCLUDED.wins,
        losses = b.losses + EXCLUDED.losses,
        fees_unknown = b.fees_unknown + EXCLUDED.fees_unknown,
        version = b.version + 1
    RETURNING * INTO t;

    IF NOT t.curve_exact THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.bot_id = NEW.bot_id AND OLD.id = t.last_id AND OLD.created_at = NEW.created_at THEN
            -- The newest trade changed: rebuild its step from the state before it.
            UPDATE bot_trade_totals SET
                equity = t.equity - old_net + new_net,
                peak = greatest(t.prev_peak, t.equity - old_net + new_net),
                max_drawdown = greatest(t.prev_drawdown,
                                        greatest(t.prev_peak, t.equity - old_net + new_net) - (t.equity - old_net + new_net))
             WHERE bot_id = NEW.bot_id;
        ELSE
            UPDATE bot_trade_totals SET curve_exact = false WHERE bot_id = NEW.bot_id;
        END IF;
    ELSIF t.last_id IS NULL OR (NEW.created_at, NEW.id) > (t.last_created_at, t.last_id) THEN
        UPDATE bot_trade_totals SET
            prev_peak = t.peak,
            prev_drawdown = t.max_drawdown,
            equity = t.equity + new_net,
            peak = greatest(t.peak, t.equity + new_net),
            max_drawdown = greatest(t.max_drawdown, greatest(t.peak, t.equity + new_net) - (t.equity + new_net)),
            last_created_at = NEW.created_at,
            last_id = NEW.id
         WHERE bot_id = NEW.bot_id;
    ELSE
        UPDATE bot_trade_totals SET curve_exact = false WHERE bot_id = NEW.bot_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER trades_bot_trade_totals
    AFTER INSERT OR DELETE OR UPDATE OF realized_pnl, fee, created_at, bot_id ON trades
    FOR EACH ROW EXECUTE FUNCTION bot_trade_totals_apply();

-- The trades recorded before this migration: exact sums now, the curve on first read.
INSERT INTO bot_trade_totals (bot_id, user_id, trades_count, realized_pnl, fees, wins, losses, fees_unknown,
                              curve_exact)
SELECT bot_id, min(user_id), count(*), sum(realized_pnl), coalesce(sum(fee), 0),
       count(*) FILTER (WHERE realized_pnl > 0), count(*) FILTER (WHERE realized_pnl < 0),
       count(*) FILTER (WHERE fee IS NULL), false
  FROM trades GROUP BY bot_id;
