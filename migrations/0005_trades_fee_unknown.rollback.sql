-- Refuses while a fee is still unknown: writing 0 for it is the error 0005 removed. Let the runtime
-- read those fees first, or settle them by hand.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM trades WHERE fee IS NULL) THEN
        RAISE EXCEPTION 'cannot roll back 0005: % trades have an unknown fee (fee IS NULL)',
            (SELECT count(*) FROM trades WHERE fee IS NULL);
    END IF;
END
$$;

DROP INDEX IF EXISTS trades_fee_unknown;

ALTER TABLE trades ALTER COLUMN fee SET DEFAULT 0, ALTER COLUMN fee SET NOT NULL;
