"""Access tokens: JWT HS256 with the algorithm pinned and every claim required.

The payload is `iss`, `aud`, `sub` (user id), `jti` (random id, the handle for revocation), `iat`,
`exp` and `ver` (the user's token_version when issued: bumping it refuses every earlier token).
Anything else about the user is read from the database per request, never trusted from the token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "tradebot"
AUDIENCE = "tradebot-api"
DEFAULT_TTL_S = 7 * 24 * 3600
REMEMBER_ME_TTL_S = 30 * 24 * 3600
# A bearer token longer than this is not one of ours; refuse it before parsing.
MAX_TOKEN_CHARS = 2048
MIN_SECRET_BYTES = 32
REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti", "iss", "aud", "ver")
# Tokens whose signature and claims were verified, so a token seen again is not parsed and
# HMAC-checked again (its times are still checked on every use); the oldest go first past this.
VERIFIED_TOKENS_KEPT = 10_000


class InvalidToken(Exception):
    """Malformed, wrongly signed, expired or incomplete; the reason is for logs only."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: int  # unix seconds
    expires_in: int  # seconds from issue


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    jti: str
    issued_at: int
    expires_at: int
    token_version: int


@dataclass(frozen=True, slots=True)
class TokenCodec:
    secret: str
    issuer: str = ISSUER
    audience: str = AUDIENCE
    clock: Callable[[], float] = time.time
    # Tolerated clock difference between replicas, for exp and iat.
    leeway_s: int = 5
    # The exact token text -> its claims, verified under this codec's secret, issuer and audience.
    _verified: dict[str, TokenClaims] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT secret must be at least {MIN_SECRET_BYTES} bytes")

    def issue(self, user_id: int, token_version: int, *, remember_me: bool = False) -> IssuedToken:
        now = int(self.clock())
        ttl = REMEMBER_ME_TTL_S if remember_me else DEFAULT_TTL_S
        jti = secrets.token_urlsafe(16)
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "jti": jti,
            "iat": now,
            "exp": now + ttl,
            "ver": token_version,
        }
        token = jwt.encode(payload, self.secret, algorithm=ALGORITHM)
        return IssuedToken(token=token, jti=jti, expires_at=now + ttl, expires_in=ttl)

    def decode(self, token: str) -> TokenClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            verified = self._verified
            verified[token] = claims
            if len(verified) > VERIFIED_TOKENS_KEPT:
                del verified[next(iter(verified))]
        self._check_times(claims)
        return claims

    def _verify(self, token: str) -> TokenClaims:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token missing or too long")
        try:
            # Checking the header first refuses "none" and every other algorithm before any work.
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
            payload: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(type(e).__name__) from e
        return self._claims(payload)

    def _claims(self, payload: dict[str, Any]) -> TokenClaims:
        sub, jti, iat, exp, ver = (payload.get(k) for k in ("sub", "jti", "iat", "exp", "ver"))
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) <= 18):
            raise InvalidToken("sub is not a user id")
        if not (isinstance(jti, str) and 0 < len(jti) <= 64):
            raise InvalidToken("jti is not a short string")
        for name, value in (("iat", iat), ("exp", exp), ("ver", ver)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidToken(f"{name} is not an integer")
        assert isinstance(iat, int) and isinstance(exp, int) and isinstance(ver, int)
        if exp - iat > REMEMBER_ME_TTL_S:
            raise InvalidToken("lifetime longer than any token we issue")
        return TokenClaims(user_id=int(sub), jti=jti, issued_at=iat, expires_at=exp, token_version=ver)

    def _check_times(self, claims: TokenClaims) -> None:
        # Against the injected clock (pyjwt would read the wall clock itself), on every use.
        now = self.clock()
        if claims.expires_at <= now - self.leeway_s:
            raise InvalidToken("expired")
        if claims.issued_at > now + self.leeway_s:
            raise InvalidToken("issued in the future")
