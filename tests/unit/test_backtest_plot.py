"""``tradebot backtest … --plot FILE.html``: one self-contained page whose embedded data is the backtest's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.test_backtest_command import parse, write_csv
from tradebot.backtests import command, plot
from tradebot.backtests.candle_csv import load_candles_csv
from tradebot.strategies import BacktestSettings, get_strategy, run_backtest
from tradebot.strategies.candles import Candles
from tradebot.strategies.ema import ema


class Page(HTMLParser):
    """The script elements of a page (attributes and text) and every URL-carrying attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.urls: list[str] = []
        self._in_script: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href") and tag != "a"]
        if tag == "script":
            self._in_script, self._text = found, []

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._text)))
            self._in_script = None


def read_page(path: Path) -> tuple[Page, dict[str, Any]]:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    data = [text for attrs, text in page.scripts if attrs.get("id") == "backtest-data"]
    assert len(data) == 1
    parsed: dict[str, Any] = json.loads(data[0])
    return page, parsed


def test_the_plot_holds_the_backtest_and_loads_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write_csv(tmp_path / "btc.csv", n=800)
    out = tmp_path / "report.html"
    argv = ["--csv", str(csv), "--symbol", "BTC/USDT:USDT", "--ema-period", "12", "--allow-short", "--json",
            "--stop-loss-pct", "2", "--plot", str(out)]
    assert command.run(parse(argv)) == 0
    printed = json.loads(capsys.readouterr().out)
    page, data = read_page(out)

    # Self-contained: no script, stylesheet or image from anywhere; the library is inline.
    assert page.urls == []
    assert all("src" not in attrs for attrs, _ in page.scripts)
    module = [text for attrs, text in page.scripts if attrs.get("type") == "module"]
    assert len(module) == 1 and "const LightweightCharts={" in module[0] and "createChart" in module[0]
    assert "export{" not in module[0].replace(" ", "") and "import " not in module[0].split("const LightweightCharts")[1]

    # The data is the backtest's: the trades the JSON output lists, and one equity value per candle.
    assert data["trades"] == printed["trades"] and printed["trades_count"] == len(data["trades"]) > 3
    candles = load_candles_csv(str(csv))
    result = run_backtest(candles, BacktestSettings(stop_loss_pct=2.0), strategy="ema_cross",
                          params={"ema_period": 12, "allow_short": True}, timeframe="1h")
    assert data["ts"] == candles.ts.tolist() and data["close"] == candles.close.tolist()
    assert data["equity"] == result.equity.tolist() and data["equity"][-1] == printed["final_balance"]
    peak = np.maximum.accumulate(result.equity)
    assert data["drawdown_pct"] == pytest.approx(((result.equity / peak - 1) * 100).tolist())
    assert min(data["drawdown_pct"]) == pytest.approx(-printed["max_drawdown_pct"])
    assert data["summary"]["final_balance"] == printed["final_balance"] and data["symbol"] == "BTC/USDT:USDT"


@dataclass(frozen=True)
class Line:
    name: str
    label: str
    values: Any
    pane: str = "price"


@dataclass(frozen=True)
class Pane:
    name: str
    label: str
    levels: tuple[float, ...] = ()


@dataclass(frozen=True)
class Shown:
    lines: tuple[Line, ...]
    panes: tuple[Pane, ...]


class WithIndicators:
    """ema_cross offering indicators through the optional Strategy method: as an object of lines
    and panes, or (``as_mapping``) as a plain mapping of name to values."""

    def __init__(self, *, as_mapping: bool = False) -> None:
        self._inner = get_strategy("ema_cross")
        self._as_mapping = as_mapping

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def indicators(self, candles: Candles, params: Any) -> Any:
        line = ema(candles.close, params.ema_period)
        if self._as_mapping:
            return {"EMA": line, "not per candle": np.zeros(3)}
        spread = candles.close - line
        return Shown(
            (Line("ema", f"EMA {params.ema_period}", line), Line("spread", "close - EMA", spread, "osc"),
             Line("lost", "in no pane", spread, "nowhere")),
            (Pane("osc", "spread", (0.0,)),),
        )


def install_indicators(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> None:
    monkeypatch.setattr(plot, "get_strategy", lambda name: WithIndicators(**kwargs))


def test_indicators_are_drawn_when_the_strategy_offers_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    candles = load_candles_csv(str(write_csv(tmp_path / "c.csv", n=200)))
    params = {"ema_period": 20, "allow_short": False}
    result = run_backtest(candles, BacktestSettings(), strategy="ema_cross", params=params, timeframe="1h")
    plain = plot.plot_data(candles, result, strategy="ema_cross", params=params, symbol=None)
    if not hasattr(get_strategy("ema_cross"), "indicators"):
        assert plain["indicators"] == {"lines": [], "panes": []}  # none offered: nothing is drawn
    install_indicators(monkeypatch)
    data = plot.plot_data(candles, result, strategy="ema_cross", params=params, symbol=None)
    lines = data["indicators"]["lines"]
    assert [(x["name"], x["label"], x["pane"]) for x in lines] == [("ema", "EMA 20", "price"),
                                                                   ("spread", "close - EMA", "osc")]
    assert data["indicators"]["panes"] == [{"name": "osc", "label": "spread", "levels": [0.0]}]
    values = lines[0]["values"]
    assert values[:19] == [None] * 19 and values[19] == pytest.approx(float(np.mean(candles.close[:20])))
    install_indicators(monkeypatch, as_mapping=True)
    data = plot.plot_data(candles, result, strategy="ema_cross", params=params, symbol=None)
    assert [(x["name"], x["pane"]) for x in data["indicators"]["lines"]] == [("EMA", "price")]
    assert data["indicators"]["lines"][0]["values"] == values


def test_a_plot_that_cannot_be_written_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "btc.csv", n=100)
    argv = ["--csv", str(csv), "--plot", str(tmp_path / "no" / "such" / "dir" / "x.html")]
    assert command.run(parse(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("tradebot backtest: error: --plot: cannot write") and len(err.strip().splitlines()) == 1
