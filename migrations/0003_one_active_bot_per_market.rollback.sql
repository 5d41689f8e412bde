DROP INDEX IF EXISTS bot_configs_one_active_per_market;
