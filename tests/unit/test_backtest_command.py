"""``tradebot backtest --csv``: run() on temporary CSV files, the --json fields, exit status 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from tradebot.backtests import command


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tradebot backtest")
    command.configure_parser(p)
    return p.parse_args(argv)


def write_csv(path: Path, n: int = 500, minutes: int = 60, iso: bool = False) -> Path:
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(n):
        ts_ms = 1_704_067_200_000 + i * minutes * 60_000
        if iso:
            from tradebot.strategies.render import iso_time

            ts = iso_time(ts_ms)
        else:
            ts = str(ts_ms)
        lines.append(f"{ts},{float(open_[i])!r},{float(high[i])!r},{float(low[i])!r},{float(close[i])!r},1.0")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_json_output_has_the_api_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write_csv(tmp_path / "btc.csv", n=3000)
    argv = ["--csv", str(csv), "--symbol", "BTC/USDT:USDT", "--ema-period", "10", "--allow-short"]
    argv += ["--leverage", "3", "--fee-rate", "0.001", "--slippage-bps", "2", "--order-size-pct", "20"]
    argv += ["--stop-loss-pct", "1.5", "--take-profit-pct", "3", "--initial-balance", "5000", "--json"]
    assert command.run(parse(argv)) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "final_balance",
        "total_pnl",
        "return_pct",
        "trades_count",
        "win_rate",
        "max_drawdown_pct",
        "sharpe",
        "exposure_pct",
        "fees_paid",
        "equity_curve",
        "trades",
    ):
        assert key in out, key
    assert out["status"] == "done"
    assert out["symbol"] == "BTC/USDT:USDT"
    assert out["timeframe"] == "1h"  # inferred from the spacing
    assert out["initial_balance"] == 5000.0
    assert out["fee_rate"] == 0.001
    assert out["slippage_bps"] == 2.0
    assert out["parameters"] == {
        "ema_period": 10,
        "allow_short": True,
        "order_size_pct": 20.0,
        "leverage": 3.0,
        "stop_loss_pct": 1.5,
        "take_profit_pct": 3.0,
    }
    curve = out["equity_curve"]
    assert len(curve) <= 1000
    assert curve[0][0] == 1_704_067_200_000
    assert curve[-1] == [1_704_067_200_000 + 2999 * 3_600_000, out["final_balance"]]
    assert out["trades_count"] == len(out["trades"]) > 0
    assert 0.0 <= out["win_rate"] <= 1.0
    assert out["total_pnl"] == pytest.approx(out["final_balance"] - 5000.0)
    assert out["total_pnl"] == pytest.approx(sum(t["pnl"] for t in out["trades"]), rel=1e-9)
    assert out["fees_paid"] == pytest.approx(sum(t["fees"] for t in out["trades"]), rel=1e-9)
    trade = out["trades"][0]
    assert set(trade) >= {
        "side",
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "amount",
        "pnl",
        "fees",
        "exit_reason",
    }
    assert trade["side"] in ("long", "short")
    assert trade["exit_reason"] in ("signal", "stop_loss", "take_profit", "end")
    assert {t["exit_reason"] for t in out["trades"]} >= {"signal", "stop_loss", "take_profit"}


def test_text_report_is_aligned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write_csv(tmp_path / "c.csv", iso=True, minutes=5)
    assert command.run(parse(["--csv", str(csv), "--ema-period", "20"])) == 0
    out = capsys.readouterr().out
    assert "final balance" in out
    assert "5m" in out
    metric_lines = [line for line in out.splitlines()[:18] if line.strip()]
    columns = {len(line) - len(line[20:].lstrip()) for line in metric_lines if len(line) > 21}
    assert len(columns) == 1  # every value starts in the same column


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ema-period", "1"], "--ema-period: must be between 2 and 1000"),
        (["--ema-period", "1001"], "--ema-period"),
        (["--leverage", "0.5"], "--leverage: must be >= 1"),
        (["--fee-rate", "-0.1"], "--fee-rate"),
        (["--order-size-pct", "0"], "--order-size-pct"),
        (["--stop-loss-pct", "100"], "--stop-loss-pct"),
        (["--initial-balance", "nan"], "--initial-balance"),
        (["--timeframe", "5m"], "--timeframe: is 5m but the CSV's candles are 60 minutes apart"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    csv = write_csv(tmp_path / "c.csv", n=50)
    assert command.run(parse(["--csv", str(csv), *extra])) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_missing_and_bad_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.run(parse(["--csv", str(tmp_path / "nope.csv")])) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n1000,1,2,0.5,oops,1\n")
    assert command.run(parse(["--csv", str(bad)])) == 2
    err = capsys.readouterr().err
    assert "line 2: column 'close' is not a number" in err
    assert len(err.strip().splitlines()) == 1


def test_timeframe_cannot_be_inferred_from_one_candle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = tmp_path / "one.csv"
    one.write_text("1000,1,2,0.5,1.5,1\n")
    assert command.run(parse(["--csv", str(one)])) == 2
    assert "--timeframe" in capsys.readouterr().err
    assert command.run(parse(["--csv", str(one), "--timeframe", "1m", "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trades_count"] == 0
    assert out["equity_curve"] == [[1000, 10_000.0]]


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(["--csv", "x.csv", "--ema-period", "ten"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        parse([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        parse(["--csv", "x.csv", "--timeframe", "7m"])
    assert info.value.code == 2


def test_result_to_dict_can_truncate_trades(tmp_path: Path) -> None:
    from tradebot.backtests.candle_csv import load_candles_csv
    from tradebot.strategies import BacktestSettings, result_to_dict, run_backtest, trades_to_records

    candles = load_candles_csv(write_csv(tmp_path / "c.csv", n=2000))
    result = run_backtest(candles, BacktestSettings(), params={"ema_period": 5}, timeframe="1h")
    assert result.trades_count > 10
    full = result_to_dict(result)
    assert "trades_truncated" not in full
    cut = result_to_dict(result, max_trades=10)
    assert cut["trades"] == full["trades"][:10]
    assert cut["trades_truncated"] is True
    assert result_to_dict(result, max_trades=10**6)["trades_truncated"] is False
    assert trades_to_records(result, start=3, stop=5) == full["trades"][3:5]
    assert result_to_dict(result, include_trades=False).keys() == full.keys() - {"trades"}


def write_calendar_csv(path: Path, opens: list[int]) -> Path:
    rng = np.random.default_rng(8)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.05, len(opens))))
    lines = ["timestamp,open,high,low,close,volume"]
    prev = 100.0
    for t, c in zip(opens, close.tolist(), strict=True):
        lines.append(f"{t},{prev!r},{max(prev, c) * 1.01!r},{min(prev, c) * 0.99!r},{c!r},1.0")
        prev = c
    path.write_text("\n".join(lines) + "\n")
    return path


def month_opens(n: int, year: int = 2019) -> list[int]:
    import datetime as dt

    return [int(dt.datetime(year + m // 12, m % 12 + 1, 1, tzinfo=dt.UTC).timestamp() * 1000) for m in range(n)]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tradebot", "backtest", *argv], capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout, done.stderr


def test_weekly_and_monthly_csvs_backtest_through_the_cli(tmp_path: Path) -> None:
    monday = 1_704_067_200_000  # 2024-01-01, a Monday
    weekly = write_calendar_csv(tmp_path / "weekly.csv", [monday + i * 7 * 86_400_000 for i in range(120)])
    monthly = write_calendar_csv(tmp_path / "monthly.csv", month_opens(72))  # 2019-2024, two leap Februaries
    for csv, timeframe in ((weekly, "1w"), (monthly, "1M")):
        for extra in ([], ["--timeframe", timeframe]):
            code, out, err = run_cli(["--csv", str(csv), "--ema-period", "5", "--allow-short", "--json", *extra])
            assert code == 0, err
            result = json.loads(out)
            assert result["timeframe"] == timeframe
            assert result["trades_count"] > 0


def test_monthly_timeframe_is_checked_against_the_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    daily = write_csv(tmp_path / "daily.csv", n=100, minutes=1440)
    assert command.run(parse(["--csv", str(daily), "--timeframe", "1M"])) == 2
    assert "1440 minutes apart" in capsys.readouterr().err
    shifted = write_calendar_csv(tmp_path / "shifted.csv", [t + 86_400_000 for t in month_opens(24)])
    assert command.run(parse(["--csv", str(shifted), "--timeframe", "1M"])) == 2
    assert "does not open on the 1st of a month" in capsys.readouterr().err
    odd = write_csv(tmp_path / "odd.csv", n=50, minutes=2)
    assert command.run(parse(["--csv", str(odd)])) == 2
    assert "2 minutes apart, which is no known timeframe" in capsys.readouterr().err
