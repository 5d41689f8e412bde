"""`tradebot run` as a real process: endpoints, readiness following Redis, graceful SIGTERM, fallback."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import truncate_tables
from tests.processes import free_port, http_get, redis_server, tradebot_run, wait_until


@pytest.fixture
def database_url(database_url: str) -> str:
    """The session's database, emptied: a replica started here takes any active bot an earlier test
    left behind, and that bot's exchange (the real Binance, unreachable here) crashes it."""
    truncate_tables(database_url)
    return database_url


def test_run_serves_operations_endpoints(database_url: str, redis_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TRADEBOT_DATA_DIR": str(tmp_path)}
    with tradebot_run(env, tmp_path) as replica:
        assert http_get(replica.url + "/healthz")[0] == 200
        status, body = http_get(replica.url + "/readyz")
        assert status == 200 and json.loads(body)["status"] == "ready"
        status, body = http_get(replica.url + "/metrics")
        assert status == 200 and b"tradebot_http_requests_total" in body
        status, body = http_get(replica.url + "/api/openapi.json")
        assert status == 200 and json.loads(body)["openapi"].startswith("3.1")
        started = time.monotonic()
        assert replica.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
        assert "Traceback" not in replica.log()


def test_readyz_follows_redis(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "TRADEBOT_DATA_DIR": str(tmp_path),
    }
    with redis_server(port, tmp_path) as redis_proc, tradebot_run(env, tmp_path) as replica:
        assert http_get(replica.url + "/readyz")[0] == 200
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        wait_until(lambda: http_get(replica.url + "/readyz")[0] == 503, 10, "/readyz to turn 503")
        body = json.loads(http_get(replica.url + "/readyz")[1])
        assert body["postgres"] == "ok" and body["redis"].startswith("unavailable")
        # Liveness is not readiness: the process is still up.
        assert http_get(replica.url + "/healthz")[0] == 200
        with redis_server(port, tmp_path):
            wait_until(lambda: http_get(replica.url + "/readyz")[0] == 200, 15, "/readyz back to 200")
        assert replica.stop() == 0


def test_explicit_url_that_does_not_answer_is_an_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "tradebot", "migrate"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
             "TRADEBOT_DATA_DIR": str(tmp_path), "TRADEBOT_ENV": "test"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("tradebot: DATABASE_URL=postgresql://")
    assert "does not answer" in result.stderr


def test_embedded_fallback_when_nothing_answers(tmp_path: Path) -> None:
    """No URLs, and the local defaults point at closed ports: real embedded servers start instead."""
    env = {
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "TRADEBOT_DEFAULT_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/tradebot",
        "TRADEBOT_DEFAULT_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "TRADEBOT_DATA_DIR": str(tmp_path / "var"),
    }
    with tradebot_run(env, tmp_path, ready_timeout=120) as replica:
        status, body = http_get(replica.url + "/readyz")
        assert status == 200, body
        log = replica.log()
        assert "postgres=embedded" in log and "redis=embedded" in log
        assert replica.stop() == 0
    assert (tmp_path / "var" / "pgdata" / "PG_VERSION").exists()


def test_a_port_in_use_is_one_line_and_exit_2(database_url: str, redis_url: str, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
               "TRADEBOT_DATA_DIR": str(tmp_path), "TRADEBOT_ENV": "test"}
        for command in (["run", "--port", str(port)], ["simulator", "--port", str(port)],
                        ["run", "--host", "no-such-host.invalid", "--port", "0"]):
            result = subprocess.run([sys.executable, "-m", "tradebot", *command], env=env,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 2, (command, result.stderr[-2000:])
            last = result.stderr.strip().splitlines()[-1]
            assert "cannot listen on" in last, (command, last)
            assert "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "tradebot", "simulator", "--port", "70000"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "outside 0-65535" in result.stderr


def test_run_applies_the_parser_rule_and_the_header_timeout(database_url: str, redis_url: str,
                                                            tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TRADEBOT_DATA_DIR": str(tmp_path),
           "TRADEBOT_HEADER_READ_TIMEOUT_S": "1"}
    with tradebot_run(env, tmp_path) as replica:
        host, port = replica.url.removeprefix("http://").split(":")
        secret = "Bearer " + "tok3n" * 2000
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: {secret}\r\n\r\n".encode())
            answer = _read_all(s)
        assert answer.split(b"\r\n")[0].endswith(b" 431 Request Header Fields Too Large")
        assert b"application/problem+json" in answer
        assert b"tok3n" not in answer and b"aiohttp" not in answer
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            assert _read_all(s) == b""  # closed by the replica after the timeout
        assert replica.stop(signal.SIGTERM) == 0
        log = replica.log()
        assert "tok3n" not in log and "Traceback" not in log


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
