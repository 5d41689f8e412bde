-- Drops the Telegram links, codes, preferences and pending messages.
DROP TABLE telegram_deliveries;
ALTER TABLE notification_preferences DROP COLUMN telegram_events;
DROP TABLE telegram_link_codes;
DROP TABLE telegram_links;
