"""The control API under `/_sim/` (no auth: the simulator binds to 127.0.0.1), as in CONTRACT.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from tradebot.exchange.simulator import wire
from tradebot.exchange.simulator.accounts import Account, AuditEntry
from tradebot.exchange.simulator.appkeys import SIMULATOR
from tradebot.exchange.simulator.candles import INTERVALS, Candle
from tradebot.exchange.simulator.config import MODES, ConfigError, parse_account
from tradebot.exchange.simulator.endpoint_faults import ENDPOINT_FAULTS, parse_missing_endpoints
from tradebot.exchange.simulator.state import Simulator
from tradebot.timeframes import duration_ms

routes = web.RouteTableDef()


class BadBody(Exception):
    """A control request the simulator cannot act on; the message says which field and why."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadBody("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadBody("body must be a JSON object")
    return body


def _account_param(sim: Simulator, request: web.Request) -> Account:
    api_key = request.query.get("api_key")
    if not api_key:
        raise BadBody("query parameter api_key is required")
    account = sim.engine.accounts.get(api_key)
    if account is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "no account with that api_key"}), content_type="application/json"
        )
    return account


def _number(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadBody(f"{where} must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise BadBody(f"{where} must be a number") from None
    if not number.is_finite():
        raise BadBody(f"{where} must be finite")
    return number


def _candle(raw: object, interval: str, where: str) -> Candle:
    if not isinstance(raw, list) or len(raw) != 6:
        raise BadBody(f"{where} must be [open_time_ms, open, high, low, close, volume]")
    open_time = raw[0]
    if isinstance(open_time, bool) or not isinstance(open_time, int) or open_time < 0:
        raise BadBody(f"{where}[0] (open_time_ms) must be a non-negative integer")
    o, h, low, c, v = (_number(x, f"{where}[{i + 1}]") for i, x in enumerate(raw[1:]))
    if min(o, h, low, c) <= 0 or v < 0:
        raise BadBody(f"{where}: prices must be > 0 and volume ≥ 0")
    if not (low <= min(o, c) and h >= max(o, c)):
        raise BadBody(f"{where}: high must be ≥ open, close and low; low ≤ open and close")
    return Candle(open_time, duration_ms(interval, open_time), o, h, low, c, v, trades=1, closed=True)


@routes.post("/_sim/accounts")
async def create_account(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    try:
        spec = parse_account(await _json_object(request), "body")
    except ConfigError as e:
        raise BadBody(str(e)) from e
    sim.engine.add_account(spec.api_key, spec.secret, spec.balances, sim.clock())
    return web.json_response({"api_key": spec.api_key}, status=201)


@routes.post("/_sim/klines")
async def push_klines(request: web.Request) -> web.Response:
    """Appends closed candles, streams each as a final kline and moves the price to the last close.

    Meant for manual mode; in random-walk mode a push is kept and streamed too, but the REST history
    stays the walk's and the walk's next step moves the price again.
    """
    sim = request.app[SIMULATOR]
    body = await _json_object(request)
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or symbol.upper() not in sim.markets:
        raise BadBody(f"symbol must be one of {sorted(sim.markets)}")
    interval = body.get("interval")
    if not isinstance(interval, str) or interval not in INTERVALS:
        raise BadBody(f"interval must be one of {list(INTERVALS)}")
    raw_candles = body.get("candles")
    if not isinstance(raw_candles, list) or not raw_candles:
        raise BadBody("candles must be a non-empty list")
    # Validate all before applying any: a bad request changes nothing.
    candles = [_candle(c, interval, f"candles[{i}]") for i, c in enumerate(raw_candles)]
    count = sim.push_candles(symbol.upper(), interval, candles)
    return web.json_response({"accepted": count}, status=202)


@routes.post("/_sim/mode")
async def set_mode(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    body = await _json_object(request)
    mode = body.get("mode")
    if mode not in MODES:
        raise BadBody(f"mode must be one of {list(MODES)}")
    seconds = body.get("candle_seconds")
    candle_seconds: float | None = None
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0.01 <= seconds <= 86_400:
            raise BadBody("candle_seconds must be a number between 0.01 and 86400")
        candle_seconds = float(seconds)
    sim.set_mode(mode, candle_seconds)
    return web.Response(status=204)


@routes.post("/_sim/faults")
async def set_faults(request: web.Request) -> web.Response:
    """CONTRACT.md's faults, plus `rate_limit_next_requests: N` (the next N exchange REST requests get
    Binance's 429 / -1003, which ccxt raises as DDoSProtection) and `missing_endpoints: [path, …]`
    (those paths answer as routes the exchange does not serve; see endpoint_faults)."""
    sim = request.app[SIMULATOR]
    body = await _json_object(request)
    unknown = set(body) - {"drop_websockets", "fail_next_requests", "rate_limit_next_requests", "latency_ms",
                           "missing_endpoints"}
    if unknown:
        raise BadBody(f"unknown fields: {sorted(unknown)}")
    drop = body.get("drop_websockets", False)
    if not isinstance(drop, bool):
        raise BadBody("drop_websockets must be true or false")
    for name in ("fail_next_requests", "rate_limit_next_requests", "latency_ms"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise BadBody(f"{name} must be an integer ≥ 0")
    missing: frozenset[str] | None = None
    if "missing_endpoints" in body:
        try:
            missing = parse_missing_endpoints(body["missing_endpoints"])
        except ValueError as e:
            raise BadBody(str(e)) from e
    if missing is not None:
        request.app[ENDPOINT_FAULTS].missing = missing
    if "fail_next_requests" in body:
        sim.faults.fail_next_requests = body["fail_next_requests"]
    if "rate_limit_next_requests" in body:
        sim.faults.rate_limit_next_requests = body["rate_limit_next_requests"]
    if "latency_ms" in body:
        sim.faults.latency_ms = body["latency_ms"]
    if drop:
        sim.hub.drop_all()
    return web.Response(status=204)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


@routes.get("/_sim/orders")
async def list_orders(request: web.Request) -> web.Response:
    """Every POST /fapi/v1/order and /fapi/v1/algoOrder that passed authentication, oldest first.

    Requests refused before that (unknown key, bad signature, stale timestamp, an injected 503) are
    absent: nothing proves they came from this key, and the engine never saw them. A conditional
    order is listed with its `type` (`stop_market`, `take_profit_market`, `trailing_stop_market`)
    and `stop_price` (its trigger; a trailing stop's moving level once activated), `order_id` is
    its algo id, and its status is `new` while it waits, `filled` once the order it became filled,
    else `canceled`, `rejected` (refused when triggered: `reject_code` stays null) or `expired`.
    The market order a trigger becomes was no request and is not listed.
    """
    sim = request.app[SIMULATOR]
    account = _account_param(sim, request)
    out = []
    for entry in account.audit:
        if entry.algo:
            out.append(_algo_entry(account, entry))
            continue
        # An accepted request reports its order's status now (a resting limit order may have filled
        # since); a rejected one reports "rejected" and Binance's code.
        order = account.orders.get(entry.order_id) if entry.order_id is not None else None
        out.append(
            {
                "client_order_id": order.client_order_id if order else entry.client_order_id,
                "order_id": entry.order_id,
                "symbol": entry.symbol,
                "side": entry.side.lower() if entry.side else None,
                "type": entry.type.lower() if entry.type else None,
                "amount": float(entry.amount) if entry.amount is not None else None,
                "stop_price": None,
                "status": order.status.lower() if order else "rejected",
                "reject_code": entry.reject_code,
                "received_at": _iso(entry.received_at),
            }
        )
    return web.json_response(out)


_ALGO_STATUS = {
    "NEW": "new",
    "TRIGGERING": "triggered",
    "TRIGGERED": "triggered",
    "CANCELED": "canceled",
    "REJECTED": "rejected",
    "EXPIRED": "expired",
}


def _algo_entry(account: Account, entry: AuditEntry) -> dict[str, Any]:
    algo = account.algo_orders.get(entry.order_id) if entry.order_id is not None else None
    if algo is None:
        status = "rejected"
        stop_price = entry.stop_price
    else:
        finished = "filled" if algo.executed_qty > 0 else "expired"
        status = finished if algo.status == "FINISHED" else _ALGO_STATUS[algo.status]
        stop_price = algo.trigger_price or algo.trailing_level or None
    return {
        "client_order_id": algo.client_algo_id if algo else entry.client_order_id,
        "order_id": entry.order_id,
        "symbol": entry.symbol,
        "side": entry.side.lower() if entry.side else None,
        "type": entry.type.lower() if entry.type else None,
        "amount": float(entry.amount) if entry.amount is not None else None,
        "stop_price": float(stop_price) if stop_price is not None else None,
        "status": status,
        "reject_code": entry.reject_code,
        "received_at": _iso(entry.received_at),
    }


@routes.get("/_sim/positions")
async def list_positions(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    account = _account_param(sim, request)
    return web.json_response(dict(wire.positions_summary(account, sim.engine)))


@web.middleware
async def bad_body_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except BadBody as e:
        return _error(400, str(e))
    return response
