"""Protective orders on the exchange: place, find and cancel a position's stop loss, take profit and
trailing stop through ccxt, so that the exchange protects the position while no replica runs.

They are reduce-only conditional orders: STOP_MARKET, TAKE_PROFIT_MARKET and TRAILING_STOP_MARKET
(`callbackRate` in percent). ccxt's `binanceusdm` sends them to Binance's algo-order API
(`POST /fapi/v1/algoOrder`, `clientAlgoId`, `triggerPrice`) when the params name a trigger
(`stopLossPrice`, `takeProfitPrice`, `trailingPercent`), and reads, lists and cancels them at the
algo endpoints when the call carries `trigger: True`; this module passes exactly those params.

Client ids are deterministic (`protective_client_id`): the same bot, entry and revision always give
the same id, so an owner that takes over finds the orders its predecessor placed, and an unclear
outcome of a placement is settled by querying that id, never by sending again. Errors leave as
tradebot's (`tradebot.exchange.errors`): Rejected for a stop that would trigger at once or a
duplicate id, OrderNotFound, Retryable, InvalidCredentials.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ccxt.async_support.base.exchange import Exchange

from tradebot.exchange.errors import OrderNotFound, Retryable, translated

MAX_CLIENT_ID_LEN = 36  # Binance's limit for clientAlgoId, as for newClientOrderId
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# The algo order types this module places, by kind (read back from `info.orderType`).
_ORDER_TYPES = {
    "STOP_MARKET": "stop_loss",
    "TAKE_PROFIT_MARKET": "take_profit",
    "TRAILING_STOP_MARKET": "trailing_stop",
}


class ProtectiveKind(StrEnum):
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TRAILING_STOP = "trailing_stop"

    @property
    def letter(self) -> str:
        return {"stop_loss": "s", "take_profit": "t", "trailing_stop": "r"}[self.value]


def _base36(n: int) -> str:
    out = []
    while True:
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
        if not n:
            return "".join(reversed(out))


def protective_client_id(bot_id: int, entry_seq: int, kind: ProtectiveKind, revision: int = 0) -> str:
    """`tb<bot>-<entry seq><kind letter><revision>`: one dash, so never equal to an entry or exit id
    (`tb<bot>-<fence>-<seq><leg>`, runtime.client_order_id). The fence is left out on purpose: a new
    owner must find the orders placed under the previous one. `revision` counts re-placements of the
    same entry's protection (new settings, a restore): Binance refuses an id reused while its first
    order is open, and the simulator refuses it for good."""
    if bot_id < 1 or entry_seq < 0 or revision < 0:
        raise ValueError(f"invalid protective order id parts: bot={bot_id} seq={entry_seq} revision={revision}")
    readable = f"tb{bot_id}-{entry_seq}{kind.letter}{revision}"
    if len(readable) <= MAX_CLIENT_ID_LEN:
        return readable
    compact = f"tb{_base36(bot_id)}-{_base36(entry_seq)}{kind.letter}{_base36(revision)}"
    if len(compact) <= MAX_CLIENT_ID_LEN:
        return compact
    digest = hashlib.blake2b(f"{bot_id}-{entry_seq}-{kind.letter}-{revision}".encode(), digest_size=15).hexdigest()
    return f"tb{digest}{kind.letter}"


def protective_prices(
    side: str, entry_price: float, stop_loss_pct: float | None, take_profit_pct: float | None
) -> tuple[float | None, float | None]:
    """CONTRACT.md's levels: entry × (1 ∓ pct/100) for a long's stop / take profit, mirrored for a short."""
    sign = 1.0 if side == "long" else -1.0
    stop = entry_price * (1 - sign * stop_loss_pct / 100) if stop_loss_pct else None
    take = entry_price * (1 + sign * take_profit_pct / 100) if take_profit_pct else None
    return stop, take


@dataclass(frozen=True, slots=True)
class ProtectiveSpec:
    """One protective order to place for a position of `position_side` ("long"/"short")."""

    kind: ProtectiveKind
    symbol: str  # ccxt's unified symbol, e.g. "BTC/USDT:USDT"
    position_side: str
    amount: float  # base quantity; the exchange clamps a reduce-only order to the position
    client_order_id: str
    stop_price: float | None = None  # stop loss / take profit trigger
    callback_rate: float | None = None  # trailing stop, percent (0.1 to 10 on Binance)
    activation_price: float | None = None  # trailing stop: trail from this price on (None: at once)

    def __post_init__(self) -> None:
        if self.position_side not in ("long", "short"):
            raise ValueError(f"position_side must be long or short, got {self.position_side!r}")
        if not self.amount > 0:
            raise ValueError("amount must be > 0")
        if self.kind is ProtectiveKind.TRAILING_STOP:
            if self.callback_rate is None or not self.callback_rate > 0:
                raise ValueError("a trailing stop needs a callback_rate > 0")
        elif self.stop_price is None or not self.stop_price > 0:
            raise ValueError(f"a {self.kind} order needs a stop_price > 0")

    @property
    def order_side(self) -> str:
        return "sell" if self.position_side == "long" else "buy"


@dataclass(frozen=True, slots=True)
class ProtectiveOrder:
    """A protective order as the exchange reports it."""

    kind: ProtectiveKind | None  # None: a conditional order of a type this module does not place
    client_order_id: str
    exchange_id: str
    symbol: str
    side: str  # "buy" / "sell"
    amount: float
    stop_price: float | None
    callback_rate: float | None
    status: str  # ccxt's: "open" while it waits, "closed" once triggered and done, "canceled", "rejected"…
    filled: float
    average: float | None
    actual_order_id: str = ""  # the market order a trigger placed ("" until triggered): its fills carry the fee

    @property
    def is_open(self) -> bool:
        return self.status == "open"


def _params(spec: ProtectiveSpec) -> dict[str, Any]:
    params: dict[str, Any] = {"reduceOnly": True, "clientOrderId": spec.client_order_id}
    if spec.kind is ProtectiveKind.STOP_LOSS:
        params["stopLossPrice"] = spec.stop_price
    elif spec.kind is ProtectiveKind.TAKE_PROFIT:
        params["takeProfitPrice"] = spec.stop_price
    else:
        params["trailingPercent"] = spec.callback_rate
        if spec.activation_price is not None:
            params["trailingTriggerPrice"] = spec.activation_price
    return params


def _number(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number or None


def _parse(order: dict[str, Any]) -> ProtectiveOrder:
    info = order.get("info") or {}
    order_type = str(info.get("orderType") or info.get("type") or "").upper()
    kind = _ORDER_TYPES.get(order_type)
    return ProtectiveOrder(
        kind=ProtectiveKind(kind) if kind else None,
        client_order_id=str(order.get("clientOrderId") or info.get("clientAlgoId") or ""),
        exchange_id=str(order.get("id") or info.get("algoId") or ""),
        symbol=str(order.get("symbol") or ""),
        side=str(order.get("side") or str(info.get("side", "")).lower()),
        amount=float(order.get("amount") or 0.0),
        stop_price=_number(order.get("triggerPrice")) or _number(info.get("triggerPrice")),
        callback_rate=_number(info.get("callbackRate")),
        status=str(order.get("status") or ""),
        filled=_number(info.get("executedQty")) or 0.0,
        average=_number(info.get("avgPrice")),
        actual_order_id=str(info.get("actualOrderId") or ""),
    )


async def find(client: Exchange, symbol: str, client_order_id: str) -> ProtectiveOrder | None:
    """The protective order with that client id (in any status), or None if the exchange has none."""
    try:
        with translated():
            order = await client.fetch_order(None, symbol, params={"trigger": True, "clientOrderId": client_order_id})
    except OrderNotFound:
        return None
    return _parse(order)


async def place(client: Exchange, spec: ProtectiveSpec) -> ProtectiveOrder:
    """Places one reduce-only protective order. After an unclear outcome (a Retryable error: the
    request may have reached the exchange) the client id is queried: the order found is returned,
    and only when there is none does the Retryable leave, for the caller to try the same id again."""
    try:
        with translated():
            order = await client.create_order(spec.symbol, "market", spec.order_side, spec.amount, None, _params(spec))
    except Retryable:
        found = await find(client, spec.symbol, spec.client_order_id)
        if found is None:
            raise
        return found
    return _parse(order)


async def cancel(client: Exchange, symbol: str, client_order_id: str) -> bool:
    """Cancels a protective order by client id: True if this cancelled it, False if it was no longer
    open (triggered, cancelled before) or never placed. Other errors leave as tradebot's."""
    try:
        with translated():
            await client.cancel_order(None, symbol, params={"trigger": True, "clientOrderId": client_order_id})
    except OrderNotFound:
        return False
    return True


async def open_orders(client: Exchange, symbol: str) -> list[ProtectiveOrder]:
    """Every conditional order of the account waiting on `symbol` (whoever placed it)."""
    with translated():
        orders = await client.fetch_open_orders(symbol, params={"trigger": True})
    return [_parse(o) for o in orders]
