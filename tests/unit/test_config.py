"""Settings: each invalid variable gives one clear line naming it; production refuses generated secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tradebot.config import ConfigError, Settings, load_settings, resolve_secrets


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TRADEBOT_JWT_SECRET", "too-short", "TRADEBOT_JWT_SECRET: must be at least 32 bytes"),
        ("TRADEBOT_FERNET_KEYS", "not-a-key", "TRADEBOT_FERNET_KEYS: key #1 is not a valid Fernet key"),
        ("DATABASE_URL", "mysql://localhost/x", "DATABASE_URL: must start with postgresql://"),
        ("REDIS_URL", "http://localhost", "REDIS_URL: must start with redis://"),
        ("TRADEBOT_ENV", "prod", "TRADEBOT_ENV: Input should be 'production', 'development' or 'test'"),
        ("TRADEBOT_EXCHANGE_URL", "ftp://x", "TRADEBOT_EXCHANGE_URL: must be an http:// or https:// URL"),
        ("TRADEBOT_LEASE_TTL_MS", "soon", "TRADEBOT_LEASE_TTL_MS: Input should be a valid integer"),
        ("TRADEBOT_LOG_LEVEL", "LOUD", "TRADEBOT_LOG_LEVEL: must be DEBUG, INFO, WARNING or ERROR"),
        ("TRADEBOT_RENEW_INTERVAL_MS", "4000", "TRADEBOT_RENEW_INTERVAL_MS must be at most half"),
        ("TRADEBOT_AUTH_LOGIN_ACCOUNT_CEILING_PER_HOUR", "30",
         "TRADEBOT_AUTH_LOGIN_ACCOUNT_CEILING_PER_HOUR must be more than TRADEBOT_AUTH_LOGIN_PER_ACCOUNT_ADDRESS"),
        ("TRADEBOT_DRIFT_WARN_GAP_BPS", "-1", "TRADEBOT_DRIFT_WARN_GAP_BPS: Input should be greater than or equal to 0"),
        ("TRADEBOT_DRIFT_RUN_AT_HOUR", "24", "TRADEBOT_DRIFT_RUN_AT_HOUR: Input should be less than or equal to 23"),
    ],
)
def test_invalid_variable_names_itself(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_secret_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEBOT_JWT_SECRET", "hunter2-short")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)


def test_second_fernet_key_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEBOT_FERNET_KEYS", f"{Fernet.generate_key().decode()},broken")
    with pytest.raises(ConfigError, match="key #2"):
        load_settings()


def test_production_without_secrets_is_refused() -> None:
    settings = Settings.model_validate({"env": "production"})
    with pytest.raises(ConfigError, match="TRADEBOT_JWT_SECRET, TRADEBOT_FERNET_KEYS: required"):
        resolve_secrets(settings)


def test_production_with_real_secrets_uses_them() -> None:
    key = Fernet.generate_key().decode()
    settings = Settings.model_validate({"env": "production", "jwt_secret": "x" * 40, "fernet_keys": key})
    got = resolve_secrets(settings)
    assert got.jwt_secret == "x" * 40 and got.fernet_keys == (key,) and not got.ephemeral


def test_development_secrets_survive_a_restart(tmp_path: object) -> None:
    settings = Settings.model_validate({"env": "development", "data_dir": tmp_path})
    first, second = resolve_secrets(settings), resolve_secrets(settings)
    assert first.ephemeral and first == second


def test_test_env_secrets_are_fresh_each_time(tmp_path: object) -> None:
    settings = Settings.model_validate({"env": "test", "data_dir": tmp_path})
    assert resolve_secrets(settings).jwt_secret != resolve_secrets(settings).jwt_secret


def _tradebot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradebot", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_cli_production_without_secrets_exits_2_with_one_line(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "TRADEBOT_ENV": "production", "TRADEBOT_DATA_DIR": str(tmp_path)}
    result = _tradebot("run", "--port", "0", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("tradebot: TRADEBOT_JWT_SECRET, TRADEBOT_FERNET_KEYS: required")
    assert "Traceback" not in result.stderr


def test_cli_bad_variable_exits_2() -> None:
    result = _tradebot("migrate", env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://x"})
    assert result.returncode == 2
    assert result.stderr.strip() == "tradebot: DATABASE_URL: must start with postgresql:// (got 'mysql://x')"


def test_cli_bad_argument_exits_2_with_one_line() -> None:
    result = _tradebot("run", "--port", "99999", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "port 99999 is outside 0-65535" in result.stderr


def test_hardening_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRADEBOT_MAX_BOTS_PER_USER", "TRADEBOT_HEADER_READ_TIMEOUT_S", "TRADEBOT_ADMIN_EMAILS"):
        monkeypatch.delenv(name, raising=False)
    defaults = load_settings()
    assert (defaults.max_bots_per_user, defaults.header_read_timeout_s, defaults.admin_email_set) == (
        100, 10.0, frozenset())
    monkeypatch.setenv("TRADEBOT_MAX_BOTS_PER_USER", "7")
    monkeypatch.setenv("TRADEBOT_HEADER_READ_TIMEOUT_S", "2.5")
    monkeypatch.setenv("TRADEBOT_ADMIN_EMAILS", " Ops@Example.com, ,second@example.com ")
    got = load_settings()
    assert got.max_bots_per_user == 7 and got.header_read_timeout_s == 2.5
    assert got.admin_email_set == {"ops@example.com", "second@example.com"}
    monkeypatch.setenv("TRADEBOT_HEADER_READ_TIMEOUT_S", "0")
    with pytest.raises(ConfigError, match="TRADEBOT_HEADER_READ_TIMEOUT_S"):
        load_settings()


def test_drift_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRADEBOT_DRIFT_WARN_GAP_BPS", "TRADEBOT_DRIFT_NIGHTLY", "TRADEBOT_ENV"):
        monkeypatch.delenv(name, raising=False)
    defaults = load_settings()
    assert (defaults.drift_warn_gap_bps, defaults.drift_fee_rate, defaults.drift_window_hours) == (50.0, 0.0004, 24)
    assert defaults.drift_nightly_enabled  # on by default, off by default in tests, as asked otherwise
    assert not Settings.model_validate({"env": "test"}).drift_nightly_enabled
    assert Settings.model_validate({"env": "test", "drift_nightly": True}).drift_nightly_enabled
    monkeypatch.setenv("TRADEBOT_DRIFT_NIGHTLY", "false")
    monkeypatch.setenv("TRADEBOT_DRIFT_WARN_GAP_BPS", "12.5")
    got = load_settings()
    assert not got.drift_nightly_enabled and got.drift_warn_gap_bps == 12.5
    monkeypatch.setenv("TRADEBOT_DRIFT_NIGHTLY", "sometimes")
    with pytest.raises(ConfigError, match="TRADEBOT_DRIFT_NIGHTLY"):
        load_settings()
