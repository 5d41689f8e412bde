"""Telegram's pure parts: which events a chat hears of, their text, update parsing, the token setting."""

from __future__ import annotations

import pytest

from tradebot.config import ConfigError, load_settings
from tradebot.notifications.outbox import tells_telegram
from tradebot.notifications.telegram_api import parse_update
from tradebot.notifications.telegram_text import bot_label, event_text


def test_a_chat_hears_of_trades_and_status_moves_only() -> None:
    assert tells_telegram("trade", None, None)
    assert tells_telegram("state", "paused", "running")
    assert tells_telegram("state", "running", "starting")  # a start, a resume or a failover
    assert not tells_telegram("state", "running", "running")  # a candle's or a fill's rewrite
    assert not tells_telegram("state", "starting", "stopped")
    assert not tells_telegram("state", "error", "running")  # told by the error event instead


def test_event_texts() -> None:
    label = bot_label(3, "Owl", "BTC/USDT:USDT")
    assert label == "Owl (#3, BTC/USDT:USDT)"
    assert event_text("trade", {"side": "sell", "amount": 0.5, "price": 101.5, "realized_pnl": -2.345, "fee": 0.01},
                      label) == "Exit - Owl (#3, BTC/USDT:USDT): SELL 0.5 @ 101.5, PnL -2.35, fee 0.01"
    assert event_text("trade", {"side": "buy", "amount": 0.5, "price": 100, "realized_pnl": 0, "fee": None},
                      label) == "Entry - Owl (#3, BTC/USDT:USDT): BUY 0.5 @ 100"
    assert event_text("error", {"last_error_message": "key refused"}, label) == \
        "Error - Owl (#3, BTC/USDT:USDT) stopped: key refused"
    assert event_text("state", {"status": "stopped"}, label) == "Stopped - Owl (#3, BTC/USDT:USDT)"


def test_updates_of_other_kinds_keep_only_their_id() -> None:
    message = parse_update({"update_id": 5, "message": {"message_id": 1, "text": "/status", "chat": {"id": 9},
                                                        "from": {"username": "ann"}}})
    assert message.message is not None and message.message.chat_id == 9 and message.message.username == "ann"
    press = parse_update({"update_id": 6, "callback_query": {"id": "c", "data": "stop:1",
                                                             "message": {"message_id": 2, "chat": {"id": 9}}}})
    assert press.callback is not None and press.callback.data == "stop:1"
    assert message.message.private is False  # no chat type: not known to be one-to-one
    group = parse_update({"update_id": 8, "message": {"message_id": 4, "text": "/start x",
                                                      "chat": {"id": -5, "type": "group"}}})
    assert group.message is not None and group.message.private is False
    sticker = parse_update({"update_id": 7, "message": {"message_id": 3, "chat": {"id": 9}, "sticker": {}}})
    assert sticker.message is None and sticker.callback is None and sticker.update_id == 7


def test_the_token_is_checked_and_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEBOT_TELEGRAM_BOT_TOKEN", "hunter2 is not a token")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith("TRADEBOT_TELEGRAM_BOT_TOKEN: must look like") and "hunter2" not in str(info.value)
    monkeypatch.setenv("TRADEBOT_TELEGRAM_BOT_TOKEN", "123:" + "s" * 30)
    settings = load_settings()
    assert settings.telegram_bot_token is not None and "sss" not in repr(settings)
    monkeypatch.setenv("TRADEBOT_TELEGRAM_API_URL", "ftp://x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith("TRADEBOT_TELEGRAM_API_URL: must be an http:// or https:// URL")
