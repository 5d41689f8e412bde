"""What the Telegram bot says: event messages and command answers, as plain text (no parse mode,
so a bot name never needs escaping). Pure: figures in, text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

HELP = (
    "tradebot commands:\n"
    "/status - your bots\n"
    "/profit [days] - realised PnL (all time, or the last days)\n"
    "/daily - PnL per day, last 7 days\n"
    "/balance - your exchange balances\n"
    "/stopbot <id> - stop a bot (asks to confirm)\n"
    "/forceexit <id> - close a bot's position (asks to confirm)\n"
    "/unlink - stop sending to this chat"
)
NOT_LINKED = ("This chat is not linked to a tradebot account. On the dashboard's Notifications page, "
              "choose \"Link Telegram\" and send the /start command it shows.")


def money(value: float | None) -> str:
    """Quote-currency amounts as the chat shows them (and the tests read them back): 2 decimals."""
    return "n/a" if value is None else f"{value:.2f}"


def amount(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def bot_label(bot_id: int | None, name: str | None, symbol: str | None) -> str:
    parts = f"#{bot_id}" if name is None else f"{name} (#{bot_id}"
    if name is None:
        return parts if symbol is None else f"{parts} {symbol}"
    return f"{parts}, {symbol})" if symbol is not None else f"{parts})"


def event_text(event: str, data: Mapping[str, Any], label: str) -> str:
    """A delivery's message. A trade with a realised PnL closed (part of) a position: an exit."""
    if event == "trade":
        pnl = data.get("realized_pnl")
        side = str(data.get("side", "")).upper()
        head = f"{label}: {side} {amount(data.get('amount'))} @ {amount(data.get('price'))}"
        fee = f", fee {money(data.get('fee'))}" if data.get("fee") is not None else ""
        if pnl:
            return f"Exit - {head}, PnL {money(pnl)}{fee}"
        return f"Entry - {head}{fee}"
    if event == "error":
        return f"Error - {label} stopped: {data.get('last_error_message') or 'no message'}"
    status = data.get("status")
    if status == "paused":
        return f"Paused - {label}: {data.get('pause_reason') or data.get('last_error_message') or 'daily limit reached'}"
    if status == "running":
        where = f" on replica {data['replica_id']}" if data.get("replica_id") else ""
        return f"Running - {label}{where}"
    return f"{str(status).capitalize()} - {label}"


def status_text(bots: Sequence[Mapping[str, Any]]) -> str:
    if not bots:
        return "You have no bots."
    lines = []
    for b in bots:
        state = b["state"]
        if state.get("in_position"):
            pos = (f"{state.get('position_side')} {amount(state.get('position_size'))} "
                   f"@ {amount(state.get('entry_price'))}")
        else:
            pos = "flat"
        lines.append(f"{bot_label(b['id'], b['name'], b['symbol'])}: {state['status']}, {pos}, "
                     f"today {money(state.get('daily_pnl'))}")
    return "\n".join(lines)


def figures_text(title: str, figures: Mapping[str, Any]) -> str:
    return (f"{title}: net {money(figures['net_pnl'])} (realised {money(figures['realized_pnl'])}, "
            f"fees {money(figures['fees'])}), {figures['trades_count']} trades, "
            f"{figures['wins']} wins, {figures['losses']} losses")


def daily_text(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return "No trades in the last 7 days."
    return "\n".join(figures_text(str(i["period_start"])[:10], i) for i in items)


def balance_text(totals: Mapping[str, Any]) -> str:
    balances: Mapping[str, Mapping[str, float]] = totals.get("balances") or {}
    if not balances:
        lines = ["No exchange balance (no API key, or none could be read)."]
    else:
        lines = [f"{asset}: {amount(a['total'])} (free {amount(a['free'])}, used {amount(a['used'])})"
                 for asset, a in balances.items()]
    if not totals.get("complete", True):
        lines.append("(incomplete: a balance or a price could not be read)")
    return "\n".join(lines)
