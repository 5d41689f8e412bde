DROP TABLE IF EXISTS bot_drift_reports;
ALTER TABLE bot_state DROP COLUMN IF EXISTS drift_warning;
ALTER TABLE orders DROP COLUMN IF EXISTS candle_time;
