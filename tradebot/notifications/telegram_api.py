"""A small typed client of the Telegram Bot API, on our aiohttp: the four methods tradebot uses.

Not aiogram or python-telegram-bot: aiogram pins an aiohttp older than ours, and four methods
(getUpdates, sendMessage, answerCallbackQuery, editMessageText) do not need a framework. The API
URL is configurable (TRADEBOT_TELEGRAM_API_URL) so tests talk to a Bot-API-compatible server of
the project's own. The token is part of every request path (`<url>/bot<token>/<method>`): it is
never logged, and errors carry the method name only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

REQUEST_TIMEOUT_S = 15.0  # every call but getUpdates, which waits its long-poll timeout on top


class TelegramApiError(Exception):
    """The Bot API refused a call (`ok: false`) or could not be reached; `retry_after` when it said so."""

    def __init__(self, method: str, description: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{method}: {description}")
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    callback_data: str


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    chat_id: int
    message_id: int
    text: str
    username: str | None
    private: bool = True  # a one-to-one chat with the bot (not a group, where anyone could command)


@dataclass(frozen=True, slots=True)
class CallbackQuery:
    id: str
    chat_id: int
    message_id: int
    data: str


@dataclass(frozen=True, slots=True)
class Update:
    update_id: int
    message: IncomingMessage | None = None
    callback: CallbackQuery | None = None


def parse_update(raw: Mapping[str, Any]) -> Update:
    """An update of the kinds we act on; anything else keeps only its id (it is skipped past)."""
    update_id = int(raw["update_id"])
    msg = raw.get("message")
    if isinstance(msg, Mapping) and isinstance(msg.get("text"), str) and isinstance(msg.get("chat"), Mapping):
        sender: Mapping[str, Any] = msg["from"] if isinstance(msg.get("from"), Mapping) else {}
        return Update(update_id, message=IncomingMessage(int(msg["chat"]["id"]), int(msg["message_id"]), msg["text"],
                                                         sender.get("username"),
                                                         private=msg["chat"].get("type") == "private"))
    cq = raw.get("callback_query")
    if isinstance(cq, Mapping) and isinstance(cq.get("message"), Mapping) and isinstance(cq.get("data"), str):
        m = cq["message"]
        return Update(update_id, callback=CallbackQuery(str(cq["id"]), int(m["chat"]["id"]), int(m["message_id"]),
                                                        cq["data"]))
    return Update(update_id)


def _keyboard(rows: Sequence[Sequence[Button]]) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": b.text, "callback_data": b.callback_data} for b in row] for row in rows]}


class BotApi:
    def __init__(self, api_url: str, token: str) -> None:
        self._base = f"{api_url.rstrip('/')}/bot{token}/"
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def _call(self, method: str, params: Mapping[str, Any], *, timeout_s: float = REQUEST_TIMEOUT_S) -> Any:
        try:
            async with self._client().post(self._base + method, json=dict(params),
                                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                body = await response.json(content_type=None)
                status = response.status
        except TimeoutError as e:
            raise TelegramApiError(method, f"no answer within {timeout_s:g} s") from e
        except (aiohttp.ClientError, OSError, ValueError) as e:
            # The message of a connection error can carry the URL, and so the token: only the type.
            raise TelegramApiError(method, type(e).__name__) from e
        if not isinstance(body, Mapping) or body.get("ok") is not True:
            body = body if isinstance(body, Mapping) else {}
            retry = body.get("parameters", {}).get("retry_after") if isinstance(body.get("parameters"), Mapping) else None
            raise TelegramApiError(method, str(body.get("description", f"HTTP {status}"))[:300], status=status,
                                   retry_after=float(retry) if isinstance(retry, int | float) else None)
        return body.get("result")

    async def get_updates(self, offset: int | None, timeout_s: int) -> list[Update]:
        params: dict[str, Any] = {"timeout": timeout_s, "allowed_updates": ["message", "callback_query"]}
        if offset is not None:
            params["offset"] = offset
        result = await self._call("getUpdates", params, timeout_s=timeout_s + REQUEST_TIMEOUT_S)
        return [parse_update(u) for u in result or [] if isinstance(u, Mapping) and "update_id" in u]

    async def send_message(self, chat_id: int, text: str, *, buttons: Sequence[Sequence[Button]] = ()) -> int:
        params: dict[str, Any] = {"chat_id": chat_id, "text": text[:4096]}
        if buttons:
            params["reply_markup"] = _keyboard(buttons)
        result = await self._call("sendMessage", params)
        return int(result["message_id"]) if isinstance(result, Mapping) else 0

    async def answer_callback_query(self, callback_id: str, text: str = "") -> None:
        await self._call("answerCallbackQuery", {"callback_query_id": callback_id, "text": text[:200]})

    async def edit_message_text(self, chat_id: int, message_id: int, text: str) -> None:
        # No reply_markup: the buttons go, so a confirmation cannot be pressed twice.
        await self._call("editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": text[:4096]})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
