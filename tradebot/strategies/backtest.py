"""Vectorised backtest engine: numpy over bars and over trades, no per-bar Python loop.

Accounting (USD-M futures style, one position at a time):

- Signals: the target decided on candle ``t``'s close is executed at candle ``t+1``'s open. The
  position held during bar ``t`` is therefore the target of bar ``t-1`` (none during bar 0; "no
  target yet" counts as flat). A target on the last candle has no next open and is not executed.
- Fills: a buy fills at ``price * (1 + slippage_bps/1e4)``, a sell at ``price * (1 - bps/1e4)``.
  Every fill pays ``fee_rate * amount * fill_price`` out of the cash balance.
- Size: ``amount = balance * order_size_pct/100 * leverage / entry_fill_price`` where ``balance`` is
  the cash balance just before the entry (after all earlier realised PnL and fees). A reversal
  (long -> short or back) is two fills at the same open: the close, then the open sized on the
  balance after the close. PnL is ``amount * (exit - entry)`` for a long and the negative for a short.
- Stop loss / take profit (percent of the entry fill price, a price move, not a leveraged return),
  checked on every bar the position is held, the entry bar included. For a long:
  ``stop = entry * (1 - stop_loss_pct/100)``, ``take = entry * (1 + take_profit_pct/100)``
  (mirrored for a short). In order: the open at or through the stop exits at the open; else the
  open at or through the take-profit exits at the open; else ``low <= stop`` exits at ``stop``
  (when the bar also reaches ``take``, the stop is assumed first: conservative); else
  ``high >= take`` exits at ``take``. The exit is a market order, so slippage and fee apply.
- Liquidation (Binance's isolated-margin rule, one maintenance bracket): the position's margin is
  ``entry_notional / leverage``; its liquidation price is ``entry * (1 - 1/leverage) / (1 - mmr)``
  for a long and ``entry * (1 + 1/leverage) / (1 + mmr)`` for a short (``mmr`` =
  ``maintenance_margin_rate``, 0.4 % by default, BTCUSDT's first bracket; a 1x long has liquidation
  price 0 and is never liquidated). It is checked with the stops, on every bar held, the entry bar
  included. For a long, in order: the open at or through the liquidation price liquidates at once;
  the open through the stop or take profit exits there as above; then, as the price falls to the
  low, it meets the higher of the stop and the liquidation price first (the stop when they are
  equal); then the take profit. Mirrored for a short. A liquidation closes the position at its
  bankruptcy price ``entry * (1 - 1/leverage)`` (long; ``1 + 1/leverage`` short) with no slippage
  and no exit fee: the trade loses exactly its margin plus its entry fee. Its exit reason is
  ``liquidation``.
- A trade never takes more than the balance: if its loss and fees exceed the balance before it, the
  balance after it is 0 (its pnl is minus that balance) and the run ends (see Ruin).
- Re-entry after a stop loss / take profit / liquidation: the engine stays flat until the strategy's
  target next *changes*; if it changes to LONG or SHORT, that new signal is executed as usual (next
  open). A target that merely stays LONG after a stop never re-enters.
- End: a position still open after the last bar is closed at the last close (fee charged, no
  slippage: it is a valuation, not a market order), exit reason ``end``.
- Ruin: a trade leaving less than ``RUIN_FRACTION`` of the balance it started with (0 after a
  loss capped at the balance) ends the run: no later entries.

Equity is marked to market at every bar's close: ``cash + amount * (close - entry)`` for a long
(mirrored for a short); its last point is the final balance, after the closing fee.

Because each trade's entry and exit bars follow from the signal alone (stops only shorten a
trade), trades are found with array operations, and the balance evolves multiplicatively,
``balance_after = balance_before * m_i`` with ``m_i`` depending on prices only, so all balances are a
cumulative product.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.base import NO_TARGET, ParameterError, float_param
from tradebot.strategies.candles import Candles
from tradebot.strategies.exit_reason import ExitReason
from tradebot.strategies.metrics import CHUNK, EquityStats, EquitySummary

__all__ = [
    "BacktestSettings",
    "ExitReason",
    "Simulation",
    "TradeLog",
    "simulate",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# A trade that leaves less than this share of the balance it started with ends the run: what is
# left is rounding (a total loss computed as ±1e-14), and trading on it would size orders from noise.
RUIN_FRACTION: Final = 1e-6

@dataclass(frozen=True, slots=True)
class BacktestSettings:
    """Execution and account parameters of a backtest (validated on construction)."""

    initial_balance: float = 10_000.0
    fee_rate: float = 0.0005
    slippage_bps: float = 0.0
    order_size_pct: float = 10.0
    leverage: float = 1.0
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    maintenance_margin_rate: float = 0.004

    def __post_init__(self) -> None:
        raw = {name: getattr(self, name) for name in self.__dataclass_fields__}
        float_param(raw, "initial_balance", gt=0.0, le=1e15)
        float_param(raw, "fee_rate", ge=0.0, lt=0.1)
        float_param(raw, "slippage_bps", ge=0.0, lt=1000.0)
        float_param(raw, "order_size_pct", gt=0.0, le=100.0)
        float_param(raw, "leverage", ge=1.0, le=125.0)
        float_param(raw, "maintenance_margin_rate", ge=0.0, le=0.5)
        if self.stop_loss_pct is not None:
            float_param(raw, "stop_loss_pct", gt=0.0, lt=100.0)
        if self.take_profit_pct is not None:
            float_param(raw, "take_profit_pct", gt=0.0, le=1000.0)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> BacktestSettings:
        """Settings from a mapping with defaults for missing keys; raises ParameterError."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ParameterError(unknown[0], "is not a backtest setting")
        numbers = {k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in raw.items()}
        return cls(**numbers)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class TradeLog:
    """Round trips as columns (one entry per trade, in time order)."""

    entry_bar: IntArray
    exit_bar: IntArray
    side: NDArray[np.int8]  # +1 long, -1 short
    entry_price: FloatArray  # fill prices (slippage included)
    exit_price: FloatArray
    amount: FloatArray  # base-currency quantity, > 0
    entry_fee: FloatArray
    exit_fee: FloatArray
    pnl: FloatArray  # net of both fees
    balance_after: FloatArray  # cash balance after the exit
    exit_reason: NDArray[np.int8]  # ExitReason codes

    def __len__(self) -> int:
        return int(self.entry_bar.shape[0])

    @property
    def fees(self) -> FloatArray:
        return self.entry_fee + self.exit_fee


