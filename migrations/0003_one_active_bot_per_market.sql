-- Two running bots on one API key and symbol would share one position on the exchange (one-way
-- mode), and each would reconcile against the other's trades. The database refuses it.
-- depends: 0002_bot_runtime

CREATE UNIQUE INDEX bot_configs_one_active_per_market ON bot_configs (api_key_id, symbol) WHERE is_active;
