-- Bots and backtests accept every Binance USD-M kline interval (tradebot/timeframes.py), not six.
-- depends: 0004_backtests_live_index

ALTER TABLE bot_configs DROP CONSTRAINT bot_configs_timeframe_check;
ALTER TABLE bot_configs ADD CONSTRAINT bot_configs_timeframe_check CHECK (timeframe IN (
    '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w', '1M'));

ALTER TABLE backtests DROP CONSTRAINT backtests_timeframe_check;
ALTER TABLE backtests ADD CONSTRAINT backtests_timeframe_check CHECK (timeframe IN (
    '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w', '1M'));
