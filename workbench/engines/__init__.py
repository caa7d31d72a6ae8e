"""Engines that read and score datasets larger than one pandas frame.

- :mod:`~workbench.engines.local`: the streaming local engine: a file, a folder or a glob
  read batch by batch with pyarrow (Parquet row groups, CSV chunks), written as it goes, so
  memory stays flat however large the input. ``workbench predict`` uses it by default.
- :mod:`~workbench.engines.spark`: Apache Spark (the ``[spark]`` extra): batch scoring with
  ``mlflow.pyfunc.spark_udf``, drift checks and reference profiles as Spark aggregations,
  on ``local[*]`` or any cluster a ``--master`` names.

Imports are lazy: pyspark is imported only when the Spark engine is used.
"""
from __future__ import annotations

ENGINES = ("local", "spark")

__all__ = ["ENGINES"]
