"""The connection layer under the app: what happens before a request reaches any middleware.

Two rules aiohttp does not offer as settings, so a request handler (aiohttp's per-connection
protocol) of our own carries them:

- **Requests the HTTP parser rejects** (malformed request line, bad method, oversized, too many or
  conflicting headers, a content coding aiohttp cannot decode) get a problem+json 400 (431 for
  oversized headers, 415 for the coding) that does not echo the request, one short log line without
  a traceback, and a count in `tradebot_http_rejected_requests_total`. aiohttp's own answer is
  text/plain quoting ~100 bytes of the offending line (a bearer token reached the log that way) and
  logs a traceback per request, so any client could flood the log.
- **A header-read timeout**: from connecting, and from the first byte of each later request on a
  kept-alive connection, a client has `TRADEBOT_HEADER_READ_TIMEOUT_S` to send the request line and
  headers; then the connection is closed (a slowloris client cannot hold sockets). Bodies, handlers
  and long responses (SSE) are not timed here; idle keep-alive connections are aiohttp's
  keepalive_timeout's business.

`GuardedAppRunner` replaces `web.AppRunner` and is the one place that builds these handlers.
The handler reads three attributes of aiohttp's RequestHandler (`_messages`, `_waiter`,
`_request_count`) to know whether it is between requests; tests/integration/test_http_parser_guard.py
pins the behaviour against the installed aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, ContentEncodingError, LineTooLong
from aiohttp.web_request import BaseRequest
from prometheus_client import Counter

from tradebot.http.appkeys import HTTP_METRICS, SETTINGS
from tradebot.http.dashboard_routes import SERVER_NAME
from tradebot.http.problems import PROBLEM_CONTENT_TYPE, Problem

log = logging.getLogger("tradebot.http")


class Rejection(StrEnum):
    """The `reason` label of tradebot_http_rejected_requests_total."""

    MALFORMED = "malformed"
    HEADERS_TOO_LARGE = "headers_too_large"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    HEADER_TIMEOUT = "header_timeout"


def classify(exc: BaseException | None) -> tuple[Rejection, Problem]:
    """The reason and the answer for a request the parser refused; never quotes the request."""
    if isinstance(exc, ContentEncodingError):
        return Rejection.UNSUPPORTED_ENCODING, Problem(
            415, "content encoding is not supported; send the body uncompressed, gzip or deflate"
        )
    if isinstance(exc, LineTooLong) or (isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message):
        return Rejection.HEADERS_TOO_LARGE, Problem(431, "the request line or headers are too large")
    return Rejection.MALFORMED, Problem(400, "malformed HTTP request")


class GuardedRequestHandler(web.RequestHandler):
    __slots__ = ("_header_timeout_s", "_header_timer", "_rejected")

    def __init__(self, manager: web.Server, *, header_timeout_s: float, rejected: Counter, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._rejected = rejected

    # -- parser rejections ----------------------------------------------------------------------

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # the app's own failures (the problems middleware answers nearly all of them)
            return super().handle_error(request, status, exc, message)
        reason, problem = classify(exc)
        self._rejected.labels(reason.value).inc()
        log.info("refused a request the HTTP parser rejected",
                 extra={"reason": reason.value, "status": problem.status, "remote": request.remote,
                        "error": type(exc).__name__ if exc is not None else None})
        resp = web.Response(status=problem.status, body=orjson.dumps(problem.body()),
                            content_type=PROBLEM_CONTENT_TYPE, headers={"Server": SERVER_NAME})
        resp.force_close()  # the parser's state after an error cannot be trusted for a next request
        return resp

    # -- header-read timeout --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        # Between requests (no message queued, the connection's task waiting for one) these bytes
        # begin a new request line: its headers are timed from now.
        waiting = self._header_timer is not None or (
            not self._messages and self._waiter is not None and not self._waiter.done()
        )
        before = self._request_count
        super().data_received(data)
        if self._request_count > before:  # a request's headers are complete
            self._disarm_header_timer()
        elif waiting and data:
            self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = asyncio.get_running_loop().call_later(self._header_timeout_s, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport is None:
            return
        self._rejected.labels(Rejection.HEADER_TIMEOUT.value).inc()
        peer = self.transport.get_extra_info("peername")
        log.info("closed a connection that sent no complete request headers in time",
                 extra={"reason": Rejection.HEADER_TIMEOUT.value, "timeout_s": self._header_timeout_s,
                        "remote": peer[0] if isinstance(peer, tuple) and peer else None})
        self.force_close()


class GuardedServer(web.Server):
    """aiohttp's Server making GuardedRequestHandlers."""

    def __init__(self, handler: Any, *, header_timeout_s: float, rejected: Counter, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._handler_kwargs = {k: v for k, v in kwargs.items()
                                if k not in ("request_factory", "handler_cancellation", "loop")}
        self._header_timeout_s = header_timeout_s
        self._rejected_counter = rejected

    def __call__(self) -> web.RequestHandler:
        return GuardedRequestHandler(self, loop=asyncio.get_running_loop(), header_timeout_s=self._header_timeout_s,
                                     rejected=self._rejected_counter, **self._handler_kwargs)


class GuardedAppRunner(web.AppRunner):
    """`web.AppRunner` whose connections follow this module's rules (settings and metrics from the app)."""

    __slots__ = ("_handler_kwargs",)

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        # What aiohttp passes on to each RequestHandler (access_log and the like).
        self._handler_kwargs = {k: v for k, v in kwargs.items() if k not in ("handle_signals", "shutdown_timeout")}

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app and freezes it
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            header_timeout_s=self.app[SETTINGS].header_read_timeout_s,
            rejected=self.app[HTTP_METRICS].rejected,
            **self._handler_kwargs,
        )
