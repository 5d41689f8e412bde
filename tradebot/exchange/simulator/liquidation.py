"""Liquidation prices: Binance's isolated-margin rule, pure arithmetic on one position.

Every simulated position is margined on its own (isolated), whatever margin type the account asked
for: its margin is the entry notional divided by the leverage, `WB = |Q| × EP / L`. With the
maintenance bracket of the entry notional (ratio `MMR`, amount `cum`), Binance's formula for one-way
mode gives the price at which the margin left equals the maintenance margin:

    long:  LP = (|Q| × EP − WB − cum) / (|Q| × (1 − MMR))
    short: LP = (|Q| × EP + WB + cum) / (|Q| × (1 + MMR))

When the mark price reaches LP the position is liquidated at its bankruptcy price (where the margin
left is zero: `EP × (1 ∓ 1/L)`), so a liquidation loses exactly the position's margin, never more.
The simulator's mark price is its last price, and a pushed candle's low/high count as marks.
"""

from __future__ import annotations

from decimal import Decimal

from tradebot.exchange.simulator.markets import MarketSpec, round_down, round_up

ZERO = Decimal(0)


def position_margin(amount: Decimal, entry_price: Decimal, leverage: int) -> Decimal:
    return abs(amount) * entry_price / leverage


def liquidation_price(market: MarketSpec, amount: Decimal, entry_price: Decimal, leverage: int) -> Decimal:
    """The mark price at which the position is liquidated (0: never, for a long that cannot be)."""
    if not amount:
        return ZERO
    qty = abs(amount)
    notional = qty * entry_price
    bracket = market.bracket_for(notional)
    margin = notional / leverage
    if amount > 0:
        price = (notional - margin - bracket.amount) / (qty * (1 - bracket.ratio))
    else:
        price = (notional + margin + bracket.amount) / (qty * (1 + bracket.ratio))
    return max(price, ZERO)


def bankruptcy_price(market: MarketSpec, amount: Decimal, entry_price: Decimal, leverage: int) -> Decimal:
    """Where the position's margin is used up, on the tick grid in the trader's favour (the loss is
    at most the margin)."""
    if amount > 0:
        return round_up(entry_price * (1 - Decimal(1) / leverage), market.tick_size)
    return round_down(entry_price * (1 + Decimal(1) / leverage), market.tick_size)


def crossed(amount: Decimal, liquidation: Decimal, low: Decimal, high: Decimal) -> bool:
    """Did marks from `low` to `high` reach the liquidation price of a position of `amount`?"""
    if amount > 0:
        return liquidation > 0 and low <= liquidation
    if amount < 0:
        return high >= liquidation
    return False
