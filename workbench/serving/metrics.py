"""Prometheus metrics of one server process: requests by status, latency, rows predicted,
rows per ``predict`` call, the served instance and its swaps, the shadow challenger, and the
prediction log's backlog, drops and write errors (read when scraped)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# `*_created` series double the output and no dashboard here reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    """Counters for one process; ``render()`` gives the Prometheus text format."""

    def __init__(self, log_stats: Callable[[], Any] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("workbench_requests", "Scoring requests by HTTP status",
                                ["status"], registry=self.registry)
        self.latency = Histogram("workbench_request_latency_seconds", "Scoring request latency",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("workbench_rows_predicted", "Rows predicted", registry=self.registry)
        self.batch_rows = Histogram("workbench_batch_rows", "Rows per predict call (merged requests)",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.timeouts = Counter("workbench_request_timeouts", "Requests answered 504 (over --timeout-ms)",
                                registry=self.registry)
        self.model_info = Gauge("workbench_model_info", "The instance being served (value 1)",
                                ["model"], registry=self.registry)
        self.swaps = Counter("workbench_model_swaps", "Times --follow swapped in a new instance",
                             registry=self.registry)
        self.swaps_refused = Counter("workbench_model_swaps_refused",
                                     "New instances --follow did not swap in, by reason",
                                     ["reason"], registry=self.registry)
        self.shadow = Counter("workbench_shadow_requests", "Requests the shadow scored, by outcome",
                              ["outcome"], registry=self.registry)
        self._by_status: dict[int, Any] = {}
        if log_stats is not None:
            self.registry.register(_LogCollector(log_stats))

    def observe(self, status: int, seconds: float) -> None:
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = self.requests.labels(status=str(status))
        counter.inc()
        self.latency.observe(seconds)

    def set_model(self, name: str) -> None:
        """Say which instance is served (the previous one's series is removed)."""
        self.model_info.clear()
        self.model_info.labels(model=name).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LogCollector:
    def __init__(self, log_stats: Callable[[], Any]) -> None:
        self.log_stats = log_stats

    def collect(self):
        stats = self.log_stats()
        yield GaugeMetricFamily("workbench_prediction_log_backlog",
                                "Predictions waiting to be written", value=stats.backlog)
        yield CounterMetricFamily("workbench_prediction_log_dropped",
                                  "Predictions dropped because the backlog was full", value=stats.dropped)
        yield CounterMetricFamily("workbench_prediction_log_written",
                                  "Predictions written to the store", value=stats.written)
        yield CounterMetricFamily("workbench_prediction_log_write_errors",
                                  "Failed writes to the prediction store", value=stats.write_errors)
