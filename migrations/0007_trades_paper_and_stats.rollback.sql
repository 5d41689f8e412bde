-- Refuses while paper rows exist: dropping the flag would turn them into live history.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM trades WHERE paper) OR EXISTS (SELECT 1 FROM orders WHERE paper) THEN
        RAISE EXCEPTION 'cannot roll back 0007: paper orders or trades exist';
    END IF;
END
$$;

DROP TRIGGER IF EXISTS trades_bot_trade_totals ON trades;
DROP FUNCTION IF EXISTS bot_trade_totals_apply();
DROP TABLE IF EXISTS bot_trade_totals;
DROP INDEX IF EXISTS trades_bot_stats;
DROP INDEX IF EXISTS trades_user_stats;
ALTER TABLE trades DROP COLUMN paper;
ALTER TABLE orders DROP COLUMN paper;
