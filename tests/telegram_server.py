"""A Bot-API-compatible Telegram server of the tests' own: a real aiohttp server, not a mock object.

It implements what tradebot calls, the way the Bot API documents it: `POST /bot<token>/<method>`
with a JSON body, answers `{"ok": true, "result": ...}` or `{"ok": false, "error_code",
"description"}`; getUpdates long-polls up to `timeout` seconds and confirms (forgets) every update
below `offset`; sendMessage with an inline keyboard; answerCallbackQuery; editMessageText (which
drops the keyboard unless a new one is sent). A wrong token is 401 like Telegram's.

The test plays the users: `say(chat_id, text)` is a message typed in a chat, `press(chat_id,
message_id, data)` a press on one of the bot's inline buttons; `messages(chat_id)` is what the
bot sent to the chat (edits applied). It runs on its own thread and loop, so synchronous tests
(driving replica processes) and async ones use it alike.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.processes import free_port

TOKEN = "123456789:AAtest-token-of-the-tests-own-server_x"


@dataclass
class SentMessage:
    message_id: int
    chat_id: int
    text: str
    buttons: list[list[dict[str, str]]]
    edits: int = 0

    def callback_data(self) -> list[str]:
        return [b["callback_data"] for row in self.buttons for b in row]


@dataclass
class TelegramServer:
    token: str = TOKEN
    port: int = field(default_factory=free_port)
    sent: list[SentMessage] = field(default_factory=list)
    callback_answers: list[tuple[str, str]] = field(default_factory=list)  # (callback id, text)
    get_updates_calls: int = 0
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _next_update: int = 1
    _next_message: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _arrived: asyncio.Condition | None = None
    _closing: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ the test's side

    def say(self, chat_id: int, text: str, username: str = "trader", chat_type: str = "private") -> None:
        with self._lock:
            message_id = self._next_message
            self._next_message += 1
        self._add({"message": {"message_id": message_id, "date": 0, "text": text,
                               "chat": {"id": chat_id, "type": chat_type},
                               "from": {"id": chat_id, "is_bot": False, "first_name": "T", "username": username}}})

    def press(self, chat_id: int, message_id: int, data: str, *, forged: bool = False) -> None:
        """A button press; `forged`: callback data no button of that message carries (a crafted client)."""
        with self._lock:
            message = next(m for m in self.sent if m.message_id == message_id)
            assert forged or data in message.callback_data(), f"no button {data!r} on message {message_id}"
            callback_id = f"cb{self._next_update}"
        self._add({"callback_query": {"id": callback_id, "data": data, "chat_instance": "1",
                                      "from": {"id": chat_id, "is_bot": False, "first_name": "T"},
                                      "message": {"message_id": message_id, "date": 0, "text": message.text,
                                                  "chat": {"id": chat_id, "type": "private"}}}})

    def messages(self, chat_id: int) -> list[SentMessage]:
        with self._lock:
            return [SentMessage(m.message_id, m.chat_id, m.text, list(m.buttons), m.edits)
                    for m in self.sent if m.chat_id == chat_id]

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.messages(chat_id)]

    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    def _add(self, body: dict[str, Any]) -> None:
        with self._lock:
            update = {"update_id": self._next_update, **body}
            self._next_update += 1
            self._updates.append(update)
        self._wake()

    def _wake(self) -> None:
        loop, arrived = self._loop, self._arrived
        assert loop is not None and arrived is not None, "the server is not running"

        async def wake() -> None:
            async with arrived:
                arrived.notify_all()

        asyncio.run_coroutine_threadsafe(wake(), loop).result(5)

    # ------------------------------------------------------------------ the Bot API

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        params = await request.json() if request.can_read_body else {}
        method = request.match_info["method"]
        handler = {"getUpdates": self._get_updates, "sendMessage": self._send_message,
                   "answerCallbackQuery": self._answer_callback, "editMessageText": self._edit}.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return await handler(params)

    @staticmethod
    def _bad(description: str) -> web.Response:
        return web.json_response({"ok": False, "error_code": 400, "description": f"Bad Request: {description}"},
                                 status=400)

    def _confirm_and_take(self, offset: int | None) -> list[dict[str, Any]]:
        with self._lock:
            if offset is not None:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            return list(self._updates)

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        with self._lock:
            self.get_updates_calls += 1
        offset = params.get("offset")
        timeout = float(params.get("timeout", 0))
        found = self._confirm_and_take(offset)
        if not found and timeout > 0:
            assert self._arrived is not None
            try:
                async with self._arrived:
                    await asyncio.wait_for(self._arrived.wait_for(
                        lambda: self._closing or bool(self._confirm_and_take(offset))), timeout)
            except TimeoutError:
                pass
            found = self._confirm_and_take(offset)
        return web.json_response({"ok": True, "result": found})

    async def _send_message(self, params: dict[str, Any]) -> web.Response:
        if not isinstance(params.get("chat_id"), int) or not params.get("text"):
            return self._bad("chat_id and text are required")
        buttons = (params.get("reply_markup") or {}).get("inline_keyboard", [])
        with self._lock:
            message = SentMessage(self._next_message, params["chat_id"], params["text"], buttons)
            self._next_message += 1
            self.sent.append(message)
        return web.json_response({"ok": True, "result": {"message_id": message.message_id, "date": 0,
                                                         "chat": {"id": message.chat_id, "type": "private"},
                                                         "text": message.text}})

    async def _answer_callback(self, params: dict[str, Any]) -> web.Response:
        with self._lock:
            self.callback_answers.append((str(params.get("callback_query_id")), str(params.get("text", ""))))
        return web.json_response({"ok": True, "result": True})

    async def _edit(self, params: dict[str, Any]) -> web.Response:
        with self._lock:
            found = [m for m in self.sent if m.chat_id == params.get("chat_id")
                     and m.message_id == params.get("message_id")]
            if not found:
                return self._bad("message to edit not found")
            found[0].text = str(params.get("text"))
            found[0].buttons = (params.get("reply_markup") or {}).get("inline_keyboard", [])
            found[0].edits += 1
        return web.json_response({"ok": True, "result": {"message_id": found[0].message_id, "date": 0,
                                                         "chat": {"id": found[0].chat_id, "type": "private"},
                                                         "text": found[0].text}})

    # ------------------------------------------------------------------ running

    def start(self) -> TelegramServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._arrived = asyncio.Condition()
            app = web.Application()
            app.router.add_post("/bot{token}/{method}", self._method)
            runner = web.AppRunner(app, shutdown_timeout=0.5)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"telegram-server-{self.port}", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the telegram server did not start"
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._closing = True
        self._wake()  # a long poll in progress answers now instead of being cut off
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None
        self._thread = None
