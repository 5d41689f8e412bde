"""A `tradebot backtest --plot` page renders in headless Chromium from a file:// URL with every
network request refused: no console error, no page error, no request but the file itself, and the
three charts drawn. Needs only Chromium and playwright (no replica): skipped without them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, _missing, screenshot
from tests.unit.test_backtest_command import parse, write_csv
from tests.unit.test_backtest_plot import install_indicators
from tradebot.backtests import command


def test_the_plot_renders_offline_without_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    install_indicators(monkeypatch)  # a line over the candles and one in a pane of its own

    out = tmp_path / "plot.html"
    csv = write_csv(tmp_path / "c.csv", n=600)
    assert command.run(parse(["--csv", str(csv), "--ema-period", "10", "--allow-short", "--plot", str(out)])) == 0
    capsys.readouterr()

    requests: list[str] = []
    errors: list[str] = []
    user_data = tempfile.mkdtemp(prefix="tradebot-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                user_data, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 900},
            )
            try:
                def refuse_network(route: Any) -> None:
                    requests.append(route.request.url)
                    if route.request.url.startswith("file:"):
                        route.continue_()
                    else:
                        route.abort()

                context.route("**/*", refuse_network)
                page = context.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(out.as_uri())
                page.wait_for_function("document.body.dataset.rendered === 'true'", timeout=30_000)
                # Each chart draws on canvases of its own: price, the indicator's pane, equity, drawdown.
                canvases = [page.eval_on_selector_all(f"#{c} canvas", "els => els.length")
                            for c in ("price", "pane-osc", "equity", "drawdown")]
                shown = page.inner_text("#summary")
                screenshot(page, "backtest-plot")
            finally:
                context.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)
    assert errors == []
    assert requests == [out.as_uri()]
    assert all(canvases) and "trades" in shown and "max drawdown" in shown
