"""`tradebot demo`: the whole product on one machine with nothing configured.

- PostgreSQL and Redis come from the usual resolution (local servers, else embedded ones). Unless
  DATABASE_URL is set, the demo uses its own database, `tradebot_demo`, recreated on every run, so
  it never touches real data and always starts clean.
- The exchange simulator runs in the same process in random-walk mode with short candles.
- A demo user, a simulator API key, a running bot on it and a paper bot beside it (the same
  strategy on a virtual account: no key, nothing sent to the exchange) are created through the
  product's own HTTP API, exactly as a user would; then the URL, the login and curl commands are printed.
Ctrl-C (or SIGTERM) stops everything cleanly.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from tradebot.config import Settings
from tradebot.exchange.simulator import SimulatorConfig, running_simulator
from tradebot.server import serve
from tradebot.services import drop_database, ensure_database, redact_url

log = logging.getLogger(__name__)

DEMO_EMAIL = "demo@example.com"
DEMO_DATABASE = "tradebot_demo"
CANDLE_SECONDS = 3.0


async def run_demo(settings: Settings, *, host: str, port: int) -> None:
    if not settings.database_url:
        settings = settings.model_copy(
            update={"default_database_url": _with_database(settings.default_database_url, DEMO_DATABASE)}
        )
    password = secrets.token_urlsafe(12)
    sim_config = SimulatorConfig(port=0, mode="random_walk", candle_seconds=CANDLE_SECONDS, history_candles=300,
                                 seed=secrets.randbelow(1_000_000))
    async with running_simulator(sim_config) as simulator:
        settings = settings.model_copy(update={"exchange_url": simulator.base_url, "public_url": f"http://{host}:{port}"})

        async def on_started(url: str) -> None:
            bot_id, paper_id = await _create_demo_account(url, simulator.base_url, password)
            _announce(url, simulator.base_url, password, bot_id, paper_id)

        await serve(settings, host=host, port=port, migrate=True, on_started=on_started,
                    before_migrate=_fresh_demo_database if not settings.database_url else None)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _fresh_demo_database(database_url: str) -> None:
    """Drop and recreate the demo database so every demo starts from nothing."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if name != DEMO_DATABASE:
        return  # never drop anything but the demo's own database
    await drop_database(database_url)
    await ensure_database(database_url)
    log.info("demo database recreated", extra={"database": redact_url(database_url)})


async def _create_demo_account(url: str, simulator_url: str, password: str) -> tuple[int, int]:
    """The live bot's id and the paper bot's."""
    api = f"{url}/api/v1"
    api_key, secret = f"demo-{secrets.token_hex(8)}", secrets.token_hex(32)
    async with aiohttp.ClientSession() as http:
        await _call(http, "POST", f"{simulator_url}/_sim/accounts",
                    {"api_key": api_key, "secret": secret, "balances": {"USDT": 10_000}})
        await _call(http, "POST", f"{api}/auth/register", {"email": DEMO_EMAIL, "password": password})
        token = (await _call(http, "POST", f"{api}/auth/login", {"email": DEMO_EMAIL, "password": password}))[
            "access_token"
        ]
        auth = {"Authorization": f"Bearer {token}"}
        key = await _call(http, "POST", f"{api}/api-keys",
                          {"label": "simulator", "exchange": "binanceusdm", "api_key": api_key, "secret_key": secret},
                          headers=auth)
        bot = await _call(
            http, "POST", f"{api}/bots",
            {"name": "BTC EMA(10) demo", "api_key_id": key["id"], "symbol": "BTCUSDT",
             "timeframe": "1m", "ema_period": 10, "leverage": 3, "order_size_pct": 20, "allow_short": True},
            headers=auth,
        )
        await _call(http, "POST", f"{api}/bots/{bot['id']}/start", None, headers=auth)
        paper = await _call(
            http, "POST", f"{api}/bots",
            {"name": "BTC EMA(10) paper", "mode": "paper", "paper_balance": 10_000, "symbol": "BTCUSDT",
             "timeframe": "1m", "ema_period": 10, "leverage": 3, "order_size_pct": 20,
             "allow_short": True},
            headers=auth,
        )
        await _call(http, "POST", f"{api}/bots/{paper['id']}/start", None, headers=auth)
        return int(bot["id"]), int(paper["id"])


async def _call(http: aiohttp.ClientSession, method: str, url: str, body: object,
                headers: dict[str, str] | None = None) -> Any:
    async with http.request(method, url, json=body, headers=headers) as response:
        payload = await response.json(content_type=None) if response.content_length != 0 else None
        if response.status >= 400:
            raise RuntimeError(f"demo setup: {method} {url} answered {response.status}: {payload}")
        return payload


def _announce(url: str, simulator_url: str, password: str, bot_id: int, paper_id: int) -> None:
    api = f"{url}/api/v1"
    login = f'{{"email":"{DEMO_EMAIL}","password":"{password}"}}'
    print(
        f"""
tradebot demo is running at {url}

  dashboard           {url}/
  API documentation   {url}/api/docs
  demo login          {DEMO_EMAIL}  /  {password}
  exchange simulator  {simulator_url}  (random walk, a 1m candle closes every {CANDLE_SECONDS:g} s)

A bot (id {bot_id}) trades BTC/USDT:USDT on the simulator; beside it a paper bot (id {paper_id}) runs the
same strategy on a virtual 10,000 USDT account (no key, nothing sent to the exchange). Try:

  TOKEN=$(curl -s -X POST {api}/auth/login -H 'Content-Type: application/json' \\
          -d '{login}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {api}/bots/{bot_id}/state -H "Authorization: Bearer $TOKEN"
  curl -s {api}/bots/{paper_id}/state -H "Authorization: Bearer $TOKEN"   # paper_balance, equity
  curl -s "{api}/trades?paper=true" -H "Authorization: Bearer $TOKEN"
  curl -N "{api}/bots/{bot_id}/status-stream?access_token=$TOKEN"

Press Ctrl-C to stop.
""",
        flush=True,  # on stdout, apart from the log lines on stderr: a script can read it
    )