@dataclass(frozen=True, slots=True)
class Simulation:
    """The engine's output: trades, per-bar mark-to-market equity, its statistics and exposure."""

    settings: BacktestSettings
    trades: TradeLog
    equity: FloatArray  # at each bar's close; equity[-1] == final_balance
    final_balance: float
    bars_in_position: int
    equity_summary: EquitySummary


def held_positions(target: NDArray[np.int8]) -> NDArray[np.int8]:
    """Position the signal asks to hold during each bar: ``target`` shifted by one bar, with
    "no target" as flat."""
    n = target.shape[0]
    pos = np.empty(n, dtype=np.int8)
    if n:
        pos[0] = 0
        np.copyto(pos[1:], target[:-1])
        pos[pos == NO_TARGET] = 0
    return pos


def _position_changes(target: NDArray[np.int8]) -> tuple[IntArray, NDArray[np.int8]]:
    """Bars where the held position (see :func:`held_positions`) changes, and the new position
    there; computed chunk by chunk without bar-sized temporaries."""
    n = target.shape[0]
    found: list[IntArray] = []
    held = np.empty(min(CHUNK, max(n - 1, 0)), dtype=np.int8)
    changed = np.empty(held.shape[0], dtype=np.bool_)
    prev = 0  # flat during bar 0
    for a in range(1, n, CHUNK):  # bars a..b-1 hold target[a-1..b-2]
        b = min(n, a + CHUNK)
        m = b - a
        h = held[:m]
        src = target[a - 1 : b - 1]
        np.copyto(h, src)
        h[src == NO_TARGET] = 0
        ch = changed[:m]
        ch[0] = h[0] != prev
        np.not_equal(h[1:], h[:-1], out=ch[1:])
        idx = np.flatnonzero(ch)
        if idx.size:
            found.append(idx + a)
        prev = int(h[-1])
    starts = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
    dirs = target[starts - 1].copy()
    dirs[dirs == NO_TARGET] = 0
    return starts, dirs


