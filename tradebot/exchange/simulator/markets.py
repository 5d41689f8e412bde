"""Static market definitions: the filters the simulator enforces and advertises in exchangeInfo."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One USD-M perpetual contract, with the numbers Binance publishes for it (rounded)."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_leverage: int
    initial_price: Decimal
    maint_margin_ratio: Decimal = Decimal("0.004")

    @property
    def price_precision(self) -> int:
        return _decimals(self.tick_size)

    @property
    def quantity_precision(self) -> int:
        return _decimals(self.step_size)


def decimal_str(value: Decimal) -> str:
    """Binance sends numbers as plain decimal strings ("0.001", never "1E-3")."""
    return format(value.normalize(), "f") if value else "0"


def to_grid(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`value` on the grid of multiples of `step` (a tick or lot step), rounded as asked.

    `quantize` alone is not enough: a tick of 0.10 has two decimals, yet 59274.67 is not on its grid.
    """
    return (value / step).quantize(Decimal(1), rounding=rounding) * step


def round_up(value: Decimal, step: Decimal) -> Decimal:
    return to_grid(value, step, ROUND_CEILING)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    return to_grid(value, step, ROUND_FLOOR)


def _decimals(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


# Figures close to the real exchange, so that precision and minimum-notional behaviour seen in tests is
# what a bot meets in production (BTC's 100 USDT minimum notional is the one that bites small accounts).
_KNOWN: dict[str, MarketSpec] = {
    "BTCUSDT": MarketSpec(
        symbol="BTCUSDT",
        base="BTC",
        quote="USDT",
        tick_size=Decimal("0.10"),
        step_size=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        max_qty=Decimal("1000"),
        min_notional=Decimal("100"),
        max_leverage=125,
        initial_price=Decimal("60000"),
    ),
    "ETHUSDT": MarketSpec(
        symbol="ETHUSDT",
        base="ETH",
        quote="USDT",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        max_qty=Decimal("10000"),
        min_notional=Decimal("20"),
        max_leverage=100,
        initial_price=Decimal("3000"),
    ),
}

QUOTE_ASSETS = ("USDT",)


def market_spec(symbol: str) -> MarketSpec:
    """The spec for a symbol: a known one, or generic filters for any other `<BASE>USDT` symbol."""
    symbol = symbol.upper()
    known = _KNOWN.get(symbol)
    if known is not None:
        return known
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return MarketSpec(
                symbol=symbol,
                base=symbol[: -len(quote)],
                quote=quote,
                tick_size=Decimal("0.01"),
                step_size=Decimal("0.001"),
                min_qty=Decimal("0.001"),
                max_qty=Decimal("100000"),
                min_notional=Decimal("5"),
                max_leverage=50,
                initial_price=Decimal("100"),
            )
    raise ValueError(f"unsupported symbol {symbol!r}: the simulator lists USDT-margined perpetuals only")
