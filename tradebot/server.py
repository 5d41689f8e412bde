"""`tradebot run`: one replica, the API and the runtime in one event loop, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from tradebot import db
from tradebot.config import ConfigError, Settings, resolve_secrets
from tradebot.http.app import create_app
from tradebot.http.server_protocol import GuardedAppRunner
from tradebot.runtime_context import runtime_context
from tradebot.services import resolve_services

log = logging.getLogger(__name__)

# Long-lived handlers (SSE) are closed on shutdown; anything else gets this long to finish.
SHUTDOWN_GRACE_S = 3.0


def make_replica_id(settings: Settings) -> str:
    """host + pid + random suffix: unique even when a pid is reused after a restart."""
    if settings.replica_id:
        return settings.replica_id
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def check_bindable(host: str, port: int) -> None:
    """ConfigError naming why host:port cannot be served (taken, unknown host), found by binding
    each address the server will bind and letting go: nothing has started yet, and nothing listens."""
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                                   flags=socket.AI_PASSIVE):
            with socket.socket(family, kind, proto) as trial:
                trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
                trial.bind(address)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    migrate: bool,
    on_started: Callable[[str], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
    before_migrate: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """Serve until `stop` is set or SIGTERM/SIGINT arrives; resources are released in reverse order."""
    app_secrets = resolve_secrets(settings)
    # Checked before anything starts: a taken port or a bad host is one line and exit 2 (ConfigError),
    # not a traceback after the runtime has already taken bots.
    check_bindable(host, port)
    services = await resolve_services(settings)
    try:
        if before_migrate is not None:
            await before_migrate(services.database_url)
        if migrate:
            await db.apply_migrations(services.database_url)
        replica_id = make_replica_id(settings)
        app = create_app(
            settings,
            app_secrets,
            database_url=services.database_url,
            redis_url=services.redis_url,
            replica_id=replica_id,
            extra_contexts=[runtime_context()],
        )
        runner = GuardedAppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host or None, port)
            try:
                await site.start()
            except OSError as e:  # taken since the check
                raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
            bound = runner.addresses[0][1] if port == 0 and runner.addresses else port
            url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
            log.info("replica %s listening on %s", replica_id, url)
            if on_started is not None:
                await on_started(url)
            await _wait_for_stop(stop)
            log.info("shutting down replica %s", replica_id)
        finally:
            await runner.cleanup()
    finally:
        services.close()
    log.info("stopped")


async def _wait_for_stop(stop: asyncio.Event | None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
