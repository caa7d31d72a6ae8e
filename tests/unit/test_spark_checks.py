"""The Spark engine's checks that need no Spark (no JVM is started); its settings are in
test_config.py."""
from __future__ import annotations

import sys

import pytest

from workbench.engines.spark import check_master, require_spark
from workbench.errors import MissingDependency, WorkbenchError
from workbench.pytest_plugin import free_port


def test_without_pyspark_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(MissingDependency, match=r"pip install 'mlops-workbench\[spark\]'"):
        require_spark()


def test_a_master_that_does_not_answer_is_said_at_once():
    master = f"spark://127.0.0.1:{free_port()}"
    with pytest.raises(WorkbenchError, match="cannot reach the Spark master") as raised:
        check_master(master, timeout=2)
    assert master in str(raised.value) and "\n" not in str(raised.value)
    check_master("local[2]")  # nothing to reach
