"""The backtest runner's figures on the app's Prometheus registry, read when /metrics is scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradebot.backtests.runner import BacktestRunner


class BacktestCollector(Collector):
    def __init__(self, runner: BacktestRunner) -> None:
        self._runner = runner

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "tradebot_backtests_live", "Backtests this replica holds, queued or running", value=self._runner.live_count
        )
        jobs = CounterMetricFamily(
            "tradebot_backtests_finished", "Backtests this replica finished, by outcome", labels=["outcome"]
        )
        for outcome in ("done", "failed", "crashed"):
            jobs.add_metric([outcome], self._runner.outcomes[outcome])
        yield jobs
        stats = self._runner.loader.stats
        yield CounterMetricFamily(
            "tradebot_backtest_exchange_requests",
            "Exchange requests made to download backtest candles (retries included)",
            value=stats.exchange_requests,
        )
        yield CounterMetricFamily(
            "tradebot_backtest_candles_downloaded",
            "Candles downloaded from the exchange for backtests (cache misses)",
            value=stats.candles_downloaded,
        )
