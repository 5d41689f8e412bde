"""A webhook receiver of the tests' own: a real aiohttp server that checks signatures independently.

The check is written from CONTRACT.md's words, not with tradebot's signer: `X-Tradebot-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256(key = the secret's UTF-8 bytes, "<t>." + raw body)>`. It runs
on its own thread and event loop, so synchronous tests (driving replica processes) and async ones
use it alike, and it can be stopped and started again on the same port (a receiver that was down).

Paths: POST /hooks/<name> records the request and answers as `behaviour` says; GET /internal is a
target that must never be reached (redirects point at it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.processes import free_port


@dataclass(frozen=True)
class Received:
    name: str
    delivery: str
    event: str
    body: dict[str, Any]
    signature_ok: bool
    at: float  # time.time() when it arrived


def signature_valid(secret: str, header: str, raw_body: bytes) -> bool:
    """CONTRACT.md: t=<unix seconds>,v1=<hex HMAC-SHA256(secret UTF-8, "<t>." + raw body)>."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    expected = hmac.new(secret.encode("utf-8"), parts["t"].encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    secrets: dict[str, str] = field(default_factory=dict)  # hook name -> secret
    records: list[Received] = field(default_factory=list)
    behaviour: str = "ok"  # ok | hang | redirect
    fail_next: int = 0  # answer this many requests with 503 first
    internal_hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _release: asyncio.Event | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    # ------------------------------------------------------------------ what arrived

    def received(self, name: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.records if name is None or r.name == name]

    def delivered_ids(self, name: str | None = None) -> list[int]:
        """Delivery ids in the order of their first arrival (retries and resends counted once)."""
        seen: dict[int, None] = {}
        for r in self.received(name):
            seen.setdefault(int(r.delivery), None)
        return list(seen)

    # ------------------------------------------------------------------ the server

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        name = request.match_info["name"]
        secret = self.secrets.get(name, "")
        ok = signature_valid(secret, request.headers.get("X-Tradebot-Signature", ""), raw)
        body = json.loads(raw)
        assert request.headers.get("Content-Type", "").startswith("application/json")
        with self._lock:
            failing = self.fail_next > 0
            if failing:
                self.fail_next -= 1
            self.records.append(Received(name, request.headers.get("X-Tradebot-Delivery", ""),
                                         request.headers.get("X-Tradebot-Event", ""), body, ok, time.time()))
        if self.behaviour == "hang":
            assert self._release is not None
            await self._release.wait()
        if self.behaviour == "redirect":
            raise web.HTTPFound(f"http://127.0.0.1:{self.port}/internal")
        if failing:
            return web.Response(status=503, text="try again")
        return web.Response(status=204)

    async def _internal(self, request: web.Request) -> web.Response:
        with self._lock:
            self.internal_hits += 1
        return web.Response(text="internal")

    def start(self) -> Receiver:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_post("/hooks/{name}", self._hook)
            app.router.add_route("*", "/internal", self._internal)
            self._release = asyncio.Event()
            runner = web.AppRunner(app, shutdown_timeout=0.5)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start())
            self._runner = runner
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"webhook-receiver-{self.port}", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the receiver did not start"
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until `start` again (hanging requests are let go)."""
        if self._loop is None or self._thread is None:
            return
        loop = self._loop
        assert self._release is not None
        loop.call_soon_threadsafe(self._release.set)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._loop = None
        self._thread = None
