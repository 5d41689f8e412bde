"""Binance USD-M REST routes (`/fapi/...`), each a thin call into the simulator state.

Security levels as on Binance: NONE (market data), USER_STREAM (API key only: listenKey) and SIGNED
(API key + HMAC signature + timestamp). Errors are `{"code", "msg"}` with Binance's codes and statuses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from aiohttp import web

from tradebot.exchange.simulator import wire
from tradebot.exchange.simulator.accounts import Account, AlgoRequest, OrderRequest, Rejection
from tradebot.exchange.simulator.appkeys import SIMULATOR
from tradebot.exchange.simulator.auth import API_KEY_HEADER, account_for_key, verify_signed
from tradebot.exchange.simulator.candles import DEFAULT_KLINES_LIMIT, INTERVALS, MAX_KLINES_LIMIT
from tradebot.exchange.simulator.state import Simulator, wall_clock_ms
from tradebot.exchange.simulator.weights import (
    USED_WEIGHT_HEADER,
    Weight,
    by_symbol,
    depth_weight,
    klines_weight,
    weight_of,
)

Params = dict[str, str]
Handler = Callable[[Simulator, Account | None, Params], object]


class Security(Enum):
    NONE = "none"
    USER_STREAM = "user_stream"
    SIGNED = "signed"


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json", headers=headers)


def rejection_response(rejection: Rejection) -> web.Response:
    return json_response({"code": rejection.code, "msg": rejection.msg}, rejection.http_status)


def endpoint(
    security: Security, handler: Handler, weight: Weight = 1
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = await _answer(request)
        # Binance reports the minute's weight on every answer, refusals included.
        used = request.app[SIMULATOR].used_weight.add(
            request.app[SIMULATOR].wall_clock(), weight_of(weight, request.query)
        )
        response.headers[USED_WEIGHT_HEADER] = str(used)
        return response

    async def _answer(request: web.Request) -> web.Response:
        sim = request.app[SIMULATOR]
        body = await request.text() if request.can_read_body else ""
        try:
            account: Account | None = None
            if security is Security.NONE:
                params: Params = dict(request.query)
            else:
                account = account_for_key(sim.engine.accounts, request.headers.get(API_KEY_HEADER))
                if security is Security.SIGNED:
                    # The raw (still percent-encoded) query: the signature covers the bytes as sent.
                    params = verify_signed(
                        account,
                        request.rel_url.raw_query_string,
                        body,
                        sim.wall_clock(),
                        sim.config.recv_window_ms,
                    )
                else:
                    params = dict(request.query)
            return json_response(handler(sim, account, params))
        except Rejection as rejection:
            return rejection_response(rejection)

    return handle


def _account(account: Account | None) -> Account:
    assert account is not None, "SIGNED and USER_STREAM endpoints always resolve the account"
    return account


# ---- market data (NONE) -------------------------------------------------------------------------


def ping(sim: Simulator, _: Account | None, __: Params) -> object:
    return {}


def server_time(sim: Simulator, _: Account | None, __: Params) -> object:
    return {"serverTime": sim.clock()}


def exchange_info(sim: Simulator, _: Account | None, __: Params) -> object:
    return wire.exchange_info(sim.markets.values(), sim.clock())


def _symbol(sim: Simulator, params: Params, required: bool = True) -> str | None:
    symbol = params.get("symbol")
    if not symbol:
        if required:
            raise Rejection(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return None
    if symbol.upper() not in sim.markets:
        raise Rejection(-1121, "Invalid symbol.")
    return symbol.upper()


def _int_param(params: Params, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise Rejection(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from None


def klines(sim: Simulator, _: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params)
    assert symbol is not None
    interval = params.get("interval")
    if not interval:
        raise Rejection(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
    if interval not in INTERVALS:
        raise Rejection(-1120, "Invalid interval.")
    limit = _int_param(params, "limit") or DEFAULT_KLINES_LIMIT
    limit = max(1, min(limit, MAX_KLINES_LIMIT))
    start, end = _int_param(params, "startTime"), _int_param(params, "endTime")
    if start is not None and end is not None and start > end:
        raise Rejection(-1023, "Start time is greater than end time.")
    return [wire.kline_row(c) for c in sim.klines(symbol, interval, start, end, limit)]


def ticker_24hr(sim: Simulator, _: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params, required=False)
    if symbol is not None:
        return sim.ticker(symbol)
    return [sim.ticker(s) for s in sim.markets]


def ticker_price(sim: Simulator, _: Account | None, params: Params) -> object:
    def one(symbol: str) -> dict[str, Any]:
        return {"symbol": symbol, "price": wire.s(sim.current_price(symbol)), "time": sim.clock()}

    symbol = _symbol(sim, params, required=False)
    return one(symbol) if symbol is not None else [one(s) for s in sim.markets]


def premium_index(sim: Simulator, _: Account | None, params: Params) -> object:
    def one(symbol: str) -> dict[str, Any]:
        price = wire.s(sim.current_price(symbol))
        now = sim.clock()
        return {
            "symbol": symbol,
            "markPrice": price,
            "indexPrice": price,
            "estimatedSettlePrice": price,
            "lastFundingRate": "0.00000000",
            "interestRate": "0.00000000",
            "nextFundingTime": now - now % 28_800_000 + 28_800_000,
            "time": now,
        }

    symbol = _symbol(sim, params, required=False)
    return one(symbol) if symbol is not None else [one(s) for s in sim.markets]


def depth(sim: Simulator, _: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params)
    assert symbol is not None
    levels = max(1, min(_int_param(params, "limit") or 10, 100))
    bids, asks = wire.book_levels(sim.markets[symbol], sim.current_price(symbol), levels)
    now = sim.clock()
    qty = wire.s(wire.BOOK_LEVEL_QTY)
    return {
        "lastUpdateId": now,
        "E": now,
        "T": now,
        "bids": [[wire.s(p), qty] for p in bids],
        "asks": [[wire.s(p), qty] for p in asks],
    }


def book_ticker(sim: Simulator, _: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params, required=False)
    now = sim.clock()
    tops = [wire.book_ticker(sim.markets[s], sim.current_price(s), now) for s in sim.markets if symbol in (None, s)]
    return tops[0] if symbol is not None else tops


def funding_rate(sim: Simulator, _: Account | None, params: Params) -> object:
    """Funding events every 8 h (00:00, 08:00, 16:00 UTC) at rate 0: the simulator charges no funding.

    Binance's rule: with startTime the first `limit` events from there, otherwise the last `limit`
    up to endTime (default now); markPrice is the close of the last 1m candle before the event, or
    the current price when the history has none.
    """
    symbol = _symbol(sim, params, required=False)
    limit = max(1, min(_int_param(params, "limit") or 100, 1000))
    start, end = _int_param(params, "startTime"), _int_param(params, "endTime")
    if start is not None and end is not None and start > end:
        raise Rejection(-1023, "Start time is greater than end time.")
    step = wire.FUNDING_INTERVAL_MS
    end = min(end if end is not None else sim.clock(), sim.clock())
    last = end - end % step
    if start is not None:
        first = start + (-start) % step
        times = list(range(first, last + 1, step))[:limit]
    else:
        times = [t for t in range(last - (limit - 1) * step, last + 1, step) if t >= 0]
    rows = []
    for t in times:
        for s in sim.markets:
            if symbol in (None, s):
                rows.append(wire.funding_rate(s, t, sim.price_at(s, t)))
    return rows


def system_status(sim: Simulator, _: Account | None, __: Params) -> object:
    return {"status": 0, "msg": "normal"}


# ---- account (SIGNED) ---------------------------------------------------------------------------


def set_leverage(sim: Simulator, account: Account | None, params: Params) -> object:
    acct = _account(account)
    leverage = sim.engine.set_leverage(acct, params.get("symbol"), params.get("leverage"), sim.clock())
    symbol = params["symbol"].upper()
    return {"leverage": leverage, "maxNotionalValue": "1000000000", "symbol": symbol}


def set_margin_type(sim: Simulator, account: Account | None, params: Params) -> object:
    sim.engine.set_margin_type(_account(account), params.get("symbol"), params.get("marginType"))
    return {"code": 200, "msg": "success"}


def leverage_bracket(sim: Simulator, _: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params, required=False)
    markets = [sim.markets[symbol]] if symbol else list(sim.markets.values())
    brackets = wire.leverage_brackets(markets)
    return brackets[0] if symbol else brackets


def symbol_config(sim: Simulator, account: Account | None, params: Params) -> object:
    acct = _account(account)
    symbol = _symbol(sim, params, required=False)
    return [
        {
            "symbol": m,
            "marginType": acct.margin_type.get(m, "CROSSED"),
            "isAutoAddMargin": False,
            "leverage": acct.leverage_for(m),
            "maxNotionalValue": "1000000000",
        }
        for m in sim.markets
        if symbol is None or m == symbol
    ]


def commission_rate(sim: Simulator, _: Account | None, params: Params) -> object:
    rate = wire.s(sim.engine.fee_rate)
    return {"symbol": _symbol(sim, params), "makerCommissionRate": rate, "takerCommissionRate": rate}


def position_side_dual(sim: Simulator, _: Account | None, __: Params) -> object:
    return {"dualSidePosition": False}  # one-way mode only


def change_position_side(sim: Simulator, _: Account | None, params: Params) -> object:
    wanted = params.get("dualSidePosition", "").lower()
    if wanted not in ("true", "false"):
        raise Rejection(-1102, "Mandatory parameter 'dualSidePosition' was not sent, was empty/null, or malformed.")
    if wanted == "false":  # every account is in one-way mode already
        raise Rejection(-4059, "No need to change position side.")
    # Hedge mode is not simulated. Binance's own word for a mode switch it will not make for this
    # account; a client sees a clear refusal instead of a mode that orders would then ignore.
    raise Rejection(-4068, "Position side cannot be changed: the tradebot simulator serves one-way mode only.")


def account_v2(sim: Simulator, account: Account | None, __: Params) -> object:
    return wire.account_info(sim.engine, _account(account))


def balance(sim: Simulator, account: Account | None, __: Params) -> object:
    return wire.balances(sim.engine, _account(account))


def position_risk_v2(sim: Simulator, account: Account | None, params: Params) -> object:
    rows = wire.position_risk(sim.engine, _account(account), include_flat=True)
    symbol = _symbol(sim, params, required=False)
    return [r for r in rows if symbol is None or r["symbol"] == symbol]


def position_risk_v3(sim: Simulator, account: Account | None, params: Params) -> object:
    rows = wire.position_risk(sim.engine, _account(account), include_flat=False)
    symbol = _symbol(sim, params, required=False)
    return [r for r in rows if symbol is None or r["symbol"] == symbol]


# ---- orders (SIGNED) ----------------------------------------------------------------------------


def new_order(sim: Simulator, account: Account | None, params: Params) -> object:
    acct = _account(account)
    request = OrderRequest(
        symbol=params.get("symbol"),
        side=params.get("side"),
        type=params.get("type"),
        quantity=params.get("quantity"),
        price=params.get("price"),
        time_in_force=params.get("timeInForce"),
        reduce_only=params.get("reduceOnly", "false").lower() == "true",
        client_order_id=params.get("newClientOrderId") or None,
    )
    response_type = params.get("newOrderRespType", "ACK").upper()
    if response_type not in ("ACK", "RESULT"):
        raise Rejection(-1136, "Invalid newOrderRespType.")
    order, reports = sim.engine.place_order(acct, request, sim.clock(), received_ms=wall_clock_ms())
    sim.publish_reports(reports)
    # ACK (Binance's default) answers with the order as accepted, before any fill; RESULT as it ended.
    return wire.order(reports[0].order if response_type == "ACK" else order)


def query_order(sim: Simulator, account: Account | None, params: Params) -> object:
    _symbol(sim, params)
    order = sim.engine.find_order(_account(account), params.get("orderId"), params.get("origClientOrderId"))
    return wire.order(order)


def cancel_order(sim: Simulator, account: Account | None, params: Params) -> object:
    _symbol(sim, params)
    order, reports = sim.engine.cancel_order(
        _account(account), params.get("orderId"), params.get("origClientOrderId"), sim.clock()
    )
    sim.publish_reports(reports)
    return wire.order(order)


def query_open_order(sim: Simulator, account: Account | None, params: Params) -> object:
    _symbol(sim, params)
    order = sim.engine.find_order(_account(account), params.get("orderId"), params.get("origClientOrderId"))
    if not order.is_open:  # Binance: a filled or cancelled order "does not exist" on this endpoint
        raise Rejection(-2013, "Order does not exist.")
    return wire.order(order)


def cancel_all_open_orders(sim: Simulator, account: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params)
    assert symbol is not None
    sim.publish_reports(sim.engine.cancel_all_open_orders(_account(account), symbol, sim.clock()))
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


# ---- conditional orders: the algo-order API (SIGNED) -------------------------------------------


def new_algo_order(sim: Simulator, account: Account | None, params: Params) -> object:
    request = AlgoRequest(
        algo_type=params.get("algoType"),
        symbol=params.get("symbol"),
        side=params.get("side"),
        type=params.get("type"),
        quantity=params.get("quantity") or None,
        trigger_price=params.get("triggerPrice") or None,
        activate_price=params.get("activatePrice") or None,
        callback_rate=params.get("callbackRate") or None,
        working_type=params.get("workingType") or None,
        time_in_force=params.get("timeInForce") or None,
        reduce_only=params.get("reduceOnly") or None,
        close_position=params.get("closePosition") or None,
        client_algo_id=params.get("clientAlgoId") or None,
    )
    algo, reports = sim.algo.place(_account(account), request, sim.clock(), received_ms=wall_clock_ms())
    sim.publish_reports(reports)
    return wire.algo_order(algo)


def query_algo_order(sim: Simulator, account: Account | None, params: Params) -> object:
    return wire.algo_order(sim.algo.find(_account(account), params.get("algoId"), params.get("clientAlgoId")))


def cancel_algo_order(sim: Simulator, account: Account | None, params: Params) -> object:
    algo, reports = sim.algo.cancel(_account(account), params.get("algoId"), params.get("clientAlgoId"), sim.clock())
    sim.publish_reports(reports)
    return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}


def open_algo_orders(sim: Simulator, account: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params, required=False)
    return [wire.algo_order(a) for a in _account(account).open_algo_orders(symbol)]


def all_algo_orders(sim: Simulator, account: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params)
    start, end = _int_param(params, "startTime"), _int_param(params, "endTime")
    algo_id = _int_param(params, "algoId")
    limit = max(1, min(_int_param(params, "limit") or 500, 1000))
    orders = [
        a
        for a in _account(account).algo_orders.values()
        if a.symbol == symbol
        and (algo_id is None or a.algo_id >= algo_id)
        and (start is None or a.create_time >= start)
        and (end is None or a.create_time <= end)
    ]
    return [wire.algo_order(a) for a in orders[:limit]]


def cancel_all_algo_orders(sim: Simulator, account: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params)
    assert symbol is not None
    sim.publish_reports(sim.algo.cancel_all(_account(account), symbol, sim.clock()))
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


INCOME_TYPES = {"REALIZED_PNL", "COMMISSION", "FUNDING_FEE", "TRANSFER"}
_WEEK_MS = 7 * 86_400_000


def income_history(sim: Simulator, account: Account | None, params: Params) -> object:
    """Binance's rules: the last 7 days unless a time is given, oldest first, `page` from 1."""
    symbol = _symbol(sim, params, required=False)
    kind = params.get("incomeType")
    if kind and kind.upper() not in INCOME_TYPES:
        raise Rejection(-1100, "Illegal characters found in parameter 'incomeType'.")
    limit = max(1, min(_int_param(params, "limit") or 100, 1000))
    page = max(1, _int_param(params, "page") or 1)
    start, end = _int_param(params, "startTime"), _int_param(params, "endTime")
    if start is None and end is None:
        start = sim.clock() - _WEEK_MS
    rows = [
        r
        for r in wire.income(_account(account))
        if (symbol is None or r["symbol"] == symbol)
        and (not kind or r["incomeType"] == kind.upper())
        and (start is None or r["time"] >= start)
        and (end is None or r["time"] <= end)
    ]
    return rows[(page - 1) * limit : page * limit]


