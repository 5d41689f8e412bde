DROP TABLE IF EXISTS job_runs, candle_coverage, candles, backtests, trades, orders, bot_ownership,
    bot_state, bot_configs, api_keys, revoked_tokens, users;
