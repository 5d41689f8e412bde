"""Cluster metrics on the app's Prometheus registry, read from the coordinator and runtime on scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradebot.runtime.cluster.coordinator import ClusterCoordinator


class ClusterCollector(Collector):
    """Bots running here and the lease renew latency are the runtime's own metrics
    (tradebot_bots_running, tradebot_lease_renew_seconds); this adds the cluster's."""

    def __init__(self, coordinator: ClusterCoordinator) -> None:
        self._c = coordinator

    def collect(self) -> Iterator[Metric]:
        c = self._c
        yield GaugeMetricFamily("tradebot_cluster_replicas", "Live replicas, as this replica last read them",
                                value=len(c.live))
        yield GaugeMetricFamily("tradebot_cluster_is_leader", "1 while this replica is the cluster leader",
                                value=1 if c.is_leader else 0)
        yield CounterMetricFamily("tradebot_cluster_rebalances", "Published maps that moved bots (as leader)",
                                  value=c.stats.rebalances)
        yield CounterMetricFamily("tradebot_cluster_failovers",
                                  "Bots moved off a replica that died without leaving (as leader)",
                                  value=c.stats.failovers)
        yield CounterMetricFamily("tradebot_cluster_leader_terms", "Times this replica became the leader",
                                  value=c.election.terms)