def open_orders(sim: Simulator, account: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params, required=False)
    return [wire.order(o) for o in _account(account).open_orders(symbol)]


def all_orders(sim: Simulator, account: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params)
    start, end = _int_param(params, "startTime"), _int_param(params, "endTime")
    order_id = _int_param(params, "orderId")
    limit = max(1, min(_int_param(params, "limit") or 500, 1000))
    orders = [
        o
        for o in _account(account).orders.values()
        if o.symbol == symbol
        and (order_id is None or o.order_id >= order_id)
        and (start is None or o.time >= start)
        and (end is None or o.time <= end)
    ]
    return [wire.order(o) for o in orders[:limit]]


def user_trades(sim: Simulator, account: Account | None, params: Params) -> object:
    symbol = _symbol(sim, params)
    start, end = _int_param(params, "startTime"), _int_param(params, "endTime")
    from_id, order_id = _int_param(params, "fromId"), _int_param(params, "orderId")
    limit = max(1, min(_int_param(params, "limit") or 500, 1000))
    trades = [
        t
        for t in _account(account).trades
        if t.symbol == symbol
        and (from_id is None or t.trade_id >= from_id)
        and (order_id is None or t.order_id == order_id)
        and (start is None or t.time >= start)
        and (end is None or t.time <= end)
    ]
    trades = trades[:limit] if start is not None or from_id is not None else trades[-limit:]
    return [wire.trade(t) for t in trades]


