-- Back to ema_cross only. Refuses (and changes nothing) while a bot or backtest uses another
-- strategy: those rows must be changed or deleted by hand first, never silently. ema_cross bots
-- lose nothing: ema_period mirrors parameters.ema_period (0008's CHECK).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM bot_configs WHERE strategy <> 'ema_cross')
       OR EXISTS (SELECT 1 FROM backtests WHERE strategy <> 'ema_cross') THEN
        RAISE EXCEPTION 'cannot roll back 0008: % bots and % backtests use a strategy other than ema_cross',
            (SELECT count(*) FROM bot_configs WHERE strategy <> 'ema_cross'),
            (SELECT count(*) FROM backtests WHERE strategy <> 'ema_cross');
    END IF;
END
$$;

ALTER TABLE backtests DROP CONSTRAINT backtests_strategy_check;
ALTER TABLE backtests ADD CONSTRAINT backtests_strategy_check CHECK (strategy IN ('ema_cross'));

DROP TRIGGER bot_configs_mirror_ema_period ON bot_configs;
DROP FUNCTION bot_configs_mirror_ema_period();
ALTER TABLE bot_configs DROP CONSTRAINT bot_configs_ema_period_mirror;
ALTER TABLE bot_configs ALTER COLUMN ema_period SET NOT NULL;
ALTER TABLE bot_configs DROP CONSTRAINT bot_configs_parameters_check;
ALTER TABLE bot_configs DROP COLUMN parameters;

ALTER TABLE bot_configs DROP CONSTRAINT bot_configs_strategy_check;
ALTER TABLE bot_configs ADD CONSTRAINT bot_configs_strategy_check CHECK (strategy IN ('ema_cross'));
