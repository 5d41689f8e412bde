"""Binance USD-M JSON shapes: the objects REST answers and streams push, built from engine state.

Numbers go out as decimal strings and times as epoch milliseconds, like Binance; ccxt parses both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tradebot.exchange.simulator.accounts import (
    SETTLEMENT_ASSET,
    Account,
    AlgoOrder,
    AlgoReport,
    ExecutionReport,
    Fill,
    Order,
    Position,
)
from tradebot.exchange.simulator.candles import Candle
from tradebot.exchange.simulator.conditional import MAX_OPEN_ALGO_ORDERS
from tradebot.exchange.simulator.engine import TIME_IN_FORCE, MatchingEngine
from tradebot.exchange.simulator.liquidation import position_margin
from tradebot.exchange.simulator.markets import MarketSpec, decimal_str, round_down, round_up

Json = dict[str, Any]
# What the simulator serves (ccxt refuses others before sending); the conditional ones only at the
# algo-order endpoints, as on Binance today.
ORDER_TYPES = ["LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]
_FAR_FUTURE_MS = 4133404800000  # Binance's deliveryDate for perpetuals (2100-12-25)


# Binance prints computed figures (averages, margins, PnL, quote volumes) with at most 8 decimals.
_COMPUTED_QUANTUM = Decimal("1e-8")


def s(value: Decimal) -> str:
    """A number the simulator computed, as Binance prints it: plain decimals, at most 8 of them.

    Prices and quantities the engine sets are on the market's grid already (fills, the random walk,
    lot steps); this bounds what arithmetic derives from them (an average entry price, a margin at 7x)
    instead of printing Decimal's 28 significant digits.
    """
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        value = value.quantize(_COMPUTED_QUANTUM, rounding=ROUND_HALF_EVEN)
    return decimal_str(value)


def given(value: Decimal) -> str:
    """A number a test author pushed (a candle's OHLCV via `/_sim/klines` or a replayed CSV), as given.

    Pushed candles are the author's data, not the exchange's: live-vs-backtest parity tests feed the
    same floats to the backtest, so their values are echoed unchanged, neither snapped to the tick nor
    rounded. They arrive as JSON numbers read through `str(float)` (or CSV text through `repr`), the
    shortest text that round-trips, so they never carry Decimal's long expansions; figures derived from
    them (quote volume, taker volumes) go through `s` and are rounded to 8 decimals.
    """
    return decimal_str(value)


def exchange_info(markets: Iterable[MarketSpec], server_time: int) -> Json:
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": SETTLEMENT_ASSET, "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [_symbol_info(m) for m in markets],
    }


def _symbol_info(m: MarketSpec) -> Json:
    lot = {"stepSize": s(m.step_size), "minQty": s(m.min_qty), "maxQty": s(m.max_qty)}
    return {
        "symbol": m.symbol,
        "pair": m.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": _FAR_FUTURE_MS,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": m.base,
        "quoteAsset": m.quote,
        "marginAsset": m.quote,
        "pricePrecision": m.price_precision,
        "quantityPrecision": m.quantity_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "tickSize": s(m.tick_size),
                "minPrice": s(m.tick_size),
                "maxPrice": "10000000",
            },
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **lot},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": MAX_OPEN_ALGO_ORDERS},
            {"filterType": "MIN_NOTIONAL", "notional": s(m.min_notional)},
        ],
        "orderTypes": ORDER_TYPES,
        "timeInForce": list(TIME_IN_FORCE),
    }


def leverage_brackets(markets: Iterable[MarketSpec]) -> list[Json]:
    """Each market's notional brackets; the maintenance margin and liquidation price use them (the
    leverage cap of a bracket is advertised, not enforced against a growing position)."""
    return [
        {
            "symbol": m.symbol,
            "brackets": [
                {
                    "bracket": b.number,
                    "initialLeverage": b.max_leverage,
                    "notionalCap": int(b.cap),
                    "notionalFloor": int(b.floor),
                    "maintMarginRatio": float(b.ratio),
                    "cum": float(b.amount),
                }
                for b in m.brackets
            ],
        }
        for m in markets
    ]


def kline_row(c: Candle) -> list[Any]:
    quote_volume = c.volume * c.close
    return [
        c.open_time,
        given(c.open),
        given(c.high),
        given(c.low),
        given(c.close),
        given(c.volume),
        c.close_time,
        s(quote_volume),
        c.trades,
        s(c.volume / 2),
        s(quote_volume / 2),
        "0",
    ]


def kline_event(symbol: str, interval: str, c: Candle, event_time: int) -> Json:
    return {
        "e": "kline",
        "E": event_time,
        "s": symbol,
        "k": {
            "t": c.open_time,
            "T": c.close_time,
            "s": symbol,
            "i": interval,
            "f": 0,
            "L": max(c.trades - 1, 0),
            "o": given(c.open),
            "c": given(c.close),
            "h": given(c.high),
            "l": given(c.low),
            "v": given(c.volume),
            "n": c.trades,
            "x": c.closed,
            "q": s(c.volume * c.close),
            "V": s(c.volume / 2),
            "Q": s(c.volume * c.close / 2),
            "B": "0",
        },
    }


def ticker_24hr(symbol: str, window: Sequence[Candle], last: Decimal, now: int) -> Json:
    open_price = window[0].open if window else last
    high = max((c.high for c in window), default=last)
    low = min((c.low for c in window), default=last)
    volume = sum((c.volume for c in window), Decimal(0))
    quote = sum((c.volume * c.close for c in window), Decimal(0))
    change = last - open_price
    return {
        "symbol": symbol,
        "priceChange": s(change),
        "priceChangePercent": s((change / open_price * 100).quantize(Decimal("0.001"))) if open_price else "0",
        "weightedAvgPrice": s(quote / volume) if volume else s(last),
        "lastPrice": s(last),
        "lastQty": "0",
        "openPrice": s(open_price),
        "highPrice": s(high),
        "lowPrice": s(low),
        "volume": s(volume),
        "quoteVolume": s(quote),
        "openTime": window[0].open_time if window else now,
        "closeTime": now,
        "firstId": 0,
        "lastId": 0,
        "count": sum(c.trades for c in window),
    }


def ticker_events(ticker: Json, event_time: int) -> tuple[Json, Json]:
    """The `@ticker` and `@miniTicker` stream events built from a 24hr ticker object."""
    full = {
        "e": "24hrTicker",
        "E": event_time,
        "s": ticker["symbol"],
        "p": ticker["priceChange"],
        "P": ticker["priceChangePercent"],
        "w": ticker["weightedAvgPrice"],
        "c": ticker["lastPrice"],
        "Q": ticker["lastQty"],
        "o": ticker["openPrice"],
        "h": ticker["highPrice"],
        "l": ticker["lowPrice"],
        "v": ticker["volume"],
        "q": ticker["quoteVolume"],
        "O": ticker["openTime"],
        "C": ticker["closeTime"],
        "F": 0,
        "L": 0,
        "n": ticker["count"],
    }
    mini = {k: full[k] for k in ("E", "s", "c", "o", "h", "l", "v", "q")}
    return full, {"e": "24hrMiniTicker", **mini}


def order(o: Order) -> Json:
    return {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": s(o.price),
        "avgPrice": s(o.avg_price),
        "origQty": s(o.orig_qty),
        "executedQty": s(o.executed_qty),
        "cumQty": s(o.executed_qty),
        "cumQuote": s(o.cum_quote),
        "timeInForce": o.time_in_force,
        "type": o.type,
        "reduceOnly": o.reduce_only,
        "closePosition": False,
        "side": o.side,
        "positionSide": "BOTH",
        "stopPrice": s(o.stop_price),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": o.orig_type or o.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "time": o.time,
        "updateTime": o.update_time,
    }


def trade(f: Fill) -> Json:
    return {
        "buyer": f.side == "BUY",
        "commission": s(f.commission),
        "commissionAsset": SETTLEMENT_ASSET,
        "id": f.trade_id,
        "maker": f.maker,
        "orderId": f.order_id,
        "price": s(f.price),
        "qty": s(f.qty),
        "quoteQty": s(f.quote_qty),
        "realizedPnl": s(f.realized_pnl),
        "side": f.side,
        "positionSide": "BOTH",
        "symbol": f.symbol,
        "time": f.time,
    }


def _position_fields(engine: MatchingEngine, account: Account, p: Position) -> Json:
    mark = engine.prices[p.symbol]
    notional = p.amount * mark
    initial_margin = engine.position_initial_margin(account, p)
    market = engine.markets[p.symbol]
    return {
        "symbol": p.symbol,
        "positionSide": "BOTH",
        "positionAmt": s(p.amount),
        "entryPrice": s(p.entry_price),
        "breakEvenPrice": s(p.entry_price),
        "markPrice": s(mark),
        "unRealizedProfit": s(engine.unrealized_pnl(p)),
        "unrealizedProfit": s(engine.unrealized_pnl(p)),
        "liquidationPrice": s(engine.liquidation_price(account, p)),
        "leverage": str(account.leverage_for(p.symbol)),
        "maxNotionalValue": "1000000000",
        "marginType": "cross" if account.margin_type.get(p.symbol, "CROSSED") == "CROSSED" else "isolated",
        "isolated": False,
        "isolatedMargin": s(position_margin(p.amount, p.entry_price, account.leverage_for(p.symbol))),
        "isolatedWallet": s(position_margin(p.amount, p.entry_price, account.leverage_for(p.symbol))),
        "isAutoAddMargin": "false",
        "notional": s(notional),
        "marginAsset": SETTLEMENT_ASSET,
        "initialMargin": s(initial_margin),
        "maintMargin": s(market.maintenance_margin(notional)),
        "positionInitialMargin": s(initial_margin),
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": p.update_time,
    }


def position_risk(engine: MatchingEngine, account: Account, *, include_flat: bool) -> list[Json]:
    """v2 lists every symbol, v3 only those with a position, like Binance."""
    out = []
    for symbol in engine.markets:
        p = account.positions.get(symbol) or Position(symbol)
        if p.amount or include_flat:
            out.append(_position_fields(engine, account, p))
    return out


def _asset_fields(engine: MatchingEngine, account: Account, asset: str) -> Json:
    summary = engine.summary(account, asset)
    maint = Decimal(0)
    if asset == SETTLEMENT_ASSET:
        maint = sum(
            (
                engine.markets[p.symbol].maintenance_margin(p.amount * engine.prices[p.symbol])
                for p in account.positions.values()
            ),
            Decimal(0),
        )
    return {
        "asset": asset,
        "walletBalance": s(summary.wallet_balance),
        "unrealizedProfit": s(summary.unrealized_pnl),
        "marginBalance": s(summary.margin_balance),
        "maintMargin": s(maint),
        "initialMargin": s(summary.position_initial_margin + summary.open_order_initial_margin),
        "positionInitialMargin": s(summary.position_initial_margin),
        "openOrderInitialMargin": s(summary.open_order_initial_margin),
        "crossWalletBalance": s(summary.wallet_balance),
        "crossUnPnl": s(summary.unrealized_pnl),
        "availableBalance": s(summary.available_balance),
        "maxWithdrawAmount": s(max(summary.available_balance, Decimal(0))),
        "marginAvailable": True,
        # ccxt drops a balance whose updateTime is 0, so never report 0.
        "updateTime": account.update_time or 1,
    }


def account_info(engine: MatchingEngine, account: Account) -> Json:
    assets = [_asset_fields(engine, account, a) for a in sorted(account.balances)]
    usdt = engine.summary(account)
    return {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": account.update_time or 1,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
        "totalInitialMargin": s(usdt.position_initial_margin + usdt.open_order_initial_margin),
        "totalMaintMargin": next((a["maintMargin"] for a in assets if a["asset"] == SETTLEMENT_ASSET), "0"),
        "totalWalletBalance": s(usdt.wallet_balance),
        "totalUnrealizedProfit": s(usdt.unrealized_pnl),
        "totalMarginBalance": s(usdt.margin_balance),
        "totalPositionInitialMargin": s(usdt.position_initial_margin),
        "totalOpenOrderInitialMargin": s(usdt.open_order_initial_margin),
        "totalCrossWalletBalance": s(usdt.wallet_balance),
        "totalCrossUnPnl": s(usdt.unrealized_pnl),
        "availableBalance": s(usdt.available_balance),
        "maxWithdrawAmount": s(max(usdt.available_balance, Decimal(0))),
        "assets": assets,
        "positions": position_risk(engine, account, include_flat=True),
    }


def balances(engine: MatchingEngine, account: Account) -> list[Json]:
    out = []
    for asset in sorted(account.balances):
        f = _asset_fields(engine, account, asset)
        out.append(
            {
                "accountAlias": "SgsR",
                "asset": asset,
                "balance": f["walletBalance"],
                "crossWalletBalance": f["crossWalletBalance"],
                "crossUnPnl": f["crossUnPnl"],
                "availableBalance": f["availableBalance"],
                "maxWithdrawAmount": f["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": f["updateTime"],
            }
        )
    return out


def order_trade_update(report: ExecutionReport, event_time: int) -> Json:
    o, f = report.order, report.fill
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": event_time,
        "T": f.time if f else o.update_time,
        "o": {
            "s": o.symbol,
            "c": o.client_order_id,
            "S": o.side,
            "o": o.type,
            "f": o.time_in_force,
            "q": s(o.orig_qty),
            "p": s(o.price),
            "ap": s(o.avg_price),
            "sp": s(o.stop_price),
            "x": report.execution_type,
            "X": o.status,
            "i": o.order_id,
            "l": s(f.qty) if f else "0",
            "z": s(o.executed_qty),
            "L": s(f.price) if f else "0",
            "N": SETTLEMENT_ASSET,
            "n": s(f.commission) if f else "0",
            "T": f.time if f else o.update_time,
            "t": f.trade_id if f else 0,
            "b": "0",
            "a": "0",
            "m": f.maker if f else False,
            "R": o.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": o.orig_type or o.type,
            "ps": "BOTH",
            "cp": False,
            "rp": s(f.realized_pnl) if f else "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "NONE",
            "pm": "NONE",
            "gtd": 0,
        },
    }


def algo_order(a: AlgoOrder) -> Json:
    """A conditional order as the algo-order endpoints answer (POST, GET, open and all orders)."""
    body: Json = {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.order_type,
        "symbol": a.symbol,
        "side": a.side,
        "positionSide": "BOTH",
        "timeInForce": a.time_in_force,
        "quantity": s(a.quantity),
        "algoStatus": a.status,
        "triggerPrice": s(a.trigger_price),
        "price": "0",
        "icebergQuantity": None,
        "selfTradePreventionMode": "NONE",
        "workingType": a.working_type,
        "priceMatch": "NONE",
        "closePosition": a.close_position,
        "priceProtect": False,
        "reduceOnly": a.reduce_only,
        "createTime": a.create_time,
        "updateTime": a.update_time,
        "triggerTime": a.trigger_time,
        "goodTillDate": 0,
        "actualOrderId": str(a.actual_order_id) if a.actual_order_id is not None else "",
        "executedQty": s(a.executed_qty),
        "avgPrice": s(a.avg_price),
    }
    if a.order_type == "TRAILING_STOP_MARKET":
        body["activatePrice"] = s(a.activate_price)
        body["callbackRate"] = s(a.callback_rate)
    return body


def algo_update(report: AlgoReport, event_time: int) -> Json:
    """ALGO_UPDATE: Binance names its times the other way round here (T event, E transaction)."""
    a = report.algo
    payload: Json = {
        "caid": a.client_algo_id,
        "aid": a.algo_id,
        "at": "CONDITIONAL",
        "o": a.order_type,
        "s": a.symbol,
        "S": a.side,
        "ps": "BOTH",
        "f": a.time_in_force,
        "q": s(a.quantity),
        "X": a.status,
        "ai": str(a.actual_order_id) if a.actual_order_id is not None else "",
        "ap": s(a.avg_price),
        "aq": s(a.executed_qty),
        "act": "MARKET" if a.actual_order_id is not None else "0",
        "tp": s(a.trigger_price or a.trailing_level),
        "p": "0",
        "V": "NONE",
        "wt": a.working_type,
        "pm": "NONE",
        "cp": a.close_position,
        "pP": False,
        "R": a.reduce_only,
        "tt": a.trigger_time,
        "gtd": 0,
    }
    if a.reject_reason:
        payload["rm"] = a.reject_reason
    if a.order_type == "TRAILING_STOP_MARKET":
        payload["AP"] = s(a.activate_price)
        payload["cr"] = s(a.callback_rate)
    return {"e": "ALGO_UPDATE", "T": event_time, "E": a.update_time, "o": payload}


def account_update(engine: MatchingEngine, account: Account, symbol: str, event_time: int) -> Json:
    p = account.positions.get(symbol) or Position(symbol)
    wallet = account.balances.get(SETTLEMENT_ASSET, Decimal(0))
    return {
        "e": "ACCOUNT_UPDATE",
        "E": event_time,
        "T": event_time,
        "a": {
            "m": "ORDER",
            "B": [{"a": SETTLEMENT_ASSET, "wb": s(wallet), "cw": s(wallet), "bc": "0"}],
            "P": [
                {
                    "s": symbol,
                    "pa": s(p.amount),
                    "ep": s(p.entry_price),
                    "bep": s(p.entry_price),
                    "cr": "0",
                    "up": s(engine.unrealized_pnl(p)),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            ],
        },
    }


def positions_summary(account: Account, engine: MatchingEngine) -> Mapping[str, Json]:
    """The `/_sim/positions` view: open positions keyed by symbol id, amounts positive."""
    return {
        p.symbol: {
            "side": "long" if p.amount > 0 else "short",
            "amount": float(abs(p.amount)),
            "entry_price": float(p.entry_price),
            "leverage": account.leverage_for(p.symbol),
        }
        for p in account.positions.values()
        if p.amount
    }


# ---- the synthetic book and the price streams ------------------------------------------------------

BOOK_LEVEL_QTY = Decimal(10)


def book_levels(market: MarketSpec, price: Decimal, levels: int) -> tuple[list[Decimal], list[Decimal]]:
    """A synthetic book around `price`, on the tick grid: bids below it, asks above, one tick apart.

    The engine does not match against it; it gives a caller checking the spread a sensible one.
    """
    tick = market.tick_size
    best_bid = round_down(price, tick)
    if best_bid == price:
        best_bid -= tick
    best_ask = round_up(price, tick)
    if best_ask == price:
        best_ask += tick
    best_bid = max(best_bid, tick)
    return [best_bid - tick * i for i in range(levels) if best_bid - tick * i > 0], [
        best_ask + tick * i for i in range(levels)
    ]


def book_ticker(market: MarketSpec, price: Decimal, now: int) -> Json:
    bids, asks = book_levels(market, price, 1)
    return {
        "symbol": market.symbol,
        "bidPrice": s(bids[0]),
        "bidQty": s(BOOK_LEVEL_QTY),
        "askPrice": s(asks[0]),
        "askQty": s(BOOK_LEVEL_QTY),
        "time": now,
        "lastUpdateId": now,
    }


def book_ticker_event(market: MarketSpec, price: Decimal, now: int) -> Json:
    top = book_ticker(market, price, now)
    return {
        "e": "bookTicker",
        "u": now,
        "E": now,
        "T": now,
        "s": market.symbol,
        "b": top["bidPrice"],
        "B": top["bidQty"],
        "a": top["askPrice"],
        "A": top["askQty"],
    }


FUNDING_INTERVAL_MS = 8 * 3_600_000
ZERO_RATE = "0.00000000"  # the simulator charges no funding; premiumIndex says the same


def next_funding_time(now: int) -> int:
    return now - now % FUNDING_INTERVAL_MS + FUNDING_INTERVAL_MS


def mark_price_event(symbol: str, price: Decimal, now: int) -> Json:
    text = s(price)
    return {
        "e": "markPriceUpdate",
        "E": now,
        "s": symbol,
        "p": text,
        "i": text,
        "P": text,
        "r": ZERO_RATE,
        "T": next_funding_time(now),
    }


def agg_trade_event(symbol: str, trade_id: int, price: Decimal, qty: Decimal, now: int) -> Json:
    """One aggregated market trade: the simulated market's own move to `price` (not a user's fill)."""
    return {
        "e": "aggTrade",
        "E": now,
        "s": symbol,
        "a": trade_id,
        "p": s(price),
        "q": s(qty),
        "f": trade_id,
        "l": trade_id,
        "T": now,
        "m": False,
    }


def continuous_kline_event(symbol: str, interval: str, c: Candle, event_time: int) -> Json:
    k = dict(kline_event(symbol, interval, c, event_time)["k"])
    del k["s"]
    return {"e": "continuous_kline", "E": event_time, "ps": symbol, "ct": "PERPETUAL", "k": k}


def funding_rate(symbol: str, funding_time: int, mark: Decimal) -> Json:
    return {"symbol": symbol, "fundingTime": funding_time, "fundingRate": ZERO_RATE, "markPrice": s(mark)}


def income(account: Account) -> list[Json]:
    """The account's income history from its fills: COMMISSION for each, REALIZED_PNL where non-zero."""
    rows: list[Json] = []
    for f in account.trades:
        entries = [("COMMISSION", -f.commission)]
        if f.realized_pnl:
            entries.insert(0, ("REALIZED_PNL", f.realized_pnl))
        for kind, amount in entries:
            rows.append(
                {
                    "symbol": f.symbol,
                    "incomeType": kind,
                    "income": s(amount),
                    "asset": SETTLEMENT_ASSET,
                    "info": kind,
                    "time": f.time,
                    "tranId": f.trade_id * 10 + (1 if kind == "COMMISSION" else 2),
                    "tradeId": str(f.trade_id),
                }
            )
    return rows
