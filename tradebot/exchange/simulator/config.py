"""Simulator settings and the accounts file format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tradebot.exchange.simulator.replay import ReplaySpec

Mode = Literal["random_walk", "manual"]
MODES: tuple[Mode, ...] = ("random_walk", "manual")


@dataclass(frozen=True, slots=True)
class AccountSpec:
    api_key: str
    secret: str
    balances: dict[str, Decimal]


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8090
    seed: int = 0
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    mode: Mode = "random_walk"
    candle_seconds: float = 60.0
    fee_rate: Decimal = Decimal("0.0004")
    slippage_bps: Decimal = Decimal("0")
    accounts: tuple[AccountSpec, ...] = field(default_factory=tuple)
    history_candles: int = 1500  # closed 1m candles generated before the start, to warm indicators
    recv_window_ms: int = 5000  # Binance's default when a request does not send recvWindow
    reuse_closed_client_ids: bool = False  # True: Binance's rule (an id is refused only while its order is open)
    replay: ReplaySpec | None = None  # a CSV replayed in manual mode, one candle per candle_seconds


class ConfigError(ValueError):
    """A setting or file the simulator cannot start with; the message names what is wrong."""


def parse_balances(raw: object, where: str) -> dict[str, Decimal]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f'{where}: balances must be a non-empty object like {{"USDT": 10000}}')
    balances: dict[str, Decimal] = {}
    for asset, amount in raw.items():
        if not isinstance(asset, str) or not asset.isalnum():
            raise ConfigError(f"{where}: asset names are letters and digits, got {asset!r}")
        if isinstance(amount, bool) or not isinstance(amount, int | float | str):
            raise ConfigError(f"{where}: balance of {asset} must be a number")
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            raise ConfigError(f"{where}: balance of {asset} must be a number") from None
        if not value.is_finite() or value < 0:
            raise ConfigError(f"{where}: balance of {asset} must be a finite number ≥ 0")
        balances[asset.upper()] = value
    return balances


def parse_account(raw: object, where: str) -> AccountSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: an account is an object {{api_key, secret, balances}}")
    api_key, secret = raw.get("api_key"), raw.get("secret")
    if not isinstance(api_key, str) or not api_key:
        raise ConfigError(f"{where}: api_key must be a non-empty string")
    if not isinstance(secret, str) or not secret:
        raise ConfigError(f"{where}: secret must be a non-empty string")
    return AccountSpec(api_key, secret, parse_balances(raw.get("balances"), where))


def load_accounts_file(path: Path) -> tuple[AccountSpec, ...]:
    """Reads a JSON list of `{api_key, secret, balances}` objects, the body `/_sim/accounts` takes."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read accounts file {path}: {e.strerror}") from e
    except ValueError as e:
        raise ConfigError(f"accounts file {path} is not valid JSON: {e}") from e
    if not isinstance(raw, list):
        raise ConfigError(f"accounts file {path} must hold a JSON list of accounts")
    return tuple(parse_account(item, f"{path}[{i}]") for i, item in enumerate(raw))