def _chunks_of_segments(seg_start: IntArray, n: int) -> Iterator[tuple[int, int, int, int, IntArray]]:
    """For piecewise-constant data with segments starting at ``seg_start`` (``seg_start[0] == 0``,
    increasing): yields ``(a, b, i0, i1, lengths)`` per chunk of bars ``[a, b)``, where segments
    ``i0..i1-1`` cover the chunk with ``lengths`` bars each."""
    for a in range(0, n, CHUNK):
        b = min(n, a + CHUNK)
        i0 = int(np.searchsorted(seg_start, a, side="right")) - 1
        i1 = int(np.searchsorted(seg_start, b, side="left"))
        edges = np.empty(i1 - i0 + 1, dtype=np.int64)
        edges[0] = a
        edges[1:-1] = seg_start[i0 + 1 : i1]
        edges[-1] = b
        yield a, b, i0, i1, np.diff(edges)


def simulate(candles: Candles, target: NDArray[np.int8], settings: BacktestSettings) -> Simulation:
    """Runs the accounting described in the module docstring for the per-candle ``target`` codes
    (``Target`` values or ``NO_TARGET``, one per candle, decided at that candle's close)."""
    n = len(candles)
    target = np.asarray(target, dtype=np.int8)
    if target.shape != (n,):
        raise ValueError(f"target has shape {target.shape}, expected ({n},)")
    o, c = candles.open, candles.close
    slip = settings.slippage_bps / 1e4
    fee = settings.fee_rate
    phi = settings.order_size_pct / 100.0 * settings.leverage
    bal0 = float(settings.initial_balance)

    # --- Trades from the signal: maximal runs of a constant, non-flat held position.
    starts, dirs = _position_changes(target)
    if dirs.size and (int(dirs.min()) < -1 or int(dirs.max()) > 1):  # every held value is in dirs
        raise ValueError("target codes must be Target values (-1, 0, 1) or NO_TARGET")
    in_pos = dirs != 0
    entry_bar = starts[in_pos]
    # The run of a trade ends where the next run starts (or at n: still open after the last bar).
    run_end = np.empty_like(starts)
    run_end[:-1] = starts[1:]
    if run_end.size:
        run_end[-1] = n
    run_end = run_end[in_pos]
    side_i8 = dirs[in_pos]
    side = side_i8.astype(np.float64)
    k = entry_bar.shape[0]

    entry_px = o[entry_bar]
    if slip:
        entry_px *= 1.0 + side * slip
    # Signal exits at the open of run_end; only the last trade can run to the end instead.
    open_at_end = bool(k) and int(run_end[-1]) == n
    exit_bar = run_end.copy()
    reason = np.zeros(k, dtype=np.int8)  # ExitReason.SIGNAL
    if open_at_end:
        exit_bar[-1] = n - 1
        reason[-1] = ExitReason.END
    trigger_px = o[np.minimum(run_end, n - 1)]  # exit price before slippage
    if open_at_end:
        trigger_px[-1] = c[n - 1]

    sl_pct, tp_pct = settings.stop_loss_pct, settings.take_profit_pct
    inv_lev = 1.0 / settings.leverage
    mmr = settings.maintenance_margin_rate
    liq_px = entry_px * (1.0 - side * inv_lev) / (1.0 - side * mmr)
    # A 1x long cannot be liquidated (its liquidation price is 0): without stops there is nothing to find.
    can_liquidate = settings.leverage > 1.0 or bool(k and int(side_i8.min()) < 0)
    if k and (sl_pct is not None or tp_pct is not None or can_liquidate):
        _apply_stops(candles, starts, dirs, entry_bar, run_end, side, entry_px, sl_pct, tp_pct, liq_px,
                     exit_bar, reason, trigger_px)  # fmt: skip
    exit_px = trigger_px
    if slip:
        exit_px = trigger_px * (1.0 - side * slip)
        if k and reason[-1] == ExitReason.END:
            exit_px[-1] = trigger_px[-1]  # a valuation at the last close, not a market order
    liquidated = reason == ExitReason.LIQUIDATION
    if liquidated.any():
        exit_px[liquidated] = entry_px[liquidated] * (1.0 - side[liquidated] * inv_lev)  # bankruptcy price

    # --- Balances: balance_after_i = balance_before_i * m_i.
    rel = exit_px / entry_px
    m = rel - 1.0
    m *= side
    m -= fee * (1.0 + rel)
    m *= phi
    m += 1.0
    if liquidated.any():
        m[liquidated] = 1.0 - phi * (inv_lev + fee)  # the margin and the entry fee; no exit fee
    capped = m < 0.0  # the loss and fees exceed the balance: it ends at 0
    m[capped] = 0.0
    ruined = np.flatnonzero(m <= RUIN_FRACTION)
    if ruined.size:  # the balance is gone after that trade: no later entries
        keep = int(ruined[0]) + 1
        entry_bar, exit_bar, side_i8, side = entry_bar[:keep], exit_bar[:keep], side_i8[:keep], side[:keep]
        entry_px, exit_px, reason, m = entry_px[:keep], exit_px[:keep], reason[:keep], m[:keep]
        liquidated, capped = liquidated[:keep], capped[:keep]
        k = keep
    bal_after = np.cumprod(m)
    bal_after *= bal0
    bal_before = np.empty_like(bal_after)
    if k:
        bal_before[0] = bal0
        bal_before[1:] = bal_after[:-1]
    amount = bal_before * (phi / entry_px)
    entry_notional = amount * entry_px
    exit_notional = amount * exit_px
    entry_fee = fee * entry_notional
    exit_fee = fee * exit_notional
    exit_fee[liquidated] = 0.0
    pnl = exit_notional - entry_notional
    pnl *= side
    pnl -= entry_fee
    pnl -= exit_fee
    pnl[capped] = -bal_before[capped]
    final_balance = float(bal_after[-1]) if k else bal0

    trades = TradeLog(
        entry_bar=entry_bar,
        exit_bar=exit_bar,
        side=side_i8,
        entry_price=entry_px,
        exit_price=exit_px,
        amount=amount,
        entry_fee=entry_fee,
        exit_fee=exit_fee,
        pnl=pnl,
        balance_after=bal_after,
        exit_reason=reason,
    )

    # --- Bars held: a signal exit happens at the open of exit_bar (not held during it); a stop or
    # an end exit happens inside / after exit_bar (held during it).
    not_signal = reason != ExitReason.SIGNAL
    bars_in_position = int(np.sum(exit_bar - entry_bar)) + int(np.count_nonzero(not_signal))
    # Closes at which the position is open: before exit_bar for signal exits and stops, through
    # the last close for an end exit.
    open_until = exit_bar
    if k and reason[-1] == ExitReason.END:
        open_until = exit_bar.copy()
        open_until[-1] = n

    qty = side * amount
    equity, summary = _equity_curve(
        c, bal0, entry_bar, open_until, qty, bal_before - entry_fee - qty * entry_px, bal_after, final_balance
    )
    return Simulation(settings, trades, equity, final_balance, bars_in_position, summary)


