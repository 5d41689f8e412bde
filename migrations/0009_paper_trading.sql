-- Paper trading (CONTRACT.md "Paper trading"): a bot's mode and its virtual account's settings, the
-- virtual account itself, and the orders it has filled (the paper "exchange", read back by client
-- order id exactly like the live one, so reconciliation after a crash works the same way).
--
-- The one-running-bot-per-key-and-market rule protects one exchange position from two bots; a paper
-- bot trades no exchange position, so the index leaves paper bots out (and they may have no key).
-- bot_state carries the state object's `paper_balance` (paper_free_balance) and `equity` (NULL for live bots), written
-- in the same fenced transactions as the paper account and the bot's position.
-- depends: 0007_trades_paper_and_stats 0008_strategy_parameters

ALTER TABLE bot_configs
    ADD COLUMN mode text NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'paper')),
    ADD COLUMN paper_balance numeric NOT NULL DEFAULT 10000 CHECK (paper_balance > 0 AND paper_balance <= 1e15),
    ADD COLUMN paper_fee_rate double precision NOT NULL DEFAULT 0.0004
        CHECK (paper_fee_rate >= 0 AND paper_fee_rate < 0.1),
    ADD COLUMN paper_slippage_bps double precision NOT NULL DEFAULT 1
        CHECK (paper_slippage_bps >= 0 AND paper_slippage_bps < 1000);

DROP INDEX bot_configs_one_active_per_market;
CREATE UNIQUE INDEX bot_configs_one_active_per_market ON bot_configs (api_key_id, symbol)
    WHERE is_active AND mode = 'live';

ALTER TABLE bot_state
    ADD COLUMN paper_free_balance numeric,
    ADD COLUMN paper_equity numeric;

-- The virtual account of a paper bot: free balance (after realised PnL and fees) and position.
-- Written only inside the bot's fenced transactions (the bot_state row lock and token check).
CREATE TABLE paper_accounts (
    bot_id         bigint PRIMARY KEY REFERENCES bot_configs (id) ON DELETE CASCADE,
    balance        numeric NOT NULL,
    position_side  text CHECK (position_side IN ('long', 'short')),
    position_size  numeric NOT NULL DEFAULT 0 CHECK (position_size >= 0),
    entry_price    numeric CHECK (entry_price > 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((position_side IS NULL) = (position_size = 0))
);

-- The paper account's filled orders by client order id: what `find_order` answers from.
CREATE TABLE paper_fills (
    id               bigserial PRIMARY KEY,
    bot_id           bigint NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    client_order_id  text NOT NULL UNIQUE,
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    amount           numeric NOT NULL CHECK (amount > 0),
    price            numeric NOT NULL CHECK (price > 0),
    fee              numeric NOT NULL CHECK (fee >= 0),
    reduce_only      boolean NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX paper_fills_bot_id ON paper_fills (bot_id, id);
