"""A real stack for the browser tests: the exchange simulator and a replica, each its own subprocess."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.processes import Replica, free_port, http_get, tradebot_run, wait_until


@dataclass
class Simulator:
    proc: subprocess.Popen[bytes]
    url: str

    def post(self, path: str, body: object) -> int:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)

    def create_account(self, usdt: float = 10_000) -> tuple[str, str]:
        key, secret = f"key-{secrets.token_hex(8)}", secrets.token_hex(32)
        assert self.post("/_sim/accounts", {"api_key": key, "secret": secret, "balances": {"USDT": usdt}}) == 201
        return key, secret

    def push_klines(self, candles: Sequence[Sequence[float]], symbol: str = "BTCUSDT", interval: str = "1m") -> None:
        assert self.post("/_sim/klines", {"symbol": symbol, "interval": interval, "candles": candles}) == 202


@contextmanager
def simulator_process(log_dir: Path) -> Iterator[Simulator]:
    port = free_port()
    with open(log_dir / f"simulator-{port}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradebot", "simulator", "--port", str(port), "--mode", "manual"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    sim = Simulator(proc, f"http://127.0.0.1:{port}")
    try:
        wait_until(
            lambda: proc.poll() is not None or http_get(sim.url + "/fapi/v1/ping")[0] == 200, 30, "the simulator"
        )
        assert proc.poll() is None, f"simulator exited with {proc.returncode}"
        yield sim
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@dataclass
class Stack:
    sim: Simulator
    replica: Replica
    outbox: Path

    @property
    def url(self) -> str:
        return self.replica.url


@contextmanager
def dashboard_stack(
    database_url: str, redis_url: str, work_dir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """The simulator and a replica; ``extra_env`` is added to the replica's environment (a plugin's
    PYTHONPATH, say)."""
    outbox = work_dir / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    with simulator_process(work_dir) as sim:
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TRADEBOT_EXCHANGE_URL": sim.url,
            "TRADEBOT_REDIS_PREFIX": f"browser-{secrets.token_hex(4)}",
            "TRADEBOT_DATA_DIR": str(work_dir / "var"),
            "TRADEBOT_OUTBOX_DIR": str(outbox),
            "TRADEBOT_AUTH_REGISTER_PER_IP_PER_MIN": "100",
            "TRADEBOT_AUTH_LOGIN_PER_IP_PER_MIN": "100",
            "TRADEBOT_AUTH_RESET_PER_IP_PER_MIN": "100",
            "PYTHONUNBUFFERED": "1",
        }
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}, **env, **(extra_env or {})}
        with tradebot_run(env, work_dir) as replica:
            yield Stack(sim, replica, outbox)
