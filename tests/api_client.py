"""A small synchronous client for tests that drive real processes through the public HTTP API."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


class ApiError(AssertionError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
            timeout: float = 15.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={**(headers or {})})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return int(r.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return int(e.code), json.loads(raw) if raw else None
        except ValueError:
            return int(e.code), raw.decode(errors="replace")


@dataclass
class Api:
    """One user of one replica's API."""

    base: str  # e.g. http://127.0.0.1:8080
    token: str = ""
    email: str = field(default_factory=lambda: f"user-{secrets.token_hex(4)}@example.com")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        status, payload = request(method, f"{self.base}/api/v1{path}", body, headers)
        if expect is not None and status != expect:
            raise ApiError(status, payload)
        return payload

    def sign_up(self) -> Api:
        self.call("POST", "/auth/register", {"email": self.email, "password": self.password}, expect=201)
        return self.log_in()

    def log_in(self) -> Api:
        self.token = ""
        self.token = self.call("POST", "/auth/login", {"email": self.email, "password": self.password},
                               expect=200)["access_token"]
        return self

    def add_key(self, api_key: str, secret: str) -> int:
        body = {"label": "simulator", "exchange": "binanceusdm", "api_key": api_key, "secret_key": secret}
        return int(self.call("POST", "/api-keys", body, expect=201)["id"])

    def create_bot(self, key_id: int | None, **settings: Any) -> int:
        body = {"api_key_id": key_id, "symbol": "BTCUSDT", "strategy": "ema_cross", "timeframe": "1m",
                "ema_period": 5, "leverage": 2, "order_size_pct": 50, "allow_short": True, **settings}
        return int(self.call("POST", "/bots", body, expect=201)["id"])

    def start(self, bot_id: int) -> None:
        self.call("POST", f"/bots/{bot_id}/start", expect=202)

    def state(self, bot_id: int) -> dict[str, Any]:
        return dict(self.call("GET", f"/bots/{bot_id}/state", expect=200))
