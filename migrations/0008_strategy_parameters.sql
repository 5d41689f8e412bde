-- One registry of strategies (tradebot/strategies/): a bot or backtest names any registered strategy
-- (built-in or plugin, so no list of names here) and stores its parameters as one JSON object.
--
-- bot_configs.parameters is filled from ema_period, the only strategy-specific column so far; no
-- value is lost. Transitional step: the live actor still reads ema_period, so the column stays, is
-- written together with parameters for every ema_cross bot (the CHECK keeps the two equal) and is
-- NULL for other strategies, which the API refuses to start until the actor reads `parameters`; a
-- later migration drops it. allow_short is a sizing setting (CONTRACT.md) and stays a column.
-- backtests already store strategy + parameters (with the sizing keys); only the name list goes.
-- depends: 0006_all_binance_timeframes

ALTER TABLE bot_configs DROP CONSTRAINT bot_configs_strategy_check;
ALTER TABLE bot_configs ADD CONSTRAINT bot_configs_strategy_check CHECK (length(strategy) BETWEEN 1 AND 64);

ALTER TABLE bot_configs ADD COLUMN parameters jsonb;
UPDATE bot_configs SET parameters = jsonb_build_object('ema_period', ema_period);
ALTER TABLE bot_configs ALTER COLUMN parameters SET NOT NULL;
ALTER TABLE bot_configs ADD CONSTRAINT bot_configs_parameters_check CHECK (jsonb_typeof(parameters) = 'object');

ALTER TABLE bot_configs ALTER COLUMN ema_period DROP NOT NULL;
ALTER TABLE bot_configs ADD CONSTRAINT bot_configs_ema_period_mirror CHECK (
    CASE WHEN strategy = 'ema_cross'
         THEN ema_period IS NOT NULL AND parameters -> 'ema_period' = to_jsonb(ema_period)
         ELSE ema_period IS NULL
    END);

-- Writers that know only ema_period (SQL written before 0008) keep working: an insert without
-- parameters, or an update of ema_period alone, of an ema_cross bot fills parameters from it.
CREATE FUNCTION bot_configs_mirror_ema_period() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.strategy = 'ema_cross' AND NEW.ema_period IS NOT NULL THEN
        IF TG_OP = 'INSERT' AND NEW.parameters IS NULL THEN
            NEW.parameters := jsonb_build_object('ema_period', NEW.ema_period);
        ELSIF TG_OP = 'UPDATE' AND NEW.ema_period IS DISTINCT FROM OLD.ema_period
              AND NEW.parameters IS NOT DISTINCT FROM OLD.parameters THEN
            NEW.parameters := NEW.parameters || jsonb_build_object('ema_period', NEW.ema_period);
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER bot_configs_mirror_ema_period BEFORE INSERT OR UPDATE ON bot_configs
    FOR EACH ROW EXECUTE FUNCTION bot_configs_mirror_ema_period();

ALTER TABLE backtests DROP CONSTRAINT backtests_strategy_check;
ALTER TABLE backtests ADD CONSTRAINT backtests_strategy_check CHECK (length(strategy) BETWEEN 1 AND 64);
