"""The SSE responses open on one replica, so that shutdown can end them instead of waiting them out."""

from __future__ import annotations

import asyncio

from aiohttp_sse import EventSourceResponse

from tradebot.http.sse_frames import FrameCache

CONNECT_CONCURRENCY = 32


class OpenStreams:
    """The SSE responses open on this replica, so shutdown can end them instead of waiting them out."""

    def __init__(self, connect_concurrency: int = CONNECT_CONCURRENCY) -> None:
        self._open: set[EventSourceResponse] = set()
        self.closing = False
        # Connecting costs a few Redis and PostgreSQL round trips. When a replica dies, thousands of
        # EventSources reconnect at once; bounded, they queue here instead of exhausting the
        # connection pools (which would turn the herd into 500s and retries).
        self.connect_slots = asyncio.Semaphore(connect_concurrency)
        self.frames = FrameCache()

    def add(self, resp: EventSourceResponse) -> None:
        self._open.add(resp)

    def discard(self, resp: EventSourceResponse) -> None:
        self._open.discard(resp)

    def __len__(self) -> int:
        return len(self._open)

    def close_all(self) -> None:
        # Ending the ping task ends each handler's wait; the handler then finishes its response
        # cleanly (a terminated chunked body), and the client's EventSource reconnects elsewhere.
        self.closing = True
        for resp in tuple(self._open):
            resp.stop_streaming()
