"""Wilder's RSI as TA-Lib computes it, with a vectorised face and an O(1) incremental face that
are bit-identical.

With ``n = period``, the change at candle ``t`` is ``close[t] - close[t-1]``; its gain is the
change when positive (else 0), its loss minus the change when negative (else 0). The first average
gain and loss (at candle ``n``) are the means of the first ``n`` gains and losses (summed left to
right); then ``avg <- (avg * (n - 1) + x) / n``; ``RSI = 100 * (gain / (gain + loss))``, and 50
when both are 0 (TA-Lib says 0 there). Defined from candle ``n``.

Wilder's smoothing is an EMA with ``alpha = 1/n``, i.e. :mod:`tradebot.strategies.ema`'s EMA of
period ``2n - 1``, started from the mean instead of that EMA's own seed. Both faces realise the
start the same way: the EMA of ``2n - 1`` copies of the mean followed by the later gains (an EMA of
equal inputs is exactly that input, so its seed is the mean itself). Reusing that EMA keeps its
guarantees: the same floating-point operations in both faces, and a flat market (all changes 0)
gives averages of exactly 0 and an RSI of exactly 50.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.ema import EmaState, ema
from tradebot.strategies.ema_cross import ema_warmup_candles
from tradebot.strategies.targets import float_field, int_field

__all__ = ["RsiState", "rsi", "rsi_from_averages", "rsi_warmup_candles", "wilder_averages"]

_OWNER: Final = "RSI"


def _ema_period(period: int) -> int:
    return 2 * period - 1


def _check_period(period: int) -> None:
    if isinstance(period, bool) or not isinstance(period, int) or period < 2:
        raise ValueError(f"RSI period must be an integer >= 2, got {period!r}")


def _smoothed(x: NDArray[np.float64], period: int) -> NDArray[np.float64]:
    """Wilder's averages of ``x``, the gains or losses of the changes ``1..n-1`` of ``n`` closes,
    as an array aligned with the closes: NaN before index ``period``, the mean of the first
    ``period`` values there, then the average after each later one."""
    p = _ema_period(period)
    seed = float(np.cumsum(x[:period])[-1]) / period
    z = np.empty(p + x.shape[0] - period)
    z[:p] = seed
    z[p:] = x[period:]
    # ema() leaves its first p - 1 values NaN: the p - 1 - period before index period are those
    return ema(z, p)[p - 1 - period :]


def wilder_averages(close: NDArray[np.float64], period: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Average gain and average loss per candle (NaN before index ``period``)."""
    _check_period(period)
    close = np.ascontiguousarray(close, dtype=np.float64)
    n = close.shape[0]
    if n <= period:
        return np.full(n, np.nan), np.full(n, np.nan)
    # x[t-1] - x[t] is exactly -(x[t] - x[t-1]), and +0.0 for equal closes, as in RsiState
    gain = _smoothed(np.maximum(close[1:] - close[:-1], 0.0), period)
    loss = _smoothed(np.maximum(close[:-1] - close[1:], 0.0), period)
    return gain, loss


def rsi_from_averages(gain: NDArray[np.float64], loss: NDArray[np.float64]) -> NDArray[np.float64]:
    total = gain + loss
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 * (gain / total)
    value[total == 0.0] = 50.0
    return value


def rsi(close: NDArray[np.float64], period: int) -> NDArray[np.float64]:
    """RSI per candle (NaN before index ``period``)."""
    return rsi_from_averages(*wilder_averages(close, period))


def _rsi_value(gain: float, loss: float) -> float:
    total = gain + loss
    return 50.0 if total == 0.0 else 100.0 * (gain / total)


def _seeded(mean: float, period: int) -> EmaState:
    p = _ema_period(period)
    state = EmaState.start(p)
    for _ in range(p):
        state = state.update(mean)
    return state


@dataclass(frozen=True, slots=True)
class RsiState:
    """Incremental RSI: ``count`` closes consumed, the last one ``last``; until the averages start
    (``count == period + 1``) the sums of the gains and losses so far, then the two EMAs."""

    period: int
    count: int = 0
    last: float = 0.0
    gain_sum: float = 0.0
    loss_sum: float = 0.0
    gain: EmaState | None = None
    loss: EmaState | None = None

    @classmethod
    def start(cls, period: int) -> RsiState:
        _check_period(period)
        return cls(period)

    @property
    def value(self) -> float | None:
        """The RSI after the last close (``None`` while undefined)."""
        if self.gain is None or self.loss is None or self.gain.value is None or self.loss.value is None:
            return None
        return _rsi_value(self.gain.value, self.loss.value)

    def update(self, x: float) -> RsiState:
        """The state after consuming the close ``x`` (finite)."""
        x = float(x)
        period = self.period
        if self.count == 0:
            return RsiState(period, 1, x)
        change = x - self.last
        g = change if change > 0.0 else 0.0
        lo = -change if change < 0.0 else 0.0
        if self.gain is not None and self.loss is not None:
            return RsiState(
                period, self.count + 1, x, self.gain_sum, self.loss_sum, self.gain.update(g), self.loss.update(lo)
            )
        gain_sum = self.gain_sum + g
        loss_sum = self.loss_sum + lo
        if self.count < period:
            return RsiState(period, self.count + 1, x, gain_sum, loss_sum)
        return RsiState(
            period,
            self.count + 1,
            x,
            gain_sum,
            loss_sum,
            _seeded(gain_sum / period, period),
            _seeded(loss_sum / period, period),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "count": self.count,
            "last": self.last,
            "gain_sum": self.gain_sum,
            "loss_sum": self.loss_sum,
            "gain": None if self.gain is None else self.gain.to_dict(),
            "loss": None if self.loss is None else self.loss.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RsiState:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on anything inconsistent."""
        period = int_field(raw, "period", _OWNER)
        _check_period(period)
        count = int_field(raw, "count", _OWNER)
        if count < 0:
            raise ValueError(f"RSI state count must be >= 0, got {count}")
        averages: list[EmaState | None] = []
        for key in ("gain", "loss"):
            sub = raw.get(key)
            if sub is None:
                averages.append(None)
                continue
            if not isinstance(sub, Mapping):
                raise ValueError(f"RSI state field {key!r} must be an object or null")
            state = EmaState.from_dict(sub)
            if state.period != _ema_period(period) or state.count != count - 1 - period + state.period:
                raise ValueError(f"RSI state field {key!r} does not fit period {period} and count {count}")
            averages.append(state)
        gain, loss = averages
        if (gain is None) != (count <= period) or (loss is None) != (count <= period):
            raise ValueError(f"RSI state averages are inconsistent with count {count}")
        return cls(
            period,
            count,
            float_field(raw, "last", _OWNER),
            float_field(raw, "gain_sum", _OWNER),
            float_field(raw, "loss_sum", _OWNER),
            gain,
            loss,
        )


def rsi_warmup_candles(period: int, tolerance: float = 1e-12) -> int:
    """Candles for a fresh RSI state to equal the full history's: ``period + 1`` to start the
    averages, then the least ``k`` updates with ``(1 - 1/period)**k < tolerance``."""
    _check_period(period)
    p = _ema_period(period)
    return period + 1 + ema_warmup_candles(p, tolerance) - p
