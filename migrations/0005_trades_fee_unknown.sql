-- A fee the exchange did not report with the fill is unknown (NULL) until the runtime reads it from
-- the exchange's trades, never 0. The partial index serves the scan for a bot's unknown fees.
-- depends: 0004_backtests_live_index

ALTER TABLE trades ALTER COLUMN fee DROP DEFAULT, ALTER COLUMN fee DROP NOT NULL;

CREATE INDEX trades_fee_unknown ON trades (bot_id) WHERE fee IS NULL;
