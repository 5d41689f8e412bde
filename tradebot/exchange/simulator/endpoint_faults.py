"""Endpoints the simulator pretends not to have, and a count of the exchange requests it received.

`POST /_sim/faults {"missing_endpoints": ["/fapi/v1/userTrades"]}` makes those paths answer as a
route the exchange does not serve: 404 with an HTML body and no JSON error code, which ccxt raises
as ExchangeNotAvailable (a NetworkError) just as it does for a real missing route; `[]` serves them
again. `GET /_sim/requests` answers `{"GET /fapi/v1/userTrades": n, …}`: every exchange REST request
received since start, answered or not, so a test can tell how often a client asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

MISSING_ROUTE_BODY = "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>"


@dataclass(slots=True)
class EndpointFaults:
    missing: frozenset[str] = frozenset()
    requests: Counter[str] = field(default_factory=Counter)


ENDPOINT_FAULTS = web.AppKey("endpoint_faults", EndpointFaults)

routes = web.RouteTableDef()


def parse_missing_endpoints(value: object) -> frozenset[str]:
    """The paths of a `missing_endpoints` field; ValueError naming the field when it is not a list of paths."""
    if not isinstance(value, list) or not all(isinstance(p, str) and p.startswith("/") for p in value):
        raise ValueError("missing_endpoints must be a list of paths such as \"/fapi/v1/userTrades\"")
    if any(p.startswith("/_sim/") for p in value):
        raise ValueError("missing_endpoints cannot name the /_sim/ control API")
    return frozenset(value)


def _is_exchange_request(request: web.Request) -> bool:
    return not request.path.startswith("/_sim/") and request.headers.get("Upgrade", "").lower() != "websocket"


@web.middleware
async def endpoint_faults_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not _is_exchange_request(request):
        return await handler(request)
    faults = request.app[ENDPOINT_FAULTS]
    faults.requests[f"{request.method} {request.path}"] += 1
    if request.path in faults.missing:
        return web.Response(status=404, text=MISSING_ROUTE_BODY, content_type="text/html")
    return await handler(request)


@routes.get("/_sim/requests")
async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[ENDPOINT_FAULTS].requests))


def setup(app: web.Application) -> None:
    """Registers the state and the count route; the middleware is listed in the app's middlewares."""
    app[ENDPOINT_FAULTS] = EndpointFaults()
    app.add_routes(routes)
