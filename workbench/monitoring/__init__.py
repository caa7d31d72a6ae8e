"""Monitoring: reference profiles, drift statistics, drift reports.

- :mod:`~workbench.monitoring.profile`: ``build_profile`` summarises the training frame (and
  the model's predictions on it) into a ``ReferenceProfile`` that ``Registry.register``
  stores with the model version.
- :mod:`~workbench.monitoring.stats`: the statistics (PSI, Kolmogorov-Smirnov, chi-square,
  Jensen-Shannon), pure functions over counts and values.
- :mod:`~workbench.monitoring.drift`: ``check_drift`` compares current data with a profile
  (those statistics and missing rates) under ``Thresholds`` and assembles the report data.
- :mod:`~workbench.monitoring.report`: the HTML report (Jinja2 templates in ``templates/``,
  autoescaped) with plots, and the JSON summary.
- :mod:`~workbench.monitoring.service`: ``check_model_drift`` does the I/O: the profile from
  the registry, current data from a file or the prediction store, the report logged to a
  monitoring run, ``drift_status`` on the model version.
- :mod:`~workbench.monitoring.compare`: ``compare_models`` pairs two models' logged
  predictions (a champion and its shadow) by request and row: agreement, prediction shift,
  latency; ``replay_model`` scores logged inputs through another instance offline and
  compares the same way.
- :mod:`~workbench.monitoring.labels`: ``ingest_labels`` joins ground truth that arrives later
  with the logged predictions (by an id among the logged inputs, or the request id) and stores
  it; late, duplicate and unmatched labels are counted.
- :mod:`~workbench.monitoring.performance`: ``evaluate_performance`` computes a metric per
  time window from the joined labels and logs the series to MLflow; ``performance_trigger``
  judges the latest window against a threshold and a margin.

Imports are lazy: ``import workbench.monitoring`` costs nothing until a name is used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.monitoring.compare import Comparison, compare_models, replay_model
    from workbench.monitoring.drift import DriftResult, FeatureDrift, Thresholds, check_drift
    from workbench.monitoring.labels import LabelIngest, ingest_labels
    from workbench.monitoring.performance import (
        PerformanceReport,
        PerformanceVerdict,
        evaluate_performance,
        performance_trigger,
    )
    from workbench.monitoring.profile import ReferenceProfile, build_profile
    from workbench.monitoring.service import DriftCheck, check_model_drift, load_profile

_LAZY = {
    "Comparison": "workbench.monitoring.compare",
    "compare_models": "workbench.monitoring.compare",
    "replay_model": "workbench.monitoring.compare",
    "ReferenceProfile": "workbench.monitoring.profile",
    "build_profile": "workbench.monitoring.profile",
    "Thresholds": "workbench.monitoring.drift",
    "DriftResult": "workbench.monitoring.drift",
    "FeatureDrift": "workbench.monitoring.drift",
    "check_drift": "workbench.monitoring.drift",
    "LabelIngest": "workbench.monitoring.labels",
    "ingest_labels": "workbench.monitoring.labels",
    "PerformanceReport": "workbench.monitoring.performance",
    "PerformanceVerdict": "workbench.monitoring.performance",
    "evaluate_performance": "workbench.monitoring.performance",
    "performance_trigger": "workbench.monitoring.performance",
    "DriftCheck": "workbench.monitoring.service",
    "check_model_drift": "workbench.monitoring.service",
    "load_profile": "workbench.monitoring.service",
}

__all__ = [
    "Comparison",
    "DriftCheck",
    "DriftResult",
    "FeatureDrift",
    "LabelIngest",
    "PerformanceReport",
    "PerformanceVerdict",
    "ReferenceProfile",
    "Thresholds",
    "build_profile",
    "check_drift",
    "check_model_drift",
    "compare_models",
    "evaluate_performance",
    "ingest_labels",
    "load_profile",
    "performance_trigger",
    "replay_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench.monitoring' has no attribute {name!r}")
