"""Backtest results rendered for people and programs: a JSON-safe dict (the API's finished-backtest
fields) and an aligned text report."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from tradebot.strategies.exit_reason import ExitReason
from tradebot.strategies.report import BacktestResult, downsample

__all__ = ["format_report", "iso_time", "result_to_dict", "trades_to_records"]

_SIDES = {1: "long", -1: "short"}
_REASONS = {r.value: r.label for r in ExitReason}


def iso_time(ts_ms: int) -> str:
    """ISO 8601 UTC with millisecond precision, e.g. ``2024-01-02T03:04:00.000Z``."""
    dt = datetime.fromtimestamp(ts_ms / 1000.0, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def _num(x: float) -> float | None:
    """A JSON-safe number (non-finite values, which valid inputs never produce, become null)."""
    return x if math.isfinite(x) else None


def trades_to_records(result: BacktestResult, *, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
    """The round trips ``start:stop`` as JSON-safe dicts, oldest first (only those are converted)."""
    t = result.trades
    ts = result.ts
    sl = slice(start, stop)
    fees = (t.entry_fee[sl] + t.exit_fee[sl]).tolist()
    records: list[dict[str, Any]] = []
    first = range(len(t))[sl].start
    for i, (eb, xb, side, ep, xp, amount, pnl, fee, bal, reason) in enumerate(
        zip(
            t.entry_bar[sl].tolist(),
            t.exit_bar[sl].tolist(),
            t.side[sl].tolist(),
            t.entry_price[sl].tolist(),
            t.exit_price[sl].tolist(),
            t.amount[sl].tolist(),
            t.pnl[sl].tolist(),
            fees,
            t.balance_after[sl].tolist(),
            t.exit_reason[sl].tolist(),
            strict=True,
        ),
        start=first,
    ):
        entry_ts = int(ts[eb])
        exit_ts = int(ts[xb])
        records.append(
            {
                "n": i + 1,
                "side": _SIDES[side],
                "entry_time": iso_time(entry_ts),
                "exit_time": iso_time(exit_ts),
                "entry_ts": entry_ts,
                "exit_ts": exit_ts,
                "entry_price": _num(ep),
                "exit_price": _num(xp),
                "amount": _num(amount),
                "pnl": _num(pnl),
                "fees": _num(fee),
                "balance_after": _num(bal),
                "exit_reason": _REASONS[reason],
            }
        )
    return records


def result_to_dict(
    result: BacktestResult,
    *,
    max_points: int = 1000,
    include_trades: bool = True,
    max_trades: int | None = None,
) -> dict[str, Any]:
    """The fields of a finished backtest in the API (``status: "done"``), the parameters echoed,
    the equity curve as ``[[ts_ms, equity], ...]`` downsampled to ``max_points`` (first and last
    points kept; the last equals ``final_balance``) and, optionally, the trades: all of them, or
    with ``max_trades`` the first ``max_trades`` plus ``trades_truncated``."""
    ts, eq = downsample(result.ts, result.equity, max_points)
    s = result.settings
    parameters: dict[str, Any] = {
        **result.strategy_params,
        "order_size_pct": s.order_size_pct,
        "leverage": s.leverage,
        "stop_loss_pct": s.stop_loss_pct,
        "take_profit_pct": s.take_profit_pct,
    }
    out: dict[str, Any] = {
        "status": "done",
        "strategy": result.strategy,
        "timeframe": result.timeframe,
        "parameters": parameters,
        "initial_balance": s.initial_balance,
        "fee_rate": s.fee_rate,
        "slippage_bps": s.slippage_bps,
        "candles_count": int(result.ts.shape[0]),
        "start_time": iso_time(int(result.ts[0])) if result.ts.shape[0] else None,
        "end_time": iso_time(int(result.ts[-1])) if result.ts.shape[0] else None,
        "final_balance": _num(result.final_balance),
        "total_pnl": _num(result.total_pnl),
        "return_pct": _num(result.return_pct),
        "trades_count": result.trades_count,
        "win_rate": _num(result.win_rate),
        "max_drawdown_pct": _num(result.max_drawdown_pct),
        "sharpe": _num(result.sharpe),
        "exposure_pct": _num(result.exposure_pct),
        "fees_paid": _num(result.fees_paid),
        "equity_curve": [[t, _num(v)] for t, v in zip(ts.tolist(), eq.tolist(), strict=True)],
    }
    if include_trades:
        out["trades"] = trades_to_records(result, stop=max_trades)
        if max_trades is not None:
            out["trades_truncated"] = result.trades_count > max_trades
    return out


def format_report(result: BacktestResult, *, symbol: str | None = None, last_trades: int = 10) -> str:
    """A readable, aligned text report: parameters, metrics and the last few trades."""
    s = result.settings
    params = ", ".join(f"{k}={v}" for k, v in result.strategy_params.items())
    n = int(result.ts.shape[0])
    period = f"{iso_time(int(result.ts[0]))} .. {iso_time(int(result.ts[-1]))}" if n else "-"
    stops = []
    if s.stop_loss_pct is not None:
        stops.append(f"stop loss {s.stop_loss_pct:g} %")
    if s.take_profit_pct is not None:
        stops.append(f"take profit {s.take_profit_pct:g} %")
    rows: list[tuple[str, str]] = [
        ("symbol", symbol or "-"),
        ("strategy", f"{result.strategy} ({params})"),
        ("timeframe", result.timeframe),
        ("candles", f"{n}  ({period})"),
        ("order size", f"{s.order_size_pct:g} % of balance x {s.leverage:g} leverage"),
        ("fees / slippage", f"{s.fee_rate:g} of notional / {s.slippage_bps:g} bps"),
        ("stops", ", ".join(stops) or "none"),
        ("", ""),
        ("initial balance", f"{result.initial_balance:,.2f}"),
        ("final balance", f"{result.final_balance:,.2f}"),
        ("total PnL", f"{result.total_pnl:+,.2f}"),
        ("return", f"{result.return_pct:+.2f} %"),
        ("trades", f"{result.trades_count}"),
        ("win rate", f"{result.win_rate * 100:.1f} %"),
        ("max drawdown", f"{result.max_drawdown_pct:.2f} %"),
        ("sharpe (annualised)", f"{result.sharpe:.2f}"),
        ("exposure", f"{result.exposure_pct:.1f} % of candles"),
        ("fees paid", f"{result.fees_paid:,.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" if k else "" for k, v in rows]
    records = trades_to_records(result, start=max(0, result.trades_count - last_trades)) if last_trades > 0 else []
    if records:
        lines += ["", f"last {len(records)} of {result.trades_count} trades:"]
        header = ("#", "side", "entry time", "exit time", "entry", "exit", "amount", "pnl", "exit")
        table = [header] + [
            (
                str(r["n"]),
                r["side"],
                r["entry_time"][:19].replace("T", " "),
                r["exit_time"][:19].replace("T", " "),
                f"{r['entry_price']:.6g}",
                f"{r['exit_price']:.6g}",
                f"{r['amount']:.6g}",
                f"{r['pnl']:+,.2f}",
                r["exit_reason"],
            )
            for r in records
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        numeric = {0, 4, 5, 6, 7}
        for row in table:
            cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)]
            lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
