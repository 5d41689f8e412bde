-- Back to the six timeframes of 0001. Fails (and changes nothing) while a bot or backtest uses
-- another one: such rows must be changed or deleted by hand first, never silently.

ALTER TABLE backtests DROP CONSTRAINT backtests_timeframe_check;
ALTER TABLE backtests ADD CONSTRAINT backtests_timeframe_check CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d'));

ALTER TABLE bot_configs DROP CONSTRAINT bot_configs_timeframe_check;
ALTER TABLE bot_configs ADD CONSTRAINT bot_configs_timeframe_check CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d'));