def _apply_stops(
    candles: Candles,
    starts: IntArray,
    dirs: NDArray[np.int8],
    entry_bar: IntArray,
    run_end: IntArray,
    side: FloatArray,
    entry_px: FloatArray,
    sl_pct: float | None,
    tp_pct: float | None,
    liq: FloatArray,
    exit_bar: IntArray,
    reason: NDArray[np.int8],
    trigger_px: FloatArray,
) -> None:
    """Finds each trade's first stop-loss / take-profit / liquidation bar and rewrites its exit in
    place (a liquidation's trigger price is left for the caller: it exits at the bankruptcy price)."""
    n = len(candles)
    o, hi, lo = candles.open, candles.high, candles.low
    inf = np.inf
    long = side > 0
    if sl_pct is None:
        stop = np.where(long, -inf, inf)
    else:
        stop = entry_px * (1.0 - side * (sl_pct / 100.0))
    if tp_pct is None:
        take = np.where(long, inf, -inf)
    else:
        take = entry_px * (1.0 + side * (tp_pct / 100.0))
    # The adverse level met first: the stop or the liquidation price, whichever is nearer.
    adverse = np.where(long, np.maximum(stop, liq), np.minimum(stop, liq))
    # Per-segment thresholds: a bar hits when low <= low_level or high >= high_level. For a long
    # the low side is the adverse level and the high side the take-profit; for a short the other
    # way round. Flat segments get levels no price reaches.
    in_pos = dirs != 0
    seg_start = np.concatenate(([0], starts))
    levels = np.empty((seg_start.shape[0], 2))
    levels[:, 0] = -inf
    levels[:, 1] = inf
    levels[1:][in_pos, 0] = np.where(long, adverse, take)
    levels[1:][in_pos, 1] = np.where(long, take, adverse)
    found: list[IntArray] = []
    hit = np.empty(min(CHUNK, n), dtype=np.bool_)
    for a, b, i0, i1, lengths in _chunks_of_segments(seg_start, n):
        per_bar = np.repeat(levels[i0:i1], lengths, axis=0)
        h = hit[: b - a]
        np.less_equal(lo[a:b], per_bar[:, 0], out=h)
        h |= hi[a:b] >= per_bar[:, 1]
        idx = np.flatnonzero(h)
        if idx.size:
            found.append(idx + a)
    if not found:
        return
    hit_bars = np.concatenate(found)
    j = np.searchsorted(hit_bars, entry_bar)
    first = hit_bars[np.minimum(j, hit_bars.size - 1)]
    stopped = (j < hit_bars.size) & (first < run_end)
    if not stopped.any():
        return
    idx = np.flatnonzero(stopped)
    k = first[idx]
    is_long = long[idx]
    sl, tp, lq, adv = stop[idx], take[idx], liq[idx], adverse[idx]
    ok = o[k]
    gap_liq = np.where(is_long, ok <= lq, ok >= lq)
    gap_sl = ~gap_liq & np.where(is_long, ok <= sl, ok >= sl)
    gap_tp = ~gap_liq & ~gap_sl & np.where(is_long, ok >= tp, ok <= tp)
    touch_adverse = ~gap_liq & ~gap_sl & ~gap_tp & np.where(is_long, lo[k] <= adv, hi[k] >= adv)
    stop_first = np.where(is_long, sl >= lq, sl <= lq)
    by_sl = gap_sl | (touch_adverse & stop_first)
    by_liq = gap_liq | (touch_adverse & ~stop_first)
    exit_bar[idx] = k
    reason[idx] = np.where(
        by_liq, ExitReason.LIQUIDATION, np.where(by_sl, ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT)
    )
    trigger_px[idx] = np.where(gap_sl | gap_tp, ok, np.where(by_sl, sl, tp))