# ---- user data stream (USER_STREAM) -------------------------------------------------------------


def new_listen_key(sim: Simulator, account: Account | None, __: Params) -> object:
    return {"listenKey": sim.listen_key_for(_account(account).api_key)}


def keep_listen_key(sim: Simulator, account: Account | None, __: Params) -> object:
    return {"listenKey": sim.listen_key_for(_account(account).api_key)}


def close_listen_key(sim: Simulator, account: Account | None, __: Params) -> object:
    sim.close_listen_key(_account(account).api_key)
    return {}


# Every route served, in one table so the list of endpoints is easy to read and keep in step with ccxt.
ROUTES: list[tuple[str, str, Security, Handler, Weight]] = [
    ("GET", "/fapi/v1/ping", Security.NONE, ping, 1),
    ("GET", "/fapi/v1/time", Security.NONE, server_time, 1),
    ("GET", "/fapi/v1/exchangeInfo", Security.NONE, exchange_info, 1),
    ("GET", "/fapi/v1/klines", Security.NONE, klines, klines_weight),
    ("GET", "/fapi/v1/ticker/24hr", Security.NONE, ticker_24hr, by_symbol(1, 40)),
    ("GET", "/fapi/v1/ticker/price", Security.NONE, ticker_price, by_symbol(1, 2)),
    ("GET", "/fapi/v2/ticker/price", Security.NONE, ticker_price, by_symbol(1, 2)),
    ("GET", "/fapi/v1/ticker/bookTicker", Security.NONE, book_ticker, by_symbol(2, 5)),
    ("GET", "/fapi/v1/premiumIndex", Security.NONE, premium_index, by_symbol(1, 10)),
    ("GET", "/fapi/v1/fundingRate", Security.NONE, funding_rate, 1),
    ("GET", "/fapi/v1/depth", Security.NONE, depth, depth_weight),
    ("GET", "/sapi/v1/system/status", Security.NONE, system_status, 1),
    ("POST", "/fapi/v1/leverage", Security.SIGNED, set_leverage, 1),
    ("POST", "/fapi/v1/marginType", Security.SIGNED, set_margin_type, 1),
    ("GET", "/fapi/v1/leverageBracket", Security.SIGNED, leverage_bracket, 1),
    ("GET", "/fapi/v1/symbolConfig", Security.SIGNED, symbol_config, 5),
    ("GET", "/fapi/v1/commissionRate", Security.SIGNED, commission_rate, 20),
    ("GET", "/fapi/v1/positionSide/dual", Security.SIGNED, position_side_dual, 30),
    ("POST", "/fapi/v1/positionSide/dual", Security.SIGNED, change_position_side, 1),
    ("GET", "/fapi/v2/account", Security.SIGNED, account_v2, 5),
    ("GET", "/fapi/v3/account", Security.SIGNED, account_v2, 5),
    ("GET", "/fapi/v2/balance", Security.SIGNED, balance, 5),
    ("GET", "/fapi/v3/balance", Security.SIGNED, balance, 5),
    ("GET", "/fapi/v2/positionRisk", Security.SIGNED, position_risk_v2, 5),
    ("GET", "/fapi/v3/positionRisk", Security.SIGNED, position_risk_v3, 5),
    # A new order weighs 0 on the IP limit (Binance counts it on the order-rate limits instead).
    ("POST", "/fapi/v1/order", Security.SIGNED, new_order, 0),
    ("GET", "/fapi/v1/order", Security.SIGNED, query_order, 1),
    ("DELETE", "/fapi/v1/order", Security.SIGNED, cancel_order, 1),
    ("GET", "/fapi/v1/openOrder", Security.SIGNED, query_open_order, 1),
    ("DELETE", "/fapi/v1/allOpenOrders", Security.SIGNED, cancel_all_open_orders, 1),
    ("GET", "/fapi/v1/openOrders", Security.SIGNED, open_orders, by_symbol(1, 40)),
    ("GET", "/fapi/v1/allOrders", Security.SIGNED, all_orders, 5),
    ("POST", "/fapi/v1/algoOrder", Security.SIGNED, new_algo_order, 0),
    ("GET", "/fapi/v1/algoOrder", Security.SIGNED, query_algo_order, 1),
    ("DELETE", "/fapi/v1/algoOrder", Security.SIGNED, cancel_algo_order, 1),
    ("GET", "/fapi/v1/openAlgoOrders", Security.SIGNED, open_algo_orders, by_symbol(1, 40)),
    ("GET", "/fapi/v1/allAlgoOrders", Security.SIGNED, all_algo_orders, 5),
    ("DELETE", "/fapi/v1/algoOpenOrders", Security.SIGNED, cancel_all_algo_orders, 1),
    ("GET", "/fapi/v1/userTrades", Security.SIGNED, user_trades, 5),
    ("GET", "/fapi/v1/income", Security.SIGNED, income_history, 30),
    ("POST", "/fapi/v1/listenKey", Security.USER_STREAM, new_listen_key, 1),
    ("PUT", "/fapi/v1/listenKey", Security.USER_STREAM, keep_listen_key, 1),
    ("DELETE", "/fapi/v1/listenKey", Security.USER_STREAM, close_listen_key, 1),
]


