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

Imports are lazy: ``import workbench.monitoring`` costs nothing until a name is used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.monitoring.compare import Comparison, compare_models, replay_model
    from workbench.monitoring.drift import DriftResult, FeatureDrift, Thresholds, check_drift
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
    "DriftCheck": "workbench.monitoring.service",
    "check_model_drift": "workbench.monitoring.service",
    "load_profile": "workbench.monitoring.service",
}

__all__ = [
    "Comparison",
    "DriftCheck",
    "DriftResult",
    "FeatureDrift",
    "ReferenceProfile",
    "Thresholds",
    "build_profile",
    "check_drift",
    "check_model_drift",
    "compare_models",
    "load_profile",
    "replay_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench.monitoring' has no attribute {name!r}")
