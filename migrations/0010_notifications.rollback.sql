-- Drops the webhooks, preferences and the notification outbox (pending deliveries are lost).
DROP TABLE mail_deliveries;
DROP TABLE webhook_deliveries;
DROP TABLE notification_events;
DROP TABLE notification_preferences;
DROP TABLE webhooks;
