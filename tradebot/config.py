"""Settings from the environment, validated once at start.

Every variable of CONTRACT.md's table maps to one field here. A bad value stops the process with one
line naming the variable (see `load_settings`), never a stack trace.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

Environment = Literal["production", "development", "test"]

_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
}


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRADEBOT_", extra="ignore", frozen=True, env_ignore_empty=True)

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    env: Environment = "development"
    jwt_secret: str | None = None
    fernet_keys: str | None = None
    exchange_url: str | None = None
    replica_id: str | None = None
    outbox_dir: Path | None = None
    smtp_url: str | None = None
    log_json: bool = False
    log_level: str = "INFO"

    # Where the local services are looked for when no URL is set, and where embedded ones keep data.
    default_database_url: str = "postgresql://postgres@127.0.0.1:5432/tradebot"
    default_redis_url: str = "redis://127.0.0.1:6379/0"
    data_dir: Path = Path("var")
    # Every Redis key and channel starts with this, so several deployments (or test runs) can share
    # one Redis without seeing each other.
    redis_prefix: str = Field(default="tradebot", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    trusted_proxies: str = ""
    db_pool_min: int = Field(default=2, ge=1, le=100)
    db_pool_max: int = Field(default=20, ge=1, le=500)

    # Auth rate limits (GCRA: the whole count may come at once, then it refills). Logins count failed
    # attempts only; registrations and reset requests count every request. A failed login counts
    # against its address, against the (account, address) pair per minute and per hour, and against
    # the account's ceiling over all addresses, which addresses that signed in to it before skip:
    # one address can lock only itself out (README "Security").
    auth_login_per_ip_per_min: int = Field(default=30, ge=1, le=1_000_000)
    auth_login_per_account_per_min: int = Field(default=10, ge=1, le=1_000_000)  # per account and address
    auth_login_per_account_address_per_hour: int = Field(default=30, ge=1, le=1_000_000)
    auth_login_account_ceiling_per_hour: int = Field(default=100, ge=2, le=10_000_000)
    auth_register_per_ip_per_min: int = Field(default=100, ge=1, le=1_000_000)
    auth_reset_per_ip_per_min: int = Field(default=20, ge=1, le=1_000_000)
    # Base of links sent by mail (password reset): configured, never taken from a request's Host.
    public_url: str = Field(default="http://127.0.0.1:8080", pattern=r"^https?://[^\s?#]+$")

    # Cluster timing (DESIGN.md "Cluster"): renew deadline < lease duration.
    lease_ttl_ms: int = Field(default=5000, ge=500, le=600_000)
    renew_interval_ms: int = Field(default=1000, ge=100, le=60_000)
    heartbeat_interval_ms: int = Field(default=1000, ge=100, le=60_000)
    # The bot runtime runs in every replica; API-only processes (and most API tests) turn it off.
    runtime_enabled: bool = True
    # Crash-safety tests only: the process SIGKILLs itself at these points (comma-separated).
    fault_crash_at: str = ""

    # One account's share of the shared runtime (TRADEBOT_MAX_BOTS_PER_USER): creating one more is a 409.
    max_bots_per_user: int = Field(default=100, ge=1, le=1_000_000)
    # A client gets this long to send a request's line and headers, from its first byte (or from
    # connecting), before the connection is closed: slow senders cannot hold sockets open (slowloris).
    header_read_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    # Operators (comma-separated emails): the only users who may read GET /cluster.
    admin_emails: str = ""

    # SSE comment heartbeat (TRADEBOT_SSE_HEARTBEAT_S): keeps proxies from closing an idle stream and
    # finds clients that went away.
    sse_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    # Live streams a user may hold open at once, counted across replicas (TRADEBOT_MAX_STREAMS_PER_USER).
    max_streams_per_user: int = Field(default=20, ge=1, le=10_000)

    # Backtests (TRADEBOT_BACKTEST_*): the longest range accepted, in candles (2,000,000 1m candles are
    # ~3.8 years and ~100 MB of arrays); jobs run at once per replica, and queued behind them.
    backtest_max_candles: int = Field(default=2_000_000, ge=1, le=50_000_000)
    backtest_concurrency: int = Field(default=2, ge=1, le=64)
    backtest_queue_limit: int = Field(default=64, ge=0, le=10_000)
    # One user's share: pending plus running backtests at once (429 beyond it).
    backtest_max_live_per_user: int = Field(default=16, ge=1, le=10_000)
    # A replica touches its jobs' updated_at every heartbeat; a pending or running job untouched for
    # stale_after belongs to a replica that died, and is marked failed (see tradebot.backtests.runner).
    backtest_heartbeat_s: float = Field(default=15.0, gt=0, le=600)
    backtest_stale_after_s: float = Field(default=120.0, gt=0, le=86_400)

    # Drift reports (TRADEBOT_DRIFT_*): a bot's live fills against a replay of its own candles. A
    # PnL gap beyond warn_gap_bps of the traded notional in the leader's nightly report (over the
    # last window_hours, run after run_at_hour UTC) is a warning in the bot's state. fee_rate is the
    # fee the replay charges a live bot (a paper bot's own paper_fee_rate wins); Binance's taker fee.
    drift_warn_gap_bps: float = Field(default=50.0, ge=0, le=10_000)
    drift_fee_rate: float = Field(default=0.0004, ge=0, lt=0.1)
    drift_window_hours: int = Field(default=24, ge=1, le=24 * 31)
    drift_run_at_hour: int = Field(default=1, ge=0, le=23)
    # The longest window one GET /bots/{id}/drift replays, in candles: the request waits for the
    # download (50,000 1m candles are ~35 days and 50 klines pages; cached afterwards).
    drift_max_candles: int = Field(default=50_000, ge=1, le=2_000_000)
    # TRADEBOT_DRIFT_NIGHTLY: whether the leader runs the nightly reports; unset means on, except
    # with TRADEBOT_ENV=test, where a job reading klines on its own would disturb tests that count
    # or fail the simulator's requests (a test that wants it sets it).
    drift_nightly: bool | None = None

    # Optimisations (TRADEBOT_OPTIMIZER_*): workers per replica taking chunks of trials (each one
    # process of the pool; 0 runs none here, the other replicas do the work); a chunk's lease, renewed
    # every third of it while computing (a killed replica's chunks are re-run once it lapses); how
    # often an idle worker looks for chunks; one user's pending plus running optimisations, and the
    # most trials one may ask for. The candle range limit is backtest_max_candles.
    optimizer_workers: int = Field(default=1, ge=0, le=64)
    optimizer_lease_s: float = Field(default=15.0, gt=0, le=600)
    optimizer_poll_s: float = Field(default=1.0, gt=0, le=60)
    optimizer_max_live_per_user: int = Field(default=4, ge=1, le=1000)
    optimizer_max_trials: int = Field(default=10_000, ge=1, le=1_000_000)

    # Webhooks (CONTRACT.md "Webhooks"): the first retry's delay (doubling after), whether URLs may
    # point at loopback/private/link-local addresses (unset: only outside production), how often an
    # idle delivery worker looks for due rows, and whether this replica runs the delivery workers.
    webhook_retry_s: float = Field(default=10.0, gt=0, le=86_400)
    webhook_allow_private: bool | None = None
    notifications_poll_s: float = Field(default=0.1, gt=0, le=60)
    notifications_enabled: bool = True
    # Delivered and failed deliveries (the log GET /webhooks/{id}/deliveries shows) are kept this long.
    notifications_keep_days: float = Field(default=30.0, gt=0, le=3650)
    # Telegram: the platform bot's token (a secret: SecretStr keeps it out of reprs and logs; unset,
    # Telegram is off), the Bot API's URL (a compatible server of one's own in tests), how long a
    # getUpdates call waits for an update, and how long a /start code stays valid.
    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_poll_timeout_s: int = Field(default=30, ge=0, le=50)
    telegram_link_ttl_s: float = Field(default=600.0, gt=0, le=86_400)

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret_long_enough(cls, v: str | None) -> str | None:
        if v is not None and len(v.encode()) < 32:
            raise ValueError("must be at least 32 bytes")
        return v

    @field_validator("fernet_keys")
    @classmethod
    def _fernet_keys_valid(cls, v: str | None) -> str | None:
        if v is None:
            return v
        keys = [k.strip() for k in v.split(",") if k.strip()]
        if not keys:
            raise ValueError("must list at least one Fernet key")
        for i, key in enumerate(keys):
            try:
                Fernet(key.encode())
            except (ValueError, TypeError) as e:
                raise ValueError(f"key #{i + 1} is not a valid Fernet key (32 url-safe base64 bytes)") from e
        return ",".join(keys)

    @field_validator("database_url")
    @classmethod
    def _database_url_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @field_validator("exchange_url")
    @classmethod
    def _exchange_url_scheme(cls, v: str | None) -> str | None:
        if v is not None:
            if not v.startswith(("http://", "https://")):
                raise ValueError("must be an http:// or https:// URL")
            return v.rstrip("/")
        return v

    @field_validator("telegram_bot_token")
    @classmethod
    def _telegram_token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        # "<bot id>:<secret>" as BotFather issues it; it goes into every request's path.
        if v is not None and re.fullmatch(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}", v.get_secret_value()) is None:
            raise ValueError("must look like 123456:ABC-DEF... (the token BotFather gave)")
        return v

    @field_validator("telegram_api_url")
    @classmethod
    def _telegram_api_url_scheme(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _log_level_known(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return v

    @model_validator(mode="after")
    def _faults_only_in_tests(self) -> Settings:
        if self.fault_crash_at and self.env != "test":
            raise ValueError("TRADEBOT_FAULT_CRASH_AT is only allowed with TRADEBOT_ENV=test")
        return self

    @model_validator(mode="after")
    def _one_address_stays_below_the_ceiling(self) -> Settings:
        if self.auth_login_account_ceiling_per_hour <= self.auth_login_per_account_address_per_hour:
            raise ValueError(
                "TRADEBOT_AUTH_LOGIN_ACCOUNT_CEILING_PER_HOUR must be more than"
                " TRADEBOT_AUTH_LOGIN_PER_ACCOUNT_ADDRESS_PER_HOUR (one address must not reach it)"
            )
        return self

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> Settings:
        if self.renew_interval_ms * 2 > self.lease_ttl_ms:
            raise ValueError("TRADEBOT_RENEW_INTERVAL_MS must be at most half of TRADEBOT_LEASE_TTL_MS")
        return self

    @property
    def webhooks_may_target_private(self) -> bool:
        if self.webhook_allow_private is not None:
            return self.webhook_allow_private
        return self.env != "production"

    @property
    def fernet_key_list(self) -> list[str]:
        return (self.fernet_keys or "").split(",") if self.fernet_keys else []

    @property
    def crash_points(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.fault_crash_at.split(",") if p.strip())

    @property
    def admin_email_set(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.admin_emails.split(",") if e.strip())

    @property
    def drift_nightly_enabled(self) -> bool:
        return self.drift_nightly if self.drift_nightly is not None else self.env != "test"

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]


@dataclass(frozen=True, slots=True)
class Secrets:
    jwt_secret: str
    fernet_keys: tuple[str, ...]
    ephemeral: bool


def _env_name(field: str) -> str:
    if field.isupper():
        return field
    return _ENV_NAMES.get(field, f"TRADEBOT_{field.upper()}")


def load_settings() -> Settings:
    """Read and validate the environment; raise ConfigError with one line naming the variable."""
    try:
        return Settings()
    except ValidationError as e:
        first = e.errors()[0]
        loc = [str(p) for p in first["loc"]]
        msg = str(first["msg"]).removeprefix("Value error, ")
        if not loc:  # a cross-field rule: its message already names the variables
            raise ConfigError(msg) from e
        name = _env_name(loc[0])
        # Never echo a secret back, even an invalid one.
        secret = any(word in loc[0] for word in ("secret", "keys", "token"))
        shown = "" if secret else f" (got {first.get('input')!r})"
        raise ConfigError(f"{name}: {msg}{shown}") from e


def resolve_secrets(settings: Settings) -> Secrets:
    """Real secrets from the environment, or generated ones outside production.

    Development keeps its generated secrets in the data folder so a restart (or a second local
    replica) can still read the keys it encrypted; tests keep them in memory only.
    """
    if settings.jwt_secret and settings.fernet_keys:
        return Secrets(settings.jwt_secret, tuple(settings.fernet_key_list), ephemeral=False)
    if settings.env == "production":
        missing = [
            n
            for n, v in (("TRADEBOT_JWT_SECRET", settings.jwt_secret), ("TRADEBOT_FERNET_KEYS", settings.fernet_keys))
            if not v
        ]
        raise ConfigError(f"{', '.join(missing)}: required when TRADEBOT_ENV=production (no ephemeral secrets)")
    generated = _load_or_generate_dev_secrets(settings)
    jwt_secret = settings.jwt_secret or generated["jwt_secret"]
    fernet_keys = tuple(settings.fernet_key_list) or (generated["fernet_key"],)
    log.warning(
        "using generated secrets for TRADEBOT_ENV=%s%s; set TRADEBOT_JWT_SECRET and TRADEBOT_FERNET_KEYS for real use",
        settings.env,
        f" (kept in {settings.data_dir / 'dev-secrets.json'})" if settings.env == "development" else " (in memory)",
    )
    return Secrets(jwt_secret, fernet_keys, ephemeral=True)


def _load_or_generate_dev_secrets(settings: Settings) -> dict[str, str]:
    fresh = {
        "jwt_secret": base64.urlsafe_b64encode(secrets.token_bytes(48)).decode(),
        "fernet_key": Fernet.generate_key().decode(),
    }
    if settings.env != "development":
        return fresh
    path = settings.data_dir / "dev-secrets.json"
    try:
        stored = json.loads(path.read_text())
        if isinstance(stored, dict) and {"jwt_secret", "fernet_key"} <= stored.keys():
            return {k: str(stored[k]) for k in ("jwt_secret", "fernet_key")}
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(fresh, f)
    os.replace(tmp, path)
    return fresh
