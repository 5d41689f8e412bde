"""Builds the simulator's aiohttp application and runs it in-process (for tests, the demo and the CLI)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from tradebot.exchange.simulator import control, endpoint_faults, rest
from tradebot.exchange.simulator.appkeys import SIMULATOR
from tradebot.exchange.simulator.config import SimulatorConfig
from tradebot.exchange.simulator.state import Simulator, wall_clock_ms
from tradebot.exchange.simulator.streams import Connection, serve_connection

log = logging.getLogger(__name__)


async def _background_tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The random walk (and a CSV replay, if configured) run for the app's life; cancelled at cleanup."""
    sim = app[SIMULATOR]
    tasks = [asyncio.create_task(sim.run_random_walk(), name="simulator-random-walk")]
    if sim.config.replay is not None:
        tasks.append(asyncio.create_task(sim.run_replay(), name="simulator-replay"))
    yield
    for task in tasks:
        task.cancel()
    # asyncio.wait neither raises the tasks' CancelledError nor hides a cancellation of this cleanup.
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task %s had failed", task.get_name(), exc_info=task.exception())


async def _close_streams(app: web.Application) -> None:
    # On shutdown, tell websocket clients to go before the server waits for their handlers.
    app[SIMULATOR].hub.drop_all()


async def _market_ws(request: web.Request) -> web.StreamResponse:
    """Market streams: ccxt's `/market/ws/<n>` and `/public/ws/<n>`, raw `/ws/<a>/<b>`, combined `/stream`."""
    sim = request.app[SIMULATOR]
    tail = request.match_info.get("tail", "")
    listen_key = tail if tail in sim.listen_keys else None
    if listen_key is not None:  # the legacy user-data form /ws/<listenKey>
        return await _serve_user(request, listen_key)
    combined = request.path.endswith("/stream")
    if combined:
        initial = [s for s in request.query.get("streams", "").split("/") if s]
    else:
        # ccxt's path tail is a connection index ("0", "1"); Binance's raw form names the streams.
        initial = [s for s in tail.split("/") if s and not s.isdigit()]
    refused = next((error for error in map(sim.stream_error, initial) if error is not None), None)
    if refused is not None:
        return rest.json_response({"code": -1100, "msg": f"Invalid request: {refused}"}, 400)

    def make(ws: web.WebSocketResponse) -> Connection:
        return Connection(ws, combined=combined, streams=set(initial))

    return await serve_connection(request, sim.hub, make, sim.stream_error)


async def _private_ws(request: web.Request) -> web.StreamResponse:
    """User data: ccxt's `/private/ws?listenKey=…`."""
    return await _serve_user(request, request.query.get("listenKey", ""))


async def _serve_user(request: web.Request, listen_key: str) -> web.StreamResponse:
    sim = request.app[SIMULATOR]
    api_key = sim.listen_keys.get(listen_key)
    if api_key is None:
        return rest.json_response({"code": -1125, "msg": "This listenKey does not exist."}, 400)

    def make(ws: web.WebSocketResponse) -> Connection:
        return Connection(ws, combined=False, api_key=api_key)

    return await serve_connection(request, sim.hub, make, sim.stream_error)


def build_app(config: SimulatorConfig, clock: Callable[[], int] = wall_clock_ms) -> web.Application:
    app = web.Application(
        middlewares=[control.bad_body_middleware, endpoint_faults.endpoint_faults_middleware, rest.fault_middleware]
    )
    app[SIMULATOR] = Simulator(config, clock)
    endpoint_faults.setup(app)
    app.cleanup_ctx.append(_background_tasks_ctx)
    app.on_shutdown.append(_close_streams)
    app.add_routes(control.routes)
    rest.add_routes(app)
    for prefix in ("", "/market", "/public"):
        app.router.add_get(f"{prefix}/ws", _market_ws)
        app.router.add_get(f"{prefix}/ws/{{tail:.+}}", _market_ws)
        app.router.add_get(f"{prefix}/stream", _market_ws)
    app.router.add_get("/private/ws", _private_ws)
    app.router.add_route("*", "/{tail:.*}", rest.not_found)
    return app


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A simulator serving on a real socket; `state` is the live simulator, for tests that peek."""

    base_url: str
    host: str
    port: int
    state: Simulator

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)


@asynccontextmanager
async def running_simulator(
    config: SimulatorConfig | None = None, *, clock: Callable[[], int] = wall_clock_ms
) -> AsyncIterator[RunningSimulator]:
    """Serves a simulator on the current loop until the block exits.

    Binds `config.host`/`config.port`; pass port 0 (the default when no config is given) for a free port.
    """
    config = config or SimulatorConfig(port=0)
    app = build_app(config, clock)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        addresses = runner.addresses
        port = int(addresses[0][1])
        yield RunningSimulator(f"http://{config.host}:{port}", config.host, port, app[SIMULATOR])
    finally:
        await runner.cleanup()
