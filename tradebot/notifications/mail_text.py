"""The words of a notification mail (pure): what happened to which bot, and where to look."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradebot.notifications.events import Event


def mail_text(kind: str, bot_id: int | None, bot_name: str | None, symbol: str | None,
              state: Mapping[str, Any], public_url: str) -> tuple[str, str]:
    """(subject, body) of a mail about a bot gone to error or paused by a daily limit."""
    name = f"{bot_name or 'bot'} (#{bot_id}{', ' + symbol if symbol else ''})"
    reason = state.get("last_error_message") or "no reason was recorded"
    if kind == Event.ERROR:
        subject = f"tradebot: {name} stopped with an error"
        what = ("stopped trading with an error and stays stopped until you look at it and start it "
                "again.")
    else:
        subject = f"tradebot: {name} paused by a daily limit"
        what = ("reached one of its daily limits and opens no new positions until 00:00 UTC; it still "
                "exits and protects an open position.")
    body = (f"Your bot {name} {what}\n\nReason: {reason}\n\nOpen the dashboard: {public_url.rstrip('/')}/\n\n"
            "You receive this mail because bot failures and pauses are mailed by default; turn it off in "
            "your notification preferences (PUT /api/v1/notifications/preferences).\n")
    return subject, body
