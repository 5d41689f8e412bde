"""Prometheus metrics, one registry per app (no process-global state, so tests can build many apps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics"]


@dataclass
class HttpMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.requests = Counter(
            "tradebot_http_requests_total",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tradebot_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        # Refused before routing (tradebot.http.server_protocol): no route or method label to give.
        self.rejected = Counter(
            "tradebot_http_rejected_requests_total",
            "Requests refused by the HTTP parser, and connections closed for slow headers, by reason",
            ["reason"],
            registry=self.registry,
        )

        # The labelled children, looked up once per label set rather than on every request.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def request_done(self, method: str, route: str, status: int, elapsed_s: float) -> None:
        key = (method, route, str(status))
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(*key), self.latency.labels(method, route))
        children[0].inc()
        children[1].observe(elapsed_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
