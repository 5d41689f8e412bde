"""A real cluster for tests and the bench: replica processes, one simulator process, HTTP and SQL probes.

Everything runs on 127.0.0.1 as subprocesses stopped by their own pid; PostgreSQL is the test
session's database and Redis either the shared one (under a key prefix of its own) or a private
redis-server. Synchronous on purpose: the test process only pokes and polls.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet

from tests.api_client import request as api_request
from tests.processes import Replica, free_port, http_get, wait_until

PASSWORD = "cluster-pass-123"
MINUTE = 60_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def request(url: str, method: str = "GET", body: Any = None, token: str | None = None,
            timeout: float = 10.0) -> tuple[int, Any]:
    return api_request(method, url, body, {"Authorization": f"Bearer {token}"} if token else None, timeout)


@contextmanager
def simulator_process(log_dir: Path) -> Iterator[str]:
    """`tradebot simulator --mode manual` as its own process, shared by every replica."""
    port = free_port()
    log = open(log_dir / "simulator.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "tradebot", "simulator", "--port", str(port), "--mode", "manual"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TRADEBOT_ENV": "test"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or http_get(url + "/fapi/v1/ping")[0] == 200, 60,
                   "the simulator to answer")
        assert proc.poll() is None, (log_dir / "simulator.log").read_text()
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        log.close()


@dataclass
class Node:
    name: str
    replica: Replica

    @property
    def url(self) -> str:
        return self.replica.url

    @property
    def pid(self) -> int:
        return self.replica.proc.pid

    def alive(self) -> bool:
        return self.replica.proc.poll() is None


@dataclass
class Cluster:
    database_url: str
    redis_url: str
    exchange_url: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"cluster-{secrets.token_hex(4)}")
    # Signed up by sign_up() and named in TRADEBOT_ADMIN_EMAILS: GET /cluster answers operators only.
    operator_email: str = field(default_factory=lambda: f"operator-{secrets.token_hex(4)}@example.com")
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    fernet_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    nodes: dict[str, Node] = field(default_factory=dict)
    token: str | None = None

    # ------------------------------------------------------------------ processes

    def env(self, name: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TRADEBOT_REDIS_PREFIX": self.prefix,
            "TRADEBOT_JWT_SECRET": self.jwt_secret,
            "TRADEBOT_FERNET_KEYS": self.fernet_key,
            "TRADEBOT_EXCHANGE_URL": self.exchange_url,
            "TRADEBOT_REPLICA_ID": name,
            "TRADEBOT_DATA_DIR": str(self.log_dir / "var"),
            "TRADEBOT_LOG_LEVEL": "INFO",
            "TRADEBOT_ADMIN_EMAILS": self.operator_email,
            **self.extra_env,
        }

    def start(self, *names: str) -> list[Node]:
        """Start replicas in parallel (all launched, then each waited for), as `tradebot run` processes."""
        launched = []
        for name in names:
            port = free_port()
            log_path = self.log_dir / f"{name}.log"
            with open(log_path, "wb") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tradebot", "run", "--port", str(port)],
                    env={**os.environ, "TRADEBOT_ENV": "test", **self.env(name)},
                    stdout=log_file, stderr=subprocess.STDOUT,
                )
            node = Node(name, Replica(proc, f"http://127.0.0.1:{port}", log_path))
            self.nodes[name] = node
            launched.append(node)
        for node in launched:
            wait_until(functools.partial(_up, node), 90, f"{node.name} to answer /healthz")
            assert node.alive(), f"{node.name} exited:\n{node.replica.log()}"
        return launched

    def kill(self, name: str, sig: int = signal.SIGKILL, *, wait: bool = True) -> None:
        node = self.nodes[name]
        os.kill(node.pid, sig)
        if wait and sig in (signal.SIGKILL, signal.SIGTERM):
            node.replica.proc.wait(timeout=20)

    def close(self) -> None:
        for node in self.nodes.values():
            if node.alive():
                try:
                    os.kill(node.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            if node.alive():
                node.replica.proc.kill()
            node.replica.proc.wait(timeout=20)

    def live_names(self) -> list[str]:
        return sorted(n for n, node in self.nodes.items() if node.alive())

    def any_url(self) -> str:
        return self.nodes[self.live_names()[0]].url

    # ------------------------------------------------------------------ API

    def api(self, method: str, path: str, body: Any = None, *, url: str | None = None) -> tuple[int, Any]:
        return request((url or self.any_url()) + path, method, body, self.token)

    def sign_up(self, email: str | None = None) -> None:
        email = email or self.operator_email
        status, body = self.api("POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD})
        assert status == 201, body
        status, body = self.api("POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200, body
        self.token = body["access_token"]

    def exchange_account(self, usdt: float = 10_000) -> tuple[str, str]:
        api_key, secret = f"key-{secrets.token_hex(8)}", secrets.token_hex(32)
        status, body = request(self.exchange_url + "/_sim/accounts", "POST",
                               {"api_key": api_key, "secret": secret, "balances": {"USDT": usdt}})
        assert status == 201, body
        return api_key, secret

    def api_key(self, api_key: str, secret: str) -> int:
        status, body = self.api("POST", "/api/v1/api-keys",
                                {"label": api_key[-8:], "exchange": "binanceusdm", "api_key": api_key,
                                 "secret_key": secret})
        assert status == 201, body
        return int(body["id"])

    def create_bots(self, n: int, key_id: int, **settings: Any) -> list[int]:
        out = []
        for _ in range(n):
            body = {"api_key_id": key_id, "symbol": "BTC/USDT:USDT", "timeframe": "1m", "ema_period": 2,
                    "leverage": 2, "order_size_pct": 20.0, "allow_short": True, **settings}
            status, created = self.api("POST", "/api/v1/bots", body)
            assert status == 201, created
            out.append(int(created["id"]))
        return out

    def start_bot(self, bot_id: int) -> None:
        status, body = self.api("POST", f"/api/v1/bots/{bot_id}/start")
        assert status == 202, body

    def push(self, candles: list[list[float]], symbol: str = "BTCUSDT") -> None:
        status, body = request(self.exchange_url + "/_sim/klines", "POST",
                               {"symbol": symbol, "interval": "1m", "candles": candles})
        assert status == 202, body

    def sim_orders(self, api_key: str) -> list[dict[str, Any]]:
        status, body = request(f"{self.exchange_url}/_sim/orders?api_key={api_key}")
        assert status == 200, body
        return list(body)

    # ------------------------------------------------------------------ database

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return list(conn.execute(query, args).fetchall())

    def placement(self) -> dict[int, str]:
        """bot → replica for every bot whose state says it runs."""
        rows = self.sql("SELECT bot_id, replica_id FROM bot_state WHERE status = 'running'")
        return {int(b): str(r) for b, r in rows}

    def published(self) -> dict[int, str]:
        """The leader's bot → replica map, as stored in Redis."""
        import redis

        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            return {int(b): str(r) for b, r in client.hgetall(f"{self.prefix}:assignment").items()}
        finally:
            client.close()

    def leader(self) -> str | None:
        status, body = self.api("GET", "/api/v1/cluster")
        return body.get("leader") if status == 200 else None

    def cluster_view(self, url: str | None = None) -> dict[str, Any]:
        status, body = self.api("GET", "/api/v1/cluster", url=url)
        assert status == 200, body
        return dict(body)


def _up(node: Node) -> bool:
    return not node.alive() or http_get(node.url + "/healthz")[0] == 200


def candles(closes: list[float], start_ms: int) -> list[list[float]]:
    rows, prev = [], closes[0]
    for i, c in enumerate(closes):
        rows.append([start_ms + i * MINUTE, prev, max(prev, c) + 0.5, min(prev, c) - 0.5, c, 10.0])
        prev = c
    return rows


def timed(predicate: Any, timeout: float, what: str) -> float:
    took = wait_until(predicate, timeout, what, interval=0.05)
    return took


def now() -> float:
    return time.monotonic()
