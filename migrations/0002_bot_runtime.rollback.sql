ALTER TABLE bot_state DROP COLUMN stop_close_position, DROP COLUMN leverage_applied, DROP COLUMN started_at;
