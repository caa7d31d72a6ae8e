"""mlops-workbench: a Jupyter-first MLOps workbench.

``%load_ext workbench`` registers the magics. The library API below is importable without
IPython, and lazily: ``import workbench`` stays cheap because MLflow is imported only when a
function that talks to it is called.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import (
    DriftDetected,
    InvalidModelName,
    JobFailed,
    JobKilled,
    ModelAlreadyRegistered,
    ModelNotFound,
    MonitoringError,
    ParameterError,
    PlatformError,
    PromotionRefused,
    WorkbenchError,
)
from workbench.naming import ModelName, ModelRef, build_name, parse_ref

if TYPE_CHECKING:
    from workbench.jobs import JobResult, JobSpec, run_job
    from workbench.monitoring.service import check_model_drift
    from workbench.platforms import EmbeddedPlatform
    from workbench.predict import predict_file, predict_frame
    from workbench.registry import Instance, Registry

# Artifacts always go through the tracking server. With an S3 artifact store MLflow 3.17's
# server offers presigned URLs instead, which point at the store's own address (e.g.
# http://minio:9000): unreachable from the host, and the opposite of "clients need no
# storage access". A user who wants direct multipart transfers can still set these.
os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "false")

_LAZY = {
    "Registry": "workbench.registry",
    "Instance": "workbench.registry",
    "EmbeddedPlatform": "workbench.platforms",
    "JobSpec": "workbench.jobs",
    "JobResult": "workbench.jobs",
    "run_job": "workbench.jobs",
    "predict_file": "workbench.predict",
    "predict_frame": "workbench.predict",
    "check_model_drift": "workbench.monitoring.service",
}

__all__ = [
    "__version__", "Settings", "ModelName", "ModelRef", "build_name", "parse_ref",
    "WorkbenchError", "InvalidModelName", "ModelNotFound", "ModelAlreadyRegistered",
    "ParameterError", "PlatformError", "JobFailed", "JobKilled", "MonitoringError", "DriftDetected",
    "PromotionRefused",
    *_LAZY, "load_ipython_extension",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext workbench``: register ``%mlops_track`` and ``%mlops_package``."""
    from workbench.magics import register

    register(ipython)