def _equity_curve(
    close: FloatArray,
    bal0: float,
    entry_bar: IntArray,
    open_until: IntArray,
    qty: FloatArray,
    base_in_trade: FloatArray,
    bal_after: FloatArray,
    final_balance: float,
) -> tuple[FloatArray, EquitySummary]:
    """Mark-to-market equity per close, ``base + qty * close`` with piecewise-constant ``base`` and
    ``qty`` that change at entries (bar ``entry_bar``) and exits (bar ``open_until``), and its
    statistics, chunk by chunk while each chunk is in cache."""
    n = close.shape[0]
    k = entry_bar.shape[0]
    # Events in time order: entry_0, exit_0, entry_1, exit_1, ... (an exit never precedes its
    # entry; a reversal's exit and next entry share a bar and the entry, listed later, wins).
    bars = np.empty(2 * k, dtype=np.int64)
    bars[0::2] = entry_bar
    bars[1::2] = open_until
    vals = np.empty((2 * k + 1, 2))  # (base, qty) per segment
    vals[0] = (bal0, 0.0)
    vals[1::2, 0] = base_in_trade
    vals[1::2, 1] = qty
    vals[2::2, 0] = bal_after
    vals[2::2, 1] = 0.0
    keep = np.ones(2 * k, dtype=np.bool_)
    np.not_equal(bars[:-1], bars[1:], out=keep[:-1])
    if k and bars[-1] >= n:  # only the last exit can lie after the last bar
        keep[-1] = False
    if keep.all():
        seg_start = np.empty(2 * k + 1, dtype=np.int64)
        seg_start[0] = 0
        seg_start[1:] = bars
    else:
        kept = np.flatnonzero(keep)
        seg_start = np.empty(kept.shape[0] + 1, dtype=np.int64)
        seg_start[0] = 0
        seg_start[1:] = bars[kept]
        rows = np.empty(kept.shape[0] + 1, dtype=np.int64)
        rows[0] = 0
        np.add(kept, 1, out=rows[1:])
        vals = vals.take(rows, axis=0)
    equity = np.empty(n)
    stats = EquityStats()
    for a, b, i0, i1, lengths in _chunks_of_segments(seg_start, n):
        per_bar = np.repeat(vals[i0:i1], lengths, axis=0)
        out = equity[a:b]
        np.multiply(per_bar[:, 1], close[a:b], out=out)
        out += per_bar[:, 0]
        if b == n:
            out[-1] = final_balance
        stats.update(out)
    return equity, stats.summary()
