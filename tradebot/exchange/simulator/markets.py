"""Static market definitions: the filters the simulator enforces and advertises in exchangeInfo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal


@dataclass(frozen=True, slots=True)
class Bracket:
    """One of Binance's notional brackets: from `floor` (inclusive) to `cap`, at most
    `max_leverage`, maintenance margin `notional × ratio − amount`.

    `amount` (Binance's "cum", the maintenance amount) makes the margin continuous across bracket
    edges: `amount_i = amount_{i-1} + floor_i × (ratio_i − ratio_{i-1})`; `brackets()` computes it."""

    number: int
    floor: Decimal
    cap: Decimal
    max_leverage: int
    ratio: Decimal
    amount: Decimal


def brackets(rows: Sequence[tuple[int, int, int, str]]) -> tuple[Bracket, ...]:
    """Brackets from `(floor, cap, max_leverage, ratio)` rows in notional order."""
    out: list[Bracket] = []
    amount = Decimal(0)
    previous_ratio = Decimal(0)
    for number, (floor, cap, leverage, ratio_text) in enumerate(rows, start=1):
        ratio = Decimal(ratio_text)
        amount += Decimal(floor) * (ratio - previous_ratio)
        out.append(Bracket(number, Decimal(floor), Decimal(cap), leverage, ratio, amount))
        previous_ratio = ratio
    return tuple(out)


# Binance's published USD-M brackets for the two markets simulated by name (BTCUSDT's as of 2025,
# ETHUSDT's close to it) and a small-cap-like table for every other symbol.
BTC_BRACKETS = brackets(
    [
        (0, 50_000, 125, "0.004"),
        (50_000, 600_000, 100, "0.005"),
        (600_000, 3_000_000, 75, "0.0065"),
        (3_000_000, 12_000_000, 50, "0.01"),
        (12_000_000, 70_000_000, 25, "0.02"),
        (70_000_000, 100_000_000, 20, "0.025"),
        (100_000_000, 230_000_000, 10, "0.05"),
        (230_000_000, 480_000_000, 5, "0.1"),
        (480_000_000, 600_000_000, 4, "0.125"),
        (600_000_000, 800_000_000, 3, "0.15"),
        (800_000_000, 1_200_000_000, 2, "0.25"),
        (1_200_000_000, 1_800_000_000, 1, "0.5"),
    ]
)
ETH_BRACKETS = brackets(
    [
        (0, 50_000, 100, "0.005"),
        (50_000, 600_000, 75, "0.0065"),
        (600_000, 3_000_000, 50, "0.01"),
        (3_000_000, 12_000_000, 25, "0.02"),
        (12_000_000, 50_000_000, 20, "0.025"),
        (50_000_000, 65_000_000, 10, "0.05"),
        (65_000_000, 150_000_000, 5, "0.1"),
        (150_000_000, 320_000_000, 4, "0.125"),
        (320_000_000, 400_000_000, 3, "0.15"),
        (400_000_000, 530_000_000, 2, "0.25"),
        (530_000_000, 800_000_000, 1, "0.5"),
    ]
)
GENERIC_BRACKETS = brackets(
    [
        (0, 5_000, 50, "0.01"),
        (5_000, 25_000, 20, "0.025"),
        (25_000, 100_000, 10, "0.05"),
        (100_000, 250_000, 5, "0.1"),
        (250_000, 1_000_000, 2, "0.125"),
        (1_000_000, 50_000_000, 1, "0.5"),
    ]
)


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
    brackets: tuple[Bracket, ...] = field(default=GENERIC_BRACKETS)

    def bracket_for(self, notional: Decimal) -> Bracket:
        """The bracket a position of `notional` (absolute, in USDT) falls in; the last one beyond it."""
        for bracket in self.brackets:
            if notional < bracket.cap:
                return bracket
        return self.brackets[-1]

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        bracket = self.bracket_for(abs(notional))
        return max(abs(notional) * bracket.ratio - bracket.amount, Decimal(0))

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
        brackets=BTC_BRACKETS,
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
        brackets=ETH_BRACKETS,
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
