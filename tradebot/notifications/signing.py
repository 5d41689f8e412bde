"""The webhook signature (CONTRACT.md "Webhooks"), Stripe's scheme: HMAC-SHA256 over "<t>.<raw body>".

`X-Tradebot-Signature: t=<unix seconds>,v1=<hex>`; the key is the webhook secret's UTF-8 bytes.
Signing the timestamp with the body lets a receiver refuse replays of an old request. Pure.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
