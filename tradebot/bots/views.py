"""The JSON shapes of a bot's state, orders and trades, shared by the API and the runtime's events."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tradebot.bots.models import SETTING_FIELDS
from tradebot.bots.stats import EMPTY_LIFETIME, BotLifetime


def _num(value: Any) -> float | None:
    if value is None:
        return None
    return float(value) if isinstance(value, Decimal) else value


STATE_COLUMNS = (
    "status, in_position, position_side, position_size, entry_price, daily_pnl, daily_trades_count, "
    "last_error_message, last_run_at, last_updated_at, replica_id, drift_warning, paper_free_balance, paper_equity, "
    "entries_paused"
)


def state_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": row["status"],
        "in_position": row["in_position"],
        "position_side": row["position_side"],
        "position_size": _num(row["position_size"]) or 0.0,
        "entry_price": _num(row["entry_price"]),
        "daily_pnl": _num(row["daily_pnl"]) or 0.0,
        "daily_trades_count": row["daily_trades_count"],
        "last_error_message": row["last_error_message"],
        "last_run_at": row["last_run_at"],
        "last_updated_at": row["last_updated_at"],
        "replica_id": row["replica_id"],
        # A paper bot's virtual account (null for live bots): free balance, and equity at the last close.
        "paper_balance": _num(row["paper_free_balance"]),
        "equity": _num(row["paper_equity"]),
        # Set by the leader's nightly drift report when live PnL strays from the backtest's.
        "drift_warning": row["drift_warning"],
        # pause-entries: the bot still exits and protects, never enters (CONTRACT.md manual control).
        "entries_paused": row["entries_paused"],
    }


TRADE_COLUMNS = "id, bot_id, symbol, side, price, amount, fee, realized_pnl, paper, client_order_id, reason, created_at"


def trade_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "bot_id": row["bot_id"],
        "symbol": row["symbol"],
        "side": row["side"],
        "price": _num(row["price"]),
        "amount": _num(row["amount"]),
        "fee": _num(row["fee"]),
        "realized_pnl": _num(row["realized_pnl"]),
        "paper": row["paper"],
        "client_order_id": row["client_order_id"],
        "reason": row["reason"],
        "created_at": row["created_at"],
    }


ORDER_COLUMNS = (
    "id, bot_id, client_order_id, exchange_order_id, side, amount, status, paper, type, stop_price, created_at, "
    "updated_at"
)


def order_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "bot_id": row["bot_id"],
        "client_order_id": row["client_order_id"],
        "exchange_order_id": row["exchange_order_id"],
        "side": row["side"],
        "amount": _num(row["amount"]),
        "status": row["status"],
        "paper": row["paper"],
        "type": row["type"],  # "market", or a protective order's "stop_market", "take_profit_market"…
        "stop_price": _num(row["stop_price"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def state_or_stopped_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """state_view, or a stopped bot's state when the bot has no state row yet (a LEFT JOIN's nulls)."""
    if row["status"] is None:
        return {
            "status": "stopped",
            "in_position": False,
            "position_side": None,
            "position_size": 0.0,
            "entry_price": None,
            "daily_pnl": 0.0,
            "daily_trades_count": 0,
            "last_error_message": None,
            "last_run_at": None,
            "last_updated_at": None,
            "replica_id": None,
            "paper_balance": None,
            "equity": None,
            "drift_warning": None,
            "entries_paused": False,
        }
    return state_view(row)


# The bot object: its settings (one list, in models.py) between its id and its timestamps.
BOT_FIELDS = ("id", *SETTING_FIELDS, "is_active", "created_at", "updated_at")


def bot_view(row: Mapping[str, Any], lifetime: BotLifetime = EMPTY_LIFETIME) -> dict[str, Any]:
    """A bot's settings and flags plus its `state` and lifetime `stats`, from a row holding
    bot_configs and STATE_COLUMNS."""
    out = {name: _num(row[name]) if name == "paper_balance" else row[name] for name in BOT_FIELDS}
    out["state"] = state_or_stopped_view(row)
    out["stats"] = lifetime.view()
    return out
