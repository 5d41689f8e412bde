"""Outbound notifications: users' webhooks and mail, through a transactional outbox in PostgreSQL.

`outbox.record_bot_change` is the one hook the writers of trades and bot states call, inside the
transaction that records them; `delivery_worker` drains the outbox on every replica; `signing` and
`ssrf` are the pure rules of what is sent and where it may go.
"""