async def not_found(request: web.Request) -> web.StreamResponse:
    # A JSON body with a code ccxt does not map turns into a plain ExchangeError: a caller sees at once
    # that the simulator lacks the endpoint, instead of retrying the NetworkError a bare 404 becomes.
    return json_response(
        {
            "code": -5000,
            "msg": f"Path {request.method} {request.path} is not served by the tradebot simulator.",
        },
        404,
    )


@web.middleware
async def fault_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Injected latency and failures, for exchange REST requests only (not /_sim/, not websockets)."""
    if request.path.startswith("/_sim/") or request.headers.get("Upgrade", "").lower() == "websocket":
        return await handler(request)
    faults = request.app[SIMULATOR].faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.fail_next_requests > 0:
        faults.fail_next_requests -= 1
        return json_response(
            {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}, 503
        )
    if faults.rate_limit_next_requests > 0:
        faults.rate_limit_next_requests -= 1
        return json_response(
            {
                "code": -1003,
                "msg": "Too many requests; current limit of IP is 2400 requests per minute. "
                "Please use the websocket for live updates to avoid polling the API.",
            },
            429,
            headers={"Retry-After": "1"},
        )
    return await handler(request)


def add_routes(app: web.Application) -> None:
    for method, path, security, handler, weight in ROUTES:
        app.router.add_route(method, path, endpoint(security, handler, weight))
