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

# MLflow's client retries a failing request 7 times with exponential backoff (minutes on a
# dead server) and waits 120 s for an answer. The workbench's faces say "the server is
# down" in seconds instead: two quick retries ride out a blip, 15 s covers a slow answer
# (the timeout bounds each socket read, not a whole transfer). A user's own values win.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
for _name, _value in _HTTP_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

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
    "DriftDetected",
    "EmbeddedPlatform",
    "Instance",
    "InvalidModelName",
    "JobFailed",
    "JobKilled",
    "JobResult",
    "JobSpec",
    "ModelAlreadyRegistered",
    "ModelName",
    "ModelNotFound",
    "ModelRef",
    "MonitoringError",
    "ParameterError",
    "PlatformError",
    "PromotionRefused",
    "Registry",
    "Settings",
    "WorkbenchError",
    "__version__",
    "build_name",
    "check_model_drift",
    "load_ipython_extension",
    "parse_ref",
    "predict_file",
    "predict_frame",
    "run_job",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext workbench``: register ``%mlops_track`` and ``%mlops_package``.

    Silent and a no-op when the kernel preloaded the magics (the workbench's kernel spec
    does, through :mod:`workbench.preload`), so a notebook that says ``%load_ext workbench``
    for other kernels prints nothing in the workbench's own.
    """
    from workbench.magics import register

    register(ipython)
