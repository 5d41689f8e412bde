"""Third-party strategies through the entry-point group ``tradebot.strategies`` (CONTRACT.md,
Strategies): the example plugin ``sma_cross`` is listed and backtested; a broken plugin is logged
with its entry-point name and skipped."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.plugin_helpers import EXAMPLE_SRC, fake_install, plugin_env

GOOD = {"sma_cross": "tradebot_sma_cross:SMA_CROSS"}
BROKEN = {
    "no_module": "tradebot_no_such_module:STRATEGY",
    "not_a_strategy": "tradebot_sma_cross:NAME",
    "duplicate": "tradebot.strategies.ema_cross:EmaCross",
}


def _csv(path: Path, closes: list[float]) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{1_700_000_000_000 + i * 60_000},{c},{c},{c},{c},1" for i, c in enumerate(closes)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _tradebot(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradebot", *args], env=plugin_env(site), capture_output=True, text=True, timeout=120
    )


def _walk(n: int) -> list[float]:
    rng = np.random.default_rng(7)
    return [round(float(v), 2) for v in 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))]


def test_the_example_plugin_backtests_from_the_cli(tmp_path: Path) -> None:
    site = fake_install(tmp_path / "site", GOOD)
    csv = _csv(tmp_path / "c.csv", _walk(300))
    done = _tradebot(site, "backtest", "--csv", str(csv), "--strategy", "sma_cross", "--param", "sma_period=5", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["strategy"] == "sma_cross" and out["parameters"]["sma_period"] == 5
    assert out["trades_count"] > 0
    bad = _tradebot(site, "backtest", "--csv", str(csv), "--strategy", "sma_cross", "--param", "sma_period=1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--param sma_period" in bad.stderr
    # Without the plugin the name is unknown: one line, exit 2.
    gone = _tradebot(tmp_path / "empty", "backtest", "--csv", str(csv), "--strategy", "sma_cross")
    assert gone.returncode == 2 and "unknown strategy 'sma_cross'" in gone.stderr


def test_a_broken_plugin_is_logged_and_skipped(tmp_path: Path) -> None:
    site = fake_install(tmp_path / "site", {**BROKEN, **GOOD})
    csv = _csv(tmp_path / "c.csv", _walk(100))
    done = _tradebot(site, "backtest", "--csv", str(csv), "--strategy", "sma_cross", "--json")
    assert done.returncode == 0, done.stderr
    for name in BROKEN:
        assert f"strategy plugin {name} " in done.stderr and "skipped" in done.stderr, (name, done.stderr)
    assert "strategy plugin sma_cross" not in done.stderr  # the good one loads quietly
    # ema_cross is still the built-in one.
    ema = _tradebot(site, "backtest", "--csv", str(csv), "--json")
    assert ema.returncode == 0 and json.loads(ema.stdout)["strategy"] == "ema_cross"


def test_sma_cross_is_exact_on_a_flat_market_and_its_faces_agree() -> None:
    sys.path.insert(0, str(EXAMPLE_SRC))
    try:
        plugin = importlib.import_module("tradebot_sma_cross")  # not installed: from its source tree
    finally:
        sys.path.remove(str(EXAMPLE_SRC))
    from tradebot.strategies import Candle, Candles

    strategy = plugin.SMA_CROSS
    for closes in ([0.1] * 50, _walk(400)):
        params = strategy.parse_params({"sma_period": 7, "allow_short": True})
        n = len(closes)
        ts = np.arange(n, dtype=np.int64) * 60_000
        c = np.array(closes)
        candles = Candles.from_arrays(ts, c, c, c, c, np.ones(n))
        signals = strategy.signals(candles, params)
        state = strategy.initial_state(params)
        for i in range(n):
            decision, state = strategy.decide(Candle(int(ts[i]), c[i], c[i], c[i], c[i], 1.0), state, params)
            state = strategy.state_from_dict(json.loads(json.dumps(strategy.state_to_dict(state))), params)
            code = -128 if decision.target is None else int(decision.target)
            assert code == signals.target[i], i
            if decision.ema is not None:
                assert decision.ema == signals.ema[i]
        if len(set(closes)) == 1:
            assert set(signals.ema[6:].tolist()) == {0.1} and set(signals.target[6:].tolist()) == {0}
    assert strategy.warmup_candles(strategy.parse_params({})) == 20
    assert strategy.parameters_schema()["properties"]["sma_period"] == {
        "type": "integer", "minimum": 2, "maximum": 1000, "default": 20,
        "description": "Candles in the simple moving average.",
    }
