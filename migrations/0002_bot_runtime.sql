-- What the runtime needs beyond the first schema: a stop that closes the position is remembered
-- until the owner has done it, and the leverage already applied on the exchange is not re-sent.
-- depends: 0001_initial_schema

ALTER TABLE bot_state
    ADD COLUMN stop_close_position boolean NOT NULL DEFAULT false,
    ADD COLUMN leverage_applied integer,
    ADD COLUMN started_at timestamptz;
