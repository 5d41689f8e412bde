"""Builds ccxt `binanceusdm` clients (REST via `ccxt.async_support`, websockets via `ccxt.pro`).

With a base URL (TRADEBOT_EXCHANGE_URL, the simulator) every REST and websocket URL ccxt knows is
rewritten to that server, so nothing reaches the real exchange by accident.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
from ccxt.async_support.base.exchange import Exchange
from ccxt.base.errors import ExchangeNotAvailable

from tradebot.exchange import rate_limit

SUPPORTED_EXCHANGES = ("binanceusdm",)

# Binance's -1001 ("Internal error; unable to process your request. Please try again.") is a transient
# server fault, as its message says; ccxt files it under OperationFailed, outside NetworkError, which
# would hide it from retry loops that catch NetworkError.
_EXTRA_EXACT: dict[str, type[Exception]] = {"-1001": ExchangeNotAvailable}



def _check_exchange(exchange: str) -> None:
    if exchange not in SUPPORTED_EXCHANGES:
        raise ValueError(f"unsupported exchange {exchange!r}; supported: {', '.join(SUPPORTED_EXCHANGES)}")


def _rewrite(url: str, base: str) -> str:
    """Keeps the path of a ccxt URL and puts it on `base` (scheme, host, port and any path prefix)."""
    return base + urlsplit(url).path


def _rewrite_tree(node: Any, base: str) -> Any:
    if isinstance(node, str):
        return _rewrite(node, base)
    if isinstance(node, dict):
        return {k: _rewrite_tree(v, base) for k, v in node.items()}
    return node


def point_at(client: Exchange, base_url: str) -> None:
    """Rewrites every REST and websocket URL of a binance-family client to `base_url`.

    Must run after `set_sandbox_mode`, which swaps `urls["api"]` wholesale. ccxt's `linear` websocket URL
    must end in `/ws` (it becomes `<prefix>/market/ws/<n>` per subscription group) and must not contain
    `/stream` (ccxt reads that as a spot stream), which keeping the original paths guarantees.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"exchange base URL must be http(s)://host[:port][/prefix], got {base_url!r}")
    http_base = base_url.rstrip("/")
    ws_base = ("wss" if parts.scheme == "https" else "ws") + http_base[len(parts.scheme) :]
    api = dict(client.urls["api"])
    for key, value in api.items():
        api[key] = _rewrite_tree(value, ws_base if key == "ws" else http_base)
    client.urls["api"] = api
    # ccxt picks the futures error map by the URL's host; on any other host merge it in, so that -4116
    # is InvalidOrder and -2019 InsufficientFunds rather than a plain ExchangeError.
    linear = client.exceptions.get("linear", {})
    client.exceptions["exact"] = {**client.exceptions["exact"], **linear.get("exact", {}), **_EXTRA_EXACT}
    client.exceptions["broad"] = {**client.exceptions["broad"], **linear.get("broad", {})}


def client_config(api_key: str | None = None, secret: str | None = None) -> dict[str, Any]:
    """The constructor config every tradebot ccxt client gets (for callers that subclass a ccxt class)."""
    config: dict[str, Any] = {
        "enableRateLimit": True,
        # Otherwise load_markets with credentials calls sapi/v1/capital/config/getall (spot wallet).
        "options": {"fetchCurrencies": False},
    }
    if api_key is not None:
        config["apiKey"] = api_key
        config["secret"] = secret
    return config


def build_client(
    exchange: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    secret: str | None = None,
    streaming: bool = True,
    client_class: type[Exchange] | None = None,
) -> Exchange:
    """One new client; the caller owns it and must `await client.close()`.

    `streaming=True` gives a `ccxt.pro` class (REST and `watch_*`), `False` a plain
    `ccxt.async_support` one (REST only, a little lighter). `client_class` replaces either with a
    subclass (say, one that overrides a websocket message handler) and gets the same configuration.
    """
    _check_exchange(exchange)
    if (api_key is None) != (secret is None):
        raise ValueError("give both api_key and secret, or neither")
    if client_class is None:
        module: Any = ccxt_pro if streaming else ccxt_async
        client_class = cast(type[Exchange], getattr(module, exchange))
    client = client_class(client_config(api_key, secret))
    rate_limit.install(client)
    if base_url is not None:
        point_at(client, base_url)
    return client


class ExchangeClientFactory:
    """Hands out shared ccxt clients: one public client per exchange, one private client per API key.

    Sharing matters: each ccxt client keeps its own rate limiter, markets cache and websocket
    connections, so one per key is what keeps a key under the exchange's limits.
    """

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url
        self._public: dict[str, Exchange] = {}
        self._private: dict[tuple[str, str], Exchange] = {}
        self._retired: list[Exchange] = []  # replaced after a secret rotation; closed with the rest

    def public_client(self, exchange: str) -> Exchange:
        client = self._public.get(exchange)
        if client is None:
            client = self._public[exchange] = build_client(exchange, base_url=self.base_url)
        return client

    def private_client(self, exchange: str, api_key: str, secret: str) -> Exchange:
        key = (exchange, api_key)
        client = self._private.get(key)
        if client is not None and client.secret != secret:
            # A rotated secret for the same key: the old client's signatures would fail from now on.
            self._private.pop(key)
            self._retired.append(client)
            client = None
        if client is None:
            client = self._private[key] = build_client(exchange, base_url=self.base_url, api_key=api_key, secret=secret)
        return client

    async def close(self) -> None:
        """Closes every client handed out; the factory can hand out new ones afterwards."""
        clients = [*self._public.values(), *self._private.values(), *self._retired]
        self._public.clear()
        self._private.clear()
        self._retired.clear()
        # Side by side: each ccxt close takes about half a second, and one at a time they would hold
        # a replica's exit after SIGTERM for seconds (5 s with 10 keys).
        results = await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise ExceptionGroup("closing ccxt clients failed", errors)
