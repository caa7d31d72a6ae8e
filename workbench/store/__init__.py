"""The prediction store: versioned tables (``schema``), the batched writer the server logs
through (``writer``), and windowed reads for monitoring (``reader``).

``python -m workbench.store prepare --url URL`` creates or migrates the tables (run it as the
database's owner; the server then needs only INSERT on ``predictions`` and SELECT on the meta
table).
"""
from __future__ import annotations

from workbench.store.engine import sqlite_url
from workbench.store.reader import read_predictions
from workbench.store.schema import SCHEMA_VERSION, StoreSchemaError, prepare
from workbench.store.writer import LogStats, PredictionLog, PredictionRecord

__all__ = ["SCHEMA_VERSION", "LogStats", "PredictionLog", "PredictionRecord", "StoreSchemaError",
           "prepare", "read_predictions", "sqlite_url"]
