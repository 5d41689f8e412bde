"""Runtime figures for /metrics, read at scrape time from plain counters (nothing on the hot path
but integer increments)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tradebot.runtime.bot_runtime import BotRuntime
    from tradebot.runtime.market_data_hub import MarketDataHub


@dataclass
class RuntimeCounters:
    """Shared by this replica's actors; only ever incremented."""

    decisions: int = 0
    decision_seconds: float = 0.0  # summed; with `decisions`, the mean time from candle to done
    orders_sent: int = 0
    orders_filled: int = 0
    orders_rejected: int = 0
    orders_unknown: int = 0
    orders_reconciled: int = 0


class RuntimeCollector(Collector):
    def __init__(self, runtime: BotRuntime, hub: MarketDataHub, counters: RuntimeCounters) -> None:
        self._runtime = runtime
        self._hub = hub
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        c = self._counters
        rt = self._runtime
        yield GaugeMetricFamily("tradebot_bots_running", "Bot actors running on this replica",
                                value=len(rt.supervisor.running()))
        yield GaugeMetricFamily("tradebot_leases_held", "Bot leases held by this replica", value=len(rt.leases.held()))
        yield GaugeMetricFamily("tradebot_lease_renew_seconds", "Duration of the last batch lease renewal",
                                value=rt.leases.last_renew_seconds)
        yield GaugeMetricFamily("tradebot_runtime_faulted", "1 once a runtime loop crashed and the runtime stood down",
                                value=int(rt.health.faulted))
        crashes = CounterMetricFamily("tradebot_runtime_loop_crashes", "Runtime background tasks that crashed",
                                      labels=["task"])
        for name, count in sorted(rt.tasks.crashes.items()):
            crashes.add_metric([name], count)
        yield crashes
        yield GaugeMetricFamily("tradebot_redis_down", "1 while leases cannot be renewed", value=int(rt.stats.redis_down))
        yield CounterMetricFamily("tradebot_bot_decisions", "Closed candles decided on", value=c.decisions)
        yield CounterMetricFamily("tradebot_bot_decision_seconds", "Time from a candle's arrival to its decision done",
                                  value=c.decision_seconds)
        orders = CounterMetricFamily("tradebot_orders", "Orders by outcome", labels=["outcome"])
        for outcome, value in (("sent", c.orders_sent), ("filled", c.orders_filled), ("rejected", c.orders_rejected),
                               ("unknown", c.orders_unknown), ("reconciled", c.orders_reconciled)):
            orders.add_metric([outcome], value)
        yield orders
        yield CounterMetricFamily("tradebot_actor_restarts", "Bot actors restarted after a crash",
                                  value=rt.supervisor.restarts)
        yield CounterMetricFamily("tradebot_bot_failures", "Bots put in status error", value=rt.supervisor.failures)
        yield CounterMetricFamily("tradebot_lease_losses", "Leases lost or lapsed", value=rt.stats.lost_leases)
        yield CounterMetricFamily("tradebot_market_data_candles", "Closed candles delivered by the hub, per stream",
                                  value=self._hub.candles)
        yield CounterMetricFamily("tradebot_market_data_reconnects", "Market-data websocket reconnects",
                                  value=self._hub.reconnects)
        yield CounterMetricFamily("tradebot_market_data_backfilled", "Closed candles recovered over REST",
                                  value=self._hub.backfilled)
