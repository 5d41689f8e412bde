"""Binance request authentication: API key header, HMAC-SHA256 signature, timestamp and recvWindow."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

from tradebot.exchange.simulator.accounts import Account, Rejection

API_KEY_HEADER = "X-MBX-APIKEY"
MAX_RECV_WINDOW_MS = 60_000
# Binance refuses a request stamped more than 1 s ahead of its own clock.
MAX_CLOCK_AHEAD_MS = 1_000


def sign(payload: str, secret: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def account_for_key(accounts: Mapping[str, Account], api_key: str | None) -> Account:
    if not api_key:
        raise Rejection(-2014, "API-key format invalid.", 401)
    account = accounts.get(api_key)
    if account is None:
        raise Rejection(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    return account


def _strip_signature(raw: str) -> tuple[str, str | None]:
    """Splits `a=1&b=2&signature=…` into the signed text (everything else, as sent) and the signature."""
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def verify_signed(
    account: Account, query_string: str, body: str, now_ms: int, default_recv_window_ms: int
) -> dict[str, str]:
    """Checks a SIGNED request and returns its parameters (query and form body together).

    Like Binance, the signed text is the query string followed by the body, each exactly as sent and
    without the signature parameter; the signature is compared in constant time.
    """
    query_payload, query_signature = _strip_signature(query_string)
    body_payload, body_signature = _strip_signature(body)
    params = dict(parse_qsl(query_payload, keep_blank_values=True))
    params.update(parse_qsl(body_payload, keep_blank_values=True))

    timestamp_text = params.get("timestamp")
    if not timestamp_text:
        raise Rejection(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    try:
        timestamp = int(timestamp_text)
        recv_window = int(params.get("recvWindow", default_recv_window_ms))
    except ValueError:
        raise Rejection(-1100, "Illegal characters found in parameter 'timestamp' or 'recvWindow'.") from None
    if not 0 < recv_window <= MAX_RECV_WINDOW_MS:
        raise Rejection(-1131, "recvWindow must be less than 60000")
    if timestamp - now_ms > MAX_CLOCK_AHEAD_MS or now_ms - timestamp > recv_window:
        raise Rejection(-1021, "Timestamp for this request is outside of the recvWindow.")

    signature = query_signature if query_signature is not None else body_signature
    if not signature:
        raise Rejection(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    expected = sign(query_payload + body_payload, account.secret)
    if not hmac.compare_digest(expected, signature.lower()):
        raise Rejection(-1022, "Signature for this request is not valid.")
    return params
