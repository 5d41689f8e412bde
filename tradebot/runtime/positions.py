"""Position accounting. Pure: a position and a fill in, the new position and realised PnL out.

The same rules serve every account (live or paper): a closing fill realises PnL against the entry
price and shrinks the position; an opening fill starts a position or adds to it at a weighted
entry. The bot's book is compared with the account's by `differs`, with a tolerance for float
noise only (the account's word wins when they differ).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Below this a remaining size is float noise of a full close, not a position.
DUST = 1e-12
# Relative tolerance of `differs`: sizes round-trip through decimals and JSON.
SIZE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class Position:
    side: str | None  # "long" | "short" | None when flat
    size: float
    entry_price: float | None

    @property
    def flat(self) -> bool:
        return self.side is None or self.size == 0


FLAT = Position(None, 0.0, None)


def side_of(order_side: str) -> str:
    """The position an order side opens: "buy" → "long", "sell" → "short"."""
    return "long" if order_side == "buy" else "short"


def closing_side(position: Position) -> str:
    """The order side that reduces this position."""
    return "sell" if position.side == "long" else "buy"


def apply_fill(position: Position, side: str, filled: float, price: float, *, closing: bool) -> tuple[Position, float]:
    """(position after the fill, realised PnL). A fill with no amount or no price changes nothing."""
    if filled <= 0 or price <= 0:
        return position, 0.0
    if closing:
        if position.flat or not position.entry_price:
            return position, 0.0
        closed = min(filled, position.size)
        realized = (price - position.entry_price) * closed * _direction(position)
        remaining = position.size - closed
        return (FLAT if remaining <= DUST else replace(position, size=remaining)), realized
    new_side = side_of(side)
    if position.flat:
        return Position(new_side, filled, price), 0.0
    size = position.size + filled  # adding to a position: weighted entry
    entry = ((position.entry_price or price) * position.size + price * filled) / size
    return Position(new_side, size, entry), 0.0


def unrealized_pnl(position: Position, price: float) -> float:
    if position.flat or not position.entry_price:
        return 0.0
    return (price - position.entry_price) * position.size * _direction(position)


def differs(a: Position, b: Position) -> bool:
    """Do two reports of one position disagree beyond float noise (side, or size)?"""
    if a.flat and b.flat:
        return False
    if a.flat != b.flat or a.side != b.side:
        return True
    return abs(a.size - b.size) > SIZE_TOLERANCE * max(1.0, a.size)


def describe(p: Position) -> str:
    return "flat" if p.flat else f"{p.side} {p.size:g} @ {p.entry_price or 0:g}"


def _direction(position: Position) -> float:
    return 1.0 if position.side == "long" else -1.0
