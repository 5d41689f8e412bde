"""Risk rules checked before every order. Pure: numbers in, verdicts out.

Risk-reducing orders (closing a position) are never blocked by a limit; limits only stop new
exposure. The verdicts carry readable messages because they end up in the bot's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from tradebot.statuses import PositionSide
from tradebot.strategies.exit_reason import ExitReason as ExitReason  # re-exported: check_exit returns it


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_daily_trades: int
    max_daily_loss_pct: float
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None


@dataclass(frozen=True, slots=True)
class MarketLimits:
    amount_step: float  # the amount must be a multiple of this
    min_amount: float
    min_notional: float = 0.0
    max_leverage: int = 125


def stop_levels(side: str, entry: float, limits: RiskLimits) -> tuple[float | None, float | None]:
    """(stop price, take-profit price) for a position, on price moves (not leveraged returns)."""
    sign = 1.0 if side == PositionSide.LONG else -1.0
    stop = entry * (1 - sign * limits.stop_loss_pct / 100) if limits.stop_loss_pct else None
    take = entry * (1 + sign * limits.take_profit_pct / 100) if limits.take_profit_pct else None
    return stop, take


def check_exit(side: str, entry: float, low: float, high: float, limits: RiskLimits) -> ExitReason | None:
    """Did this closed candle touch the stop or the target? The stop wins when both did (conservative)."""
    stop, take = stop_levels(side, entry, limits)
    if side == PositionSide.LONG:
        if stop is not None and low <= stop:
            return ExitReason.STOP_LOSS
        if take is not None and high >= take:
            return ExitReason.TAKE_PROFIT
    else:
        if stop is not None and high >= stop:
            return ExitReason.STOP_LOSS
        if take is not None and low <= take:
            return ExitReason.TAKE_PROFIT
    return None


def daily_trades_reached(trades_today: int, limits: RiskLimits) -> bool:
    return trades_today >= limits.max_daily_trades


def daily_loss_breached(daily_pnl: float, day_start_balance: float, limits: RiskLimits) -> bool:
    if day_start_balance <= 0:
        return False
    return daily_pnl <= -day_start_balance * limits.max_daily_loss_pct / 100


@dataclass(frozen=True, slots=True)
class Sizing:
    amount: float
    reason: str | None  # why no order, when amount is 0


def position_size(
    free_balance: float,
    order_size_pct: float,
    leverage: int,
    price: float,
    market: MarketLimits,
) -> Sizing:
    """`order_size_pct` of the free balance times leverage, rounded down to the amount step."""
    if not (math.isfinite(price) and price > 0):
        return Sizing(0.0, f"no valid price ({price})")
    if free_balance <= 0:
        return Sizing(0.0, "no free balance")
    raw = free_balance * order_size_pct / 100 * leverage / price
    amount = floor_to_step(raw, market.amount_step)
    if amount <= 0 or amount < market.min_amount:
        return Sizing(
            0.0,
            f"order size {raw:.8g} is below the market minimum {market.min_amount:g} "
            f"(free balance {free_balance:.2f}, {order_size_pct:g}% at {leverage}x, price {price:g})",
        )
    if market.min_notional and amount * price < market.min_notional:
        return Sizing(
            0.0, f"order value {amount * price:.2f} is below the market minimum notional {market.min_notional:g}"
        )
    return Sizing(amount, None)


def floor_to_step(value: float, step: float) -> float:
    """Round down to a multiple of `step` in decimal, so 0.3 / 0.1 does not become 2.9999."""
    if step <= 0:
        return value
    d_step = Decimal(str(step))
    units = (Decimal(str(value)) / d_step).to_integral_value(rounding=ROUND_DOWN)
    return float(units * d_step)


def leverage_error(leverage: int, market: MarketLimits) -> str | None:
    if not 1 <= leverage <= market.max_leverage:
        return f"leverage {leverage} is outside this market's 1-{market.max_leverage}"
    return None
