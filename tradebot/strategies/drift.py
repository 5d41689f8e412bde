"""Live versus backtest drift: the fills a replay of a bot's own candles expected, compared fill by
fill with the fills the bot recorded. Pure (no clock, no I/O): the domain layer loads the candles
and trades and stores the report.

A fill is keyed by the candle whose close decided it (``decided_at``, that candle's open time) and
its side. The backtest engine fills a signal at the next candle's open; a live bot sends its
order right after the deciding close, so both sides of a matched pair answer the same decision.

- matched: a recorded fill with the same (decided_at, side) as an expected one (in order, so a
  reversal's two same-side legs pair with the replay's exit and entry);
- missing: the replay traded, the bot did not (a signal the bot skipped: a pause, a rejection, an
  outage); extra: the bot traded, the replay did not (a manual order, a catch-up, a bug).

Sizes differ for reasons that are not drift (the live balance is the exchange's, not the replay's),
so every expected figure of a matched fill is taken at the bot's own amount: a round trip's PnL is
linear in its amount, which makes that exact. Slippage is in basis points of the expected price,
positive when the bot got the worse price (paid more on a buy, got less on a sell). The expected
fee is ``fee_rate`` times the fill's notional at the expected price.

The PnL gap is live net PnL minus expected net PnL over the window (realised PnL minus fees of the
fills in it; an unknown live fee counts as 0 and is counted in ``fees_unknown``), also in basis
points of the traded notional, a measure that does not depend on the account's size.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from tradebot.statuses import DriftLineStatus as LineStatus
from tradebot.strategies.backtest import Simulation
from tradebot.strategies.candles import Candles
from tradebot.strategies.exit_reason import ExitReason

__all__ = ["DriftLine", "DriftReport", "DriftSummary", "Fill", "LineStatus", "compare", "gap_warning", "replay_fills"]

BPS: Final = 1e4


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill, expected or recorded. ``realized_pnl`` is before fees (non-zero on closing fills)."""

    decided_at: int  # open time (ms) of the candle whose close decided it
    side: str  # "buy" | "sell"
    price: float
    amount: float
    fee: float | None  # None: the exchange has not reported it yet
    realized_pnl: float = 0.0
    trade_id: int | None = None


@dataclass(frozen=True, slots=True)
class DriftLine:
    decided_at: int
    side: str
    status: LineStatus
    amount: float  # the bot's amount when it traded, else the replay's
    expected_price: float | None
    actual_price: float | None
    slippage_bps: float | None
    expected_fee: float | None
    actual_fee: float | None
    fee_difference: float | None
    trade_id: int | None


@dataclass(frozen=True, slots=True)
class DriftSummary:
    expected_fills: int
    actual_fills: int
    matched: int
    missing_signals: int
    extra_signals: int
    mean_slippage_bps: float | None  # over matched fills
    max_slippage_bps: float | None  # the largest in absolute value, with its sign
    expected_fees: float
    actual_fees: float
    fee_difference: float
    fees_unknown: int
    expected_net_pnl: float
    live_net_pnl: float
    pnl_gap: float  # live minus expected
    traded_notional: float
    pnl_gap_bps: float  # of traded_notional (0 when nothing traded)

    @property
    def signal_differences(self) -> int:
        return self.missing_signals + self.extra_signals


@dataclass(frozen=True, slots=True)
class DriftReport:
    summary: DriftSummary
    lines: tuple[DriftLine, ...]

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "summary": {
                "expected_fills": s.expected_fills,
                "actual_fills": s.actual_fills,
                "matched": s.matched,
                "missing_signals": s.missing_signals,
                "extra_signals": s.extra_signals,
                "signal_differences": s.signal_differences,
                "mean_slippage_bps": s.mean_slippage_bps,
                "max_slippage_bps": s.max_slippage_bps,
                "expected_fees": s.expected_fees,
                "actual_fees": s.actual_fees,
                "fee_difference": s.fee_difference,
                "fees_unknown": s.fees_unknown,
                "expected_net_pnl": s.expected_net_pnl,
                "live_net_pnl": s.live_net_pnl,
                "pnl_gap": s.pnl_gap,
                "traded_notional": s.traded_notional,
                "pnl_gap_bps": s.pnl_gap_bps,
            },
            "trades": [
                {
                    "decided_at": line.decided_at,
                    "side": line.side,
                    "status": line.status.value,
                    "amount": line.amount,
                    "expected_price": line.expected_price,
                    "actual_price": line.actual_price,
                    "slippage_bps": line.slippage_bps,
                    "expected_fee": line.expected_fee,
                    "actual_fee": line.actual_fee,
                    "fee_difference": line.fee_difference,
                    "trade_id": line.trade_id,
                }
                for line in self.lines
            ],
        }


