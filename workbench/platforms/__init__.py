"""Where the tracking server runs: the embedded platform (a local ``mlflow server`` process,
no Docker) or the compose platform (``compose.py``: Postgres, MinIO, MLflow, pgAdmin,
JupyterLab). Both hand out a tracking URI (the compose platform also a non-admin tracking
user) and nothing else: clients never need the stores' credentials because artifacts are
proxied through the server. Neither builds images: that is ``packaging/``'s job."""
from workbench.platforms.embedded import EmbeddedPlatform, PlatformStatus

__all__ = ["EmbeddedPlatform", "PlatformStatus"]
