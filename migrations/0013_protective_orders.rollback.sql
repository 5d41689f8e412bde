DROP TABLE paper_protective_orders;
ALTER TABLE bot_configs DROP COLUMN trailing_stop_pct;
ALTER TABLE trades DROP COLUMN reason;
DROP INDEX orders_protective_open;
UPDATE orders SET type = 'market' WHERE type NOT IN ('market', 'limit');
ALTER TABLE orders DROP COLUMN stop_price, DROP COLUMN callback_rate;
ALTER TABLE orders DROP CONSTRAINT orders_type_check;
ALTER TABLE orders ADD CONSTRAINT orders_type_check CHECK (type IN ('market', 'limit'));
