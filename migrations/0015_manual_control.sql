-- Manual control (CONTRACT.md "Protective orders and manual control"):
-- - orders.reason: why the order was sent (the values of trades.reason, migration 0013); recorded
--   with the order before it is sent and copied to its trade, so a fill settled by a later owner
--   still carries it.
-- - bot_commands: force-exit / force-entry requests, written by the API before the owner is
--   prompted, so a lost prompt or a failover never loses one; the owner marks each done (fenced).
--   orders.command_id ties an order to its command: a command whose order reached the exchange is
--   never executed again by the next owner.
-- - bot_state.entries_paused: pause-entries / resume-entries; the API writes it and the actor reads
--   it before every entry, so it survives restarts and failover and is never lost with a prompt.
-- depends: 0009_paper_trading 0012_drift_reports 0013_protective_orders

ALTER TABLE orders ADD COLUMN reason text NOT NULL DEFAULT 'signal'
    CHECK (reason IN ('signal', 'stop_loss', 'take_profit', 'trailing_stop', 'manual', 'liquidation'));

CREATE TABLE bot_commands (
    id              bigserial PRIMARY KEY,
    bot_id          bigint NOT NULL REFERENCES bot_configs (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('force_exit', 'force_entry')),
    pct             double precision CHECK (pct > 0 AND pct <= 100),
    side            text CHECK (side IN ('long', 'short')),
    order_size_pct  double precision CHECK (order_size_pct > 0 AND order_size_pct <= 100),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'refused')),
    message         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX bot_commands_pending ON bot_commands (bot_id, id) WHERE status = 'pending';

ALTER TABLE orders ADD COLUMN command_id bigint REFERENCES bot_commands (id) ON DELETE SET NULL;
CREATE INDEX orders_command ON orders (command_id) WHERE command_id IS NOT NULL;

ALTER TABLE bot_state ADD COLUMN entries_paused boolean NOT NULL DEFAULT false;
