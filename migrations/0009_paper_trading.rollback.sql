-- Refuses while paper bots exist: dropping their mode would turn them into live bots.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM bot_configs WHERE mode = 'paper') THEN
        RAISE EXCEPTION 'cannot roll back 0009: paper bots exist';
    END IF;
END
$$;

DROP TABLE paper_fills;
DROP TABLE paper_accounts;
ALTER TABLE bot_state DROP COLUMN paper_equity, DROP COLUMN paper_free_balance;
DROP INDEX bot_configs_one_active_per_market;
CREATE UNIQUE INDEX bot_configs_one_active_per_market ON bot_configs (api_key_id, symbol) WHERE is_active;
ALTER TABLE bot_configs DROP COLUMN paper_slippage_bps, DROP COLUMN paper_fee_rate, DROP COLUMN paper_balance,
    DROP COLUMN mode;