def replay_fills(candles: Candles, sim: Simulation, since: int, until: int) -> list[Fill]:
    """The engine's round trips as fills decided in ``[since, until)``, in time order (on one
    candle, an exit before the entry it makes room for). A signal fill at bar ``b``'s open was
    decided at bar ``b - 1``; a stop loss or take profit fires inside its bar, which decides it; a
    position still open at the end is a valuation, not a fill, and is left out."""
    ts = candles.ts.tolist()
    t = sim.trades
    # Plain lists: indexing numpy arrays element by element costs more than the whole engine run.
    columns = zip(t.side.tolist(), t.amount.tolist(), t.entry_bar.tolist(), t.exit_bar.tolist(),
                  t.entry_price.tolist(), t.exit_price.tolist(), t.entry_fee.tolist(), t.exit_fee.tolist(),
                  t.exit_reason.tolist(), strict=True)
    out: list[tuple[int, int, Fill]] = []
    for side, amount, entry_bar, exit_bar, entry_px, exit_px, entry_fee, exit_fee, reason in columns:
        entry_at = ts[entry_bar - 1]
        out.append((entry_at, 1, Fill(entry_at, "buy" if side > 0 else "sell", entry_px, amount, entry_fee)))
        if reason == ExitReason.END:
            continue
        exit_at = ts[exit_bar - 1 if reason == ExitReason.SIGNAL else exit_bar]
        out.append((exit_at, 0, Fill(exit_at, "sell" if side > 0 else "buy", exit_px, amount, exit_fee,
                                     side * (exit_px - entry_px) * amount)))
    out.sort(key=lambda item: (item[0], item[1]))
    return [fill for at, _, fill in out if since <= at < until]


def _slippage_bps(side: str, expected: float, actual: float) -> float:
    sign = 1.0 if side == "buy" else -1.0
    return sign * (actual - expected) / expected * BPS


def compare(expected: Sequence[Fill], actual: Sequence[Fill], fee_rate: float) -> DriftReport:
    """The drift of ``actual`` (the bot's fills) from ``expected`` (the replay's), both in time order."""
    queues: dict[tuple[int, str], deque[int]] = defaultdict(deque)
    for i, fill in enumerate(expected):
        queues[(fill.decided_at, fill.side)].append(i)
    partner: dict[int, int] = {}  # expected index -> actual index
    unmatched_actual: list[int] = []
    for j, fill in enumerate(actual):
        queue = queues.get((fill.decided_at, fill.side))
        if queue:
            partner[queue.popleft()] = j
        else:
            unmatched_actual.append(j)

    lines: list[tuple[int, int, DriftLine]] = []
    slippages: list[float] = []
    expected_fees = actual_fees = expected_net = live_net = notional = 0.0
    fees_unknown = 0
    for i, exp in enumerate(expected):
        k = partner.get(i)
        act = actual[k] if k is not None else None
        amount = act.amount if act is not None else exp.amount
        exp_fee = fee_rate * amount * exp.price
        expected_fees += exp_fee
        expected_net += (exp.realized_pnl * amount / exp.amount if exp.amount else 0.0) - exp_fee
        if act is None:
            notional += amount * exp.price
            lines.append((exp.decided_at, i, DriftLine(exp.decided_at, exp.side, LineStatus.MISSING, amount, exp.price,
                                                       None, None, exp_fee, None, None, None)))
            continue
        slip = _slippage_bps(exp.side, exp.price, act.price)
        slippages.append(slip)
        notional += act.amount * act.price
        lines.append((exp.decided_at, i, DriftLine(
            exp.decided_at, exp.side, LineStatus.MATCHED, amount, exp.price, act.price, slip, exp_fee, act.fee,
            None if act.fee is None else act.fee - exp_fee, act.trade_id)))
    for j in unmatched_actual:
        act = actual[j]
        notional += act.amount * act.price
        lines.append((act.decided_at, len(expected) + j, DriftLine(
            act.decided_at, act.side, LineStatus.EXTRA, act.amount, None, act.price, None, None, act.fee, None,
            act.trade_id)))
    for act in actual:
        if act.fee is None:
            fees_unknown += 1
        else:
            actual_fees += act.fee
        live_net += act.realized_pnl - (act.fee or 0.0)
    lines.sort(key=lambda item: (item[0], item[1]))
    gap = live_net - expected_net
    matched = len(partner)
    summary = DriftSummary(
        expected_fills=len(expected),
        actual_fills=len(actual),
        matched=matched,
        missing_signals=len(expected) - matched,
        extra_signals=len(unmatched_actual),
        mean_slippage_bps=float(np.mean(slippages)) if slippages else None,
        max_slippage_bps=max(slippages, key=abs) if slippages else None,
        expected_fees=expected_fees,
        actual_fees=actual_fees,
        # Over matched fills with a known fee: a missing or extra fill's fee is in the signal difference.
        fee_difference=sum(line.fee_difference for _, _, line in lines if line.fee_difference is not None),
        fees_unknown=fees_unknown,
        expected_net_pnl=expected_net,
        live_net_pnl=live_net,
        pnl_gap=gap,
        traded_notional=notional,
        pnl_gap_bps=gap / notional * BPS if notional > 0 else 0.0,
    )
    return DriftReport(summary, tuple(line for _, _, line in lines))


def gap_warning(summary: DriftSummary, threshold_bps: float) -> str | None:
    """The state warning for a report whose PnL gap exceeds ``threshold_bps`` of the traded
    notional (either way: a bot doing better than its backtest is drifting too), else None."""
    if abs(summary.pnl_gap_bps) <= threshold_bps:
        return None
    return (
        f"live PnL drifts from the backtest by {summary.pnl_gap:+.2f} ({summary.pnl_gap_bps:+.1f} bps of the traded "
        f"notional, threshold {threshold_bps:g}); {summary.missing_signals} missing and {summary.extra_signals} "
        "extra signals"
    )
