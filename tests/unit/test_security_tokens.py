"""Access tokens: pinned HS256, every claim required, time checked against an injected clock."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from tradebot.security.tokens import AUDIENCE, ISSUER, InvalidToken, TokenCodec

SECRET = "s" * 64  # long enough for HS512 too, so only the algorithm differs
NOW = 1_800_000_000.0


def codec(now: float = NOW) -> TokenCodec:
    return TokenCodec(SECRET, clock=lambda: now)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "42",
        "jti": "abc123",
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
        "ver": 0,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_round_trip_and_lifetimes() -> None:
    issued = codec().issue(42, 3)
    assert issued.expires_in == 7 * 24 * 3600
    decoded = codec().decode(issued.token)
    assert (decoded.user_id, decoded.jti, decoded.token_version) == (42, issued.jti, 3)
    assert decoded.expires_at == int(NOW) + 7 * 24 * 3600
    assert codec().issue(42, 0, remember_me=True).expires_in == 30 * 24 * 3600
    # Every token has its own id.
    assert codec().issue(42, 0).jti != codec().issue(42, 0).jti


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenCodec("too short")


def test_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        with pytest.raises(InvalidToken):
            codec().decode(token)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_algorithms_are_refused(alg: str) -> None:
    with pytest.raises(InvalidToken):
        codec().decode(jwt.encode(claims(), SECRET, algorithm=alg))


def test_another_secret_is_refused() -> None:
    with pytest.raises(InvalidToken):
        codec().decode(jwt.encode(claims(), "o" * 64, algorithm="HS256"))


def test_an_edited_payload_is_refused() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    header, _, signature = token.split(".")
    forged = b64(json.dumps(claims(sub="1")).encode())
    with pytest.raises(InvalidToken):
        codec().decode(f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti", "iss", "aud", "ver"])
def test_every_claim_is_required(missing: str) -> None:
    with pytest.raises(InvalidToken):
        codec().decode(jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"sub": "not-a-number"},
        {"sub": 42},
        {"sub": "١٢"},
        {"jti": ""},
        {"ver": "0"},
        {"exp": int(NOW) - 10},  # expired
        {"iat": int(NOW) + 3600, "exp": int(NOW) + 7200},  # issued in the future
        {"exp": int(NOW) + 365 * 24 * 3600},  # longer than anything we issue
    ],
)
def test_bad_claims_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        codec().decode(jwt.encode(claims(**overrides), SECRET, algorithm="HS256"))


def test_expiry_follows_the_clock() -> None:
    issued = codec().issue(1, 0)
    codec(NOW + 7 * 24 * 3600 - 60).decode(issued.token)
    with pytest.raises(InvalidToken):
        codec(NOW + 7 * 24 * 3600 + 60).decode(issued.token)


def test_garbage_and_huge_tokens_are_refused() -> None:
    for token in ("", "a.b.c", "x" * 5000, "....", "eyJ.eyJ.sig"):
        with pytest.raises(InvalidToken):
            codec().decode(token)


def test_real_clock_default() -> None:
    live = TokenCodec(SECRET)
    assert abs(live.decode(live.issue(1, 0).token).issued_at - time.time()) < 5


def test_a_token_seen_before_is_not_verified_again_but_its_times_are_checked_on_every_use() -> None:
    now = [NOW]
    live = TokenCodec(SECRET, clock=lambda: now[0])
    token = jwt.encode(claims(exp=int(NOW) + 60), SECRET, algorithm="HS256")
    assert live.decode(token).jti == "abc123"
    assert live.decode(token).jti == "abc123"  # from the verified tokens
    now[0] = NOW + 60 + live.leeway_s
    with pytest.raises(InvalidToken, match="expired"):
        live.decode(token)
    # A tampered copy is a different text: verified (and refused) on its own.
    now[0] = NOW
    with pytest.raises(InvalidToken):
        live.decode(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert live.decode(token).user_id == 42
