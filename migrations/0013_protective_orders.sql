-- Protective orders held by the exchange (CONTRACT.md "Protective orders and manual control"):
-- - orders.type names the conditional types too; orders.stop_price / callback_rate are their
--   trigger (a trailing stop's callback rate in percent). A protective order's row is written,
--   fenced, before it is sent, like every other order; it stays 'open' while the exchange holds it;
-- - trades.reason: why the position changed ('signal', 'stop_loss', 'take_profit',
--   'trailing_stop', 'manual', 'liquidation'); rows written before this migration were signals;
-- - bot_configs.trailing_stop_pct: a trailing stop's callback rate (Binance allows 0.1 to 10 %);
-- - paper_protective_orders: a paper bot's protective orders, held by its virtual account and
--   triggered by the hub's candles with the backtest's fill rule.
-- depends: 0012_drift_reports

ALTER TABLE orders DROP CONSTRAINT orders_type_check;
ALTER TABLE orders ADD CONSTRAINT orders_type_check
    CHECK (type IN ('market', 'limit', 'stop_market', 'take_profit_market', 'trailing_stop_market'));
ALTER TABLE orders
    ADD COLUMN stop_price numeric CHECK (stop_price > 0),
    ADD COLUMN callback_rate double precision CHECK (callback_rate > 0);
CREATE INDEX orders_protective_open ON orders (bot_id) WHERE type <> 'market' AND status IN ('pending', 'unknown', 'open');

ALTER TABLE trades
    ADD COLUMN reason text NOT NULL DEFAULT 'signal'
        CHECK (reason IN ('signal', 'stop_loss', 'take_profit', 'trailing_stop', 'manual', 'liquidation'));

ALTER TABLE bot_configs
    ADD COLUMN trailing_stop_pct double precision CHECK (trailing_stop_pct >= 0.1 AND trailing_stop_pct <= 10);

CREATE TABLE paper_protective_orders (
    id               bigserial PRIMARY KEY,
    bot_id           bigint NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    client_order_id  text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('stop_loss', 'take_profit', 'trailing_stop')),
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    amount           numeric NOT NULL CHECK (amount > 0),
    stop_price       numeric,
    callback_rate    double precision,
    best_price       numeric,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'filled', 'canceled')),
    fill_client_order_id text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bot_id, client_order_id)
);
CREATE INDEX paper_protective_open ON paper_protective_orders (bot_id) WHERE status = 'open';
