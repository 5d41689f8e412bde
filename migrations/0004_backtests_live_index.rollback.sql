DROP INDEX IF EXISTS backtests_live_updated;
