"""Moved to ``workbench.store`` (schema, writer, reader); these names stay importable here
for code written against the old module."""
from __future__ import annotations

from workbench.store import LogStats, PredictionLog, PredictionRecord, read_predictions, sqlite_url

__all__ = ["LogStats", "PredictionLog", "PredictionRecord", "read_predictions", "sqlite_url"]
