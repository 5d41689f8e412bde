"""Requests the HTTP parser rejects, and slow headers (issue #14 items 4, 5, 8), against a real
listening server: the app of `tradebot run` behind GuardedAppRunner on a TCP port, driven with raw
sockets (a test client cannot send malformed requests)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.integration.bots_helpers import MARKETS
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.http.appkeys import SYMBOLS
from tradebot.http.server_protocol import GuardedAppRunner

HEADER_TIMEOUT_S = 0.5
SLOW_CLIENTS = 100  # as many as the audit held open for 30 s
TOKEN = "eyJhbGciOiJIUzI1NiJ9." + "s3cr3t-token-part" * 600  # past aiohttp's 8190-byte field limit


@pytest.fixture
async def base_url(settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str) -> AsyncIterator[str]:
    settings = settings.model_copy(update={"header_read_timeout_s": HEADER_TIMEOUT_S, "sse_heartbeat_s": 0.1})
    app = create_app(settings, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="guard")
    app[SYMBOLS] = MARKETS
    runner = GuardedAppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _exchange(base_url: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw`, read until the server closes; the status, headers and body of its answer."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


MALFORMED = {
    "oversized header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                         + b"\r\n\r\n", 431),
    "too many headers": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                         + b"".join(b"X-H%d: %s\r\n" % (i, TOKEN[:20].encode()) for i in range(200)) + b"\r\n", 431),
    "duplicate content-length": (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                 b"Content-Length: 3\r\n\r\n{}", 400),
    "bad method": (b"G(T /healthz HTTP/1.1\r\nHost: x\r\nX-Token: " + TOKEN[:60].encode() + b"\r\n\r\n", 400),
    "malformed request line": (b"GET " + TOKEN[:60].encode() + b"\r\n\r\n", 400),
    "bad header name": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX\x01Bad: " + TOKEN[:60].encode() + b"\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_parser_rejections_are_problems_without_echo(
    base_url: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw, status = MALFORMED[case]
    caplog.set_level(logging.DEBUG)
    got, headers, body = await _exchange(base_url, raw)
    assert got == status
    assert headers["content-type"].startswith("application/problem+json")
    problem = orjson.loads(body)
    assert problem["status"] == status and problem["type"] == "about:blank"
    assert TOKEN[:20] not in body.decode(errors="replace")
    assert "aiohttp" not in headers.get("server", "")
    # One short line in the log: no traceback, nothing of the request.
    refused = [r for r in caplog.records if "rejected" in r.getMessage() or r.exc_info]
    assert len(refused) == 1 and refused[0].exc_info is None, [r.getMessage() for r in refused]
    assert not any(TOKEN[:20] in (r.getMessage() + str(r.__dict__)) for r in caplog.records)
    async with aiohttp.ClientSession() as s, s.get(base_url + "/metrics") as r:
        metrics = await r.text()
    reason = "headers_too_large" if status == 431 else "malformed"
    assert f'tradebot_http_rejected_requests_total{{reason="{reason}"}} 1.0' in metrics


@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_undecodable_content_codings_are_415_problems(base_url: str, coding: str) -> None:
    raw = (b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Encoding: " + coding.encode() + b"\r\nContent-Length: 2\r\n\r\n{}")
    status, headers, body = await _exchange(base_url, raw)
    assert status == 415 and headers["content-type"].startswith("application/problem+json")
    assert b"install" not in body and b"Brotli" not in body and b"zstd" not in body


async def test_a_corrupt_gzip_body_on_register_is_a_400_problem(base_url: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    raw = (b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Encoding: gzip\r\nContent-Length: 24\r\n\r\n\x1f\x8b\x08\x00not-a-deflate-stream")
    status, headers, _ = await _exchange(base_url, raw)
    assert status == 400 and headers["content-type"].startswith("application/problem+json")
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a client's broken body"


async def _closed_by_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, drip: bytes,
                            deadline_s: float) -> bool:
    """Send `drip` a byte at a time; True once the server closes the connection, False at the deadline."""
    end = time.monotonic() + deadline_s
    for byte in drip * 1000:
        if time.monotonic() > end:
            return False
        try:
            writer.write(bytes([byte]))
            await writer.drain()
            if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


async def test_slow_headers_are_cut_off_after_the_header_timeout(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    sockets = [await asyncio.open_connection(host, int(port)) for _ in range(SLOW_CLIENTS)]
    try:
        for _, writer in sockets:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = await asyncio.gather(*(_closed_by_server(r, w, b"X-Slow: 1\r\n", 20 * HEADER_TIMEOUT_S + 10)
                                        for r, w in sockets))
        assert all(closed)
        print(f"{SLOW_CLIENTS} slow-header clients all cut off within {time.monotonic() - started:.2f}s "
              f"(timeout {HEADER_TIMEOUT_S}s)")
    finally:
        for _, writer in sockets:
            writer.close()
    # A connection that sends nothing at all is closed too.
    reader, writer = await asyncio.open_connection(host, int(port))
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    async with aiohttp.ClientSession() as s, s.get(base_url + "/metrics") as r:
        assert f'tradebot_http_rejected_requests_total{{reason="header_timeout"}} {SLOW_CLIENTS + 1}.0' in await r.text()


async def test_keep_alive_and_streams_outlive_the_header_timeout(base_url: str) -> None:
    async with aiohttp.ClientSession(base_url) as s:
        # A kept-alive connection idle between requests is not reading headers.
        async with s.get("/healthz") as r:
            assert r.status == 200
        await asyncio.sleep(3 * HEADER_TIMEOUT_S)  # idle on purpose: nothing to poll for
        async with s.get("/healthz") as r:
            assert r.status == 200
        # A stream (SSE) lasts as long as it likes once its headers are in.
        email, password = "guard-sse@example.com", "correct horse battery staple 42"
        async with s.post("/api/v1/auth/register", json={"email": email, "password": password}) as r:
            assert r.status == 201
        async with s.post("/api/v1/auth/login", json={"email": email, "password": password}) as r:
            auth = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
        async with s.post("/api/v1/api-keys", json={"label": "k", "exchange": "binanceusdm",
                                                    "api_key": "a" * 32, "secret_key": "b" * 64}, headers=auth) as r:
            key_id = (await r.json())["id"]
        async with s.post("/api/v1/bots", json={"api_key_id": key_id, "symbol": "BTCUSDT", "timeframe": "1m",
                                                "ema_period": 5}, headers=auth) as r:
            assert r.status == 201, await r.text()
            bot_id = (await r.json())["id"]
        async with s.get(f"/api/v1/bots/{bot_id}/status-stream", headers=auth) as stream:
            assert stream.status == 200
            end = time.monotonic() + 4 * HEADER_TIMEOUT_S
            while time.monotonic() < end:
                line = await asyncio.wait_for(stream.content.readline(), 5)
                assert line, "the stream ended"
