"""Websocket streams: market streams with SUBSCRIBE/UNSUBSCRIBE, and user-data streams.

A user-data stream is served on its own connection (`/ws/<listenKey>`, ccxt's `/private/ws`) or, as
Binance allows, by subscribing to the listen key as a stream name on a market connection. A stream
name the simulator cannot serve is refused with an error reply, never accepted and left silent.

Each connection has a bounded outbox drained by its own writer task, so publishing never waits on a
slow client; a client whose outbox fills is disconnected, as Binance does with slow consumers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

log = logging.getLogger(__name__)

# Large enough for a test or demo that pushes thousands of candles at once to a subscribed bot.
OUTBOX_SIZE = 100_000
MAX_STREAMS_PER_CONNECTION = 200

StreamCheck = Callable[[str], "str | None"]  # why a stream name cannot be served, None if it can


@dataclass(eq=False, slots=True)
class Connection:
    ws: web.WebSocketResponse
    combined: bool  # /stream form: every event wrapped as {"stream": name, "data": event}
    api_key: str | None = None  # set for a user-data connection
    streams: set[str] = field(default_factory=set)  # may hold listen keys subscribed by name
    outbox: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(OUTBOX_SIZE))

    def send(self, text: str) -> None:
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("websocket client too slow, disconnecting it")
            self.stop()

    def stop(self) -> None:
        """Asks the writer to close the connection after what is queued (never blocks)."""
        while True:
            try:
                self.outbox.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.outbox.get_nowait()  # make room: the client is going away anyway


class StreamHub:
    """Every open websocket connection and what it listens to."""

    def __init__(self) -> None:
        self._connections: set[Connection] = set()

    def add(self, connection: Connection) -> None:
        self._connections.add(connection)

    def discard(self, connection: Connection) -> None:
        self._connections.discard(connection)

    def has_subscribers(self, stream: str) -> bool:
        return any(stream in c.streams for c in self._connections)

    def has_user_stream(self, api_key: str) -> bool:
        return any(c.api_key == api_key for c in self._connections)

    def publish(self, stream: str, event: dict[str, Any]) -> None:
        raw: str | None = None
        wrapped: str | None = None
        for c in self._connections:
            if stream not in c.streams:
                continue
            if c.combined:
                wrapped = wrapped or json.dumps({"stream": stream, "data": event})
                c.send(wrapped)
            else:
                raw = raw or json.dumps(event)
                c.send(raw)

    def publish_user(self, api_key: str, listen_key: str | None, event: dict[str, Any]) -> None:
        text: str | None = None
        wrapped: str | None = None
        for c in self._connections:
            if c.api_key == api_key or (listen_key is not None and listen_key in c.streams and not c.combined):
                text = text or json.dumps(event)
                c.send(text)
            elif listen_key is not None and listen_key in c.streams:
                wrapped = wrapped or json.dumps({"stream": listen_key, "data": event})
                c.send(wrapped)

    def drop_all(self) -> int:
        """Closes every current connection once (a fault for tests); clients may reconnect."""
        dropped = list(self._connections)
        for c in dropped:
            c.stop()
        return len(dropped)


async def serve_connection(
    request: web.Request, hub: StreamHub, connection_factory: Any, check: StreamCheck
) -> web.WebSocketResponse:
    """Runs one websocket: a reader (this task) for control messages and a writer task for events."""
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    connection: Connection = connection_factory(ws)
    hub.add(connection)
    writer = asyncio.create_task(_write(connection), name=f"sim-ws-writer-{id(connection):x}")
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                _handle_control(connection, msg.data, check)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        hub.discard(connection)
        connection.stop()
        # asyncio.wait does not raise when the writer ends or is cancelled, so a cancellation of this
        # task itself still propagates from here.
        await asyncio.wait([writer], timeout=5)
        if not writer.done():
            writer.cancel()
            await asyncio.wait([writer])
    return ws


async def _write(connection: Connection) -> None:
    ws = connection.ws
    try:
        while True:
            text = await connection.outbox.get()
            if text is None:
                break
            await ws.send_str(text)
    except (ConnectionResetError, RuntimeError) as e:
        # The peer went away between our check and the send; the reader sees the close too.
        log.debug("websocket send failed: %s", e)
    finally:
        if not ws.closed:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"simulator closed the stream")


def _handle_control(connection: Connection, data: str, check: StreamCheck) -> None:
    try:
        message = json.loads(data)
    except ValueError:
        connection.send(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
        return
    if not isinstance(message, dict):
        connection.send(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
        return
    request_id = message.get("id")
    method = message.get("method")
    params = message.get("params", [])
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            _send_error(connection, request_id, "Invalid request: params must be a list of stream names")
            return
        if method == "SUBSCRIBE":
            # All or nothing: one stream that cannot be served refuses the whole request.
            refused = next((error for error in map(check, params) if error is not None), None)
            if refused is not None:
                _send_error(connection, request_id, f"Invalid request: {refused}")
                return
            if len(connection.streams | set(params)) > MAX_STREAMS_PER_CONNECTION:
                _send_error(connection, request_id, "Too many streams on one connection")
                return
            connection.streams.update(params)
        else:
            connection.streams.difference_update(params)
        connection.send(json.dumps({"result": None, "id": request_id}))
    elif method == "LIST_SUBSCRIPTIONS":
        connection.send(json.dumps({"result": sorted(connection.streams), "id": request_id}))
    elif method in ("SET_PROPERTY", "GET_PROPERTY"):
        connection.send(json.dumps({"result": None if method == "SET_PROPERTY" else False, "id": request_id}))
    else:
        _send_error(connection, request_id, f"Invalid request: unknown method {method!r}")


def _send_error(connection: Connection, request_id: object, msg: str) -> None:
    connection.send(json.dumps({"error": {"code": 2, "msg": msg}, "id": request_id}))
