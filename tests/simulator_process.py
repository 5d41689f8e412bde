"""The exchange simulator as its own process, shared by several replicas, with a sync control client."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.api_client import request
from tests.processes import free_port, http_get, wait_until


@dataclass
class SimulatorProcess:
    proc: subprocess.Popen[bytes]
    url: str

    def control(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = request(method, f"{self.url}/_sim{path}", body)
        assert status < 300, f"/_sim{path}: {status} {payload}"
        return payload

    def account(self, usdt: float = 10_000) -> tuple[str, str]:
        api_key, secret = f"key-{secrets.token_hex(6)}", secrets.token_hex(32)
        self.control("POST", "/accounts", {"api_key": api_key, "secret": secret, "balances": {"USDT": usdt}})
        return api_key, secret

    def push(self, rows: list[list[float]], symbol: str = "BTCUSDT", interval: str = "1m") -> None:
        self.control("POST", "/klines", {"symbol": symbol, "interval": interval, "candles": rows})

    def orders(self, api_key: str) -> list[dict[str, Any]]:
        return list(self.control("GET", f"/orders?api_key={api_key}"))

    def positions(self, api_key: str) -> dict[str, Any]:
        return dict(self.control("GET", f"/positions?api_key={api_key}"))


@contextmanager
def simulator_process(log_dir: Path, *args: str) -> Iterator[SimulatorProcess]:
    port = free_port()
    with open(log_dir / f"simulator-{port}.log", "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradebot", "simulator", "--port", str(port), "--mode", "manual", *args],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    sim = SimulatorProcess(proc, f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: http_get(sim.url + "/fapi/v1/ping")[0] == 200 or proc.poll() is not None, 30,
                   "the simulator")
        assert proc.poll() is None, (log_dir / f"simulator-{port}.log").read_text()
        yield sim
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
