"""``workbench serve``: resolve the model once, then run uvicorn with N workers.

The reference is resolved here, before any worker starts, so a bad name fails in one line,
and pinned to its MLflow version number, so every worker serves the same instance even if
an alias moves while they start.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from workbench.config import Settings
from workbench.serving import app as serving_app

Progress = Callable[[str], None]


def serve(
    ref: str,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_url: str | None = None,
    max_rows: int | None = None,
    max_body_bytes: int | None = None,
    progress: Progress = lambda _: None,
) -> None:
    """Serve ``ref`` until SIGTERM/SIGINT, then drain requests and flush the prediction log.

    Args:
        log_url: SQLAlchemy URL of the prediction store; ``""`` turns logging off; ``None``
            uses the settings' store (SQLite under the state directory by default).

    Raises:
        InvalidModelName, ModelNotFound: ``ref`` is malformed or unknown.
        TrackingError: no tracking server answers.
    """
    import uvicorn

    store = settings.prediction_store_url if log_url is None else log_url
    os.environ.update(settings.as_env())
    # A server log wants lines, not a download progress bar per worker.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    label, source = _pin_model(ref, settings)
    os.environ[serving_app.ENV_LOG_URL] = store
    if max_rows:
        os.environ[serving_app.ENV_MAX_ROWS] = str(max_rows)
    if max_body_bytes:
        os.environ[serving_app.ENV_MAX_BODY] = str(max_body_bytes)
    progress(f"serving {label} ({source}) on http://{host}:{port} with {workers} "
             f"worker(s); predictions logged to {_redact(store) or 'nowhere'}")
    uvicorn.run(
        "workbench.serving.app:app_from_env", factory=True, host=host, port=port,
        workers=workers, log_level="warning", access_log=False,
        timeout_graceful_shutdown=30, server_header=False,
    )


def _pin_model(ref: str, settings: Settings) -> tuple[str, str]:
    """Point the workers at the model: a folder in MLflow format (as a model image holds
    it, with its metadata in WORKBENCH_SERVE_METADATA), or a registry reference pinned to
    its version number. Returns the model's label and source."""
    folder = Path(ref)
    if (folder / "MLmodel").is_file():
        import orjson

        os.environ[serving_app.ENV_MODEL_DIR] = str(folder.resolve())
        os.environ.pop(serving_app.ENV_MODEL, None)
        try:
            meta = orjson.loads(os.environ.get(serving_app.ENV_METADATA) or "{}")
        except orjson.JSONDecodeError:
            meta = {}
        return meta.get("full_name") or str(folder), str(folder.resolve())

    from workbench.registry import Registry
    from workbench.tracking import require_server

    require_server(settings)
    instance = Registry(settings).resolve(ref)
    os.environ[serving_app.ENV_MODEL] = instance.uri
    os.environ.pop(serving_app.ENV_MODEL_DIR, None)
    return instance.label, instance.uri


def _redact(url: str) -> str:
    """A store URL without its password, for printing."""
    if not url:
        return ""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
