"""The Telegram bot's answers to chat messages and button presses.

A chat acts for the one user it is linked to (tradebot.notifications.telegram_links) and for
nobody else: every command resolves the user from the chat the update came from, never from
anything the update says, so a chat cannot name another user's bot into reach. /stopbot and
/forceexit only ask; the action happens on the confirmation button (a callback query), after the
chat's user and the bot's ownership are checked again.

The figures come through `Desk`, a port the app fills with the same services the API answers
from (the bots and portfolio services sit beside this package, not below it).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tradebot.notifications import telegram_text as text
from tradebot.notifications.telegram_api import Button, CallbackQuery, IncomingMessage
from tradebot.notifications.telegram_links import Redeemed, TelegramLinks

log = logging.getLogger(__name__)

MAX_PROFIT_DAYS = 3650
DAILY_DAYS = 7


class Desk(Protocol):
    async def bots(self, user_id: int) -> Sequence[Mapping[str, Any]]: ...

    async def bot(self, user_id: int, bot_id: int) -> Mapping[str, Any] | None: ...

    async def stats(self, user_id: int, group: str, since: dt.datetime | None) -> Mapping[str, Any]: ...

    async def balance_totals(self, user_id: int) -> Mapping[str, Any]: ...

    async def stop(self, user_id: int, bot_id: int) -> bool: ...

    # None when the exit was asked of the bot's owner; else why not (no such bot, not running, flat).
    async def force_exit(self, user_id: int, bot_id: int) -> str | None: ...


class Chat(Protocol):
    async def send_message(self, chat_id: int, text: str, *, buttons: Sequence[Sequence[Button]] = ()) -> int: ...

    async def answer_callback_query(self, callback_id: str, text: str = "") -> None: ...

    async def edit_message_text(self, chat_id: int, message_id: int, text: str) -> None: ...


def _command(message_text: str) -> tuple[str, list[str]]:
    words = message_text.strip().split()
    if not words or not words[0].startswith("/"):
        return "", words
    return words[0][1:].split("@", 1)[0].lower(), words[1:]


def _bot_id(args: Sequence[str]) -> int | None:
    if len(args) != 1 or not args[0].lstrip("#").isdigit() or len(args[0]) > 18:
        return None
    return int(args[0].lstrip("#"))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CommandHandler:
    def __init__(self, links: TelegramLinks, desk: Desk, chat: Chat) -> None:
        self._links = links
        self._desk = desk
        self._chat = chat

    async def on_message(self, message: IncomingMessage) -> None:
        name, args = _command(message.text)
        reply = await self._reply(message, name, args)
        if reply is not None:
            answer, buttons = reply
            await self._chat.send_message(message.chat_id, answer, buttons=buttons)

    async def _reply(self, message: IncomingMessage, name: str,
                     args: list[str]) -> tuple[str, list[list[Button]]] | None:
        if name == "start":
            return (await self._start(message, args)), []
        user_id = await self._links.user_of(message.chat_id)
        if user_id is None:
            return text.NOT_LINKED, []
        if name == "unlink":
            await self._links.unlink_chat(message.chat_id)
            log.info("telegram chat unlinked from the chat", extra={"user_id": user_id})
            return "Unlinked: this chat gets no more messages and its commands do nothing.", []
        if name == "status":
            return text.status_text(await self._desk.bots(user_id)), []
        if name == "profit":
            return (await self._profit(user_id, args)), []
        if name == "daily":
            since = dt.datetime.combine(utc_now().date() - dt.timedelta(days=DAILY_DAYS - 1), dt.time(), dt.UTC)
            stats = await self._desk.stats(user_id, "day", since)
            return text.daily_text(stats["items"]), []
        if name == "balance":
            return text.balance_text(await self._desk.balance_totals(user_id)), []
        if name in ("stopbot", "forceexit"):
            return await self._ask(user_id, name, args)
        return text.HELP, []

    async def _start(self, message: IncomingMessage, args: list[str]) -> str:
        if not message.private:
            # Only a one-to-one chat links: in a group every member could send the user's commands.
            return "Link from a private chat with this bot, not from a group."
        if len(args) != 1:
            return text.NOT_LINKED if await self._links.user_of(message.chat_id) is None else text.HELP
        outcome = await self._links.redeem(args[0], message.chat_id, message.username)
        if outcome is Redeemed.LINKED:
            log.info("telegram chat linked")
            return "Linked: this chat now gets your bots' trades, pauses, errors and failovers.\n\n" + text.HELP
        if outcome is Redeemed.EXPIRED:
            return "This code has expired. Ask the dashboard for a new one."
        if outcome is Redeemed.CHAT_TAKEN:
            return "This chat is linked to another account: send /unlink first."
        return "Unknown or already used code. Ask the dashboard for a new one."

    async def _profit(self, user_id: int, args: list[str]) -> str:
        if not args:
            return text.figures_text("Profit, all time", (await self._desk.stats(user_id, "all", None))["totals"])
        if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_PROFIT_DAYS:
            return f"Usage: /profit [days], days from 1 to {MAX_PROFIT_DAYS}"
        days = int(args[0])
        since = utc_now() - dt.timedelta(days=days)
        stats = await self._desk.stats(user_id, "all", since)
        return text.figures_text(f"Profit, last {days} days", stats["totals"])

    async def _ask(self, user_id: int, name: str, args: list[str]) -> tuple[str, list[list[Button]]]:
        bot_id = _bot_id(args)
        if bot_id is None:
            return f"Usage: /{name} <bot id> (see /status)", []
        bot = await self._desk.bot(user_id, bot_id)
        if bot is None:
            return f"You have no bot #{bot_id}.", []
        label = text.bot_label(bot_id, bot["name"], bot["symbol"])
        action = "stop" if name == "stopbot" else "exit"
        question = f"Stop {label}?" if action == "stop" else f"Close the position of {label} at market?"
        return question, [[Button("Yes, " + ("stop it" if action == "stop" else "close it"),
                                  f"{action}:{bot_id}"), Button("Cancel", "cancel")]]

    async def on_callback(self, callback: CallbackQuery) -> None:
        answer = await self._confirmed(callback)
        await self._chat.answer_callback_query(callback.id, answer)
        await self._chat.edit_message_text(callback.chat_id, callback.message_id, answer)

    async def _confirmed(self, callback: CallbackQuery) -> str:
        user_id = await self._links.user_of(callback.chat_id)
        if user_id is None:
            return text.NOT_LINKED
        if callback.data == "cancel":
            return "Cancelled."
        action, _, raw_id = callback.data.partition(":")
        if action not in ("stop", "exit") or not raw_id.isdigit() or len(raw_id) > 18:
            return "This button is not one of ours."
        bot_id = int(raw_id)
        if action == "stop":
            if not await self._desk.stop(user_id, bot_id):
                return f"You have no bot #{bot_id}."
            log.info("bot stop requested from telegram", extra={"user_id": user_id, "bot_id": bot_id})
            return f"Stopping bot #{bot_id}."
        refused = await self._desk.force_exit(user_id, bot_id)
        if refused is not None:
            return refused
        log.info("bot force exit requested from telegram", extra={"user_id": user_id, "bot_id": bot_id})
        return f"Closing the position of bot #{bot_id}."
