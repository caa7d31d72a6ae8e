"""``workbench serve``: resolve the model once, then run uvicorn with N workers.

The reference is resolved here, before any worker starts, so a bad name fails in one line,
and pinned to its MLflow version number, so every worker serves the same instance even if
an alias moves while they start.
"""
from __future__ import annotations

import os
from pathlib import Path

from workbench.config import Settings
from workbench.errors import ConfigError, WorkbenchError
from workbench.progress import Progress
from workbench.serving import app as serving_app
from workbench.serving import options as options_module
from workbench.serving.options import ServeOptions


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
    max_batch_rows: int | None = None,
    max_batch_wait_ms: float | None = None,
    timeout_ms: int | None = None,
    allowed_hosts: tuple[str, ...] = (),
    token: str | None = None,
    follow: bool = False,
    poll_s: float | None = None,
    shadow: str | None = None,
    progress: Progress = lambda _: None,
) -> None:
    """Serve ``ref`` until SIGTERM/SIGINT, then drain requests and flush the prediction log.

    Everything that can be wrong with the input is checked before a worker starts: the
    options, the ``WORKBENCH_SERVE_*`` variables, the store URL and the store's schema (an
    older one is migrated, a foreign one refused), then the model reference.

    Args:
        log_url: SQLAlchemy URL of the prediction store; ``""`` turns logging off; ``None``
            uses the settings' store (SQLite under the state directory by default).
        max_batch_rows, max_batch_wait_ms: how waiting requests are merged (``batching``).
        timeout_ms: a request not answered by then gets 504 (0: no limit).
        allowed_hosts: host names accepted in ``Host``/``Origin`` beside localhost's.
        token: the bearer token every request but /health and /ready must carry.
        follow: watch ``ref``'s alias and swap its new instances in (and the shadow's).
        poll_s: seconds between two looks at the registry for ``follow``.
        shadow: a reference scored beside ``ref`` off the response path, logged as shadow.

    Raises:
        ConfigError: an option or a ``WORKBENCH_SERVE_*`` value is malformed, or the store URL
            cannot be used.
        StoreSchemaError: the store holds tables that are not the workbench's, a newer schema,
            or an older one this role may not migrate.
        InvalidModelName, ModelNotFound: ``ref`` is malformed or unknown.
        TrackingError: no tracking server answers.
    """
    import uvicorn

    for option, value in (("--workers", workers), ("--max-rows", max_rows),
                          ("--max-body-bytes", max_body_bytes), ("--max-batch-rows", max_batch_rows)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be at least 1, not {value}")
    store = settings.prediction_store_url if log_url is None else log_url
    given = {serving_app.ENV_MAX_ROWS: max_rows, serving_app.ENV_MAX_BODY: max_body_bytes,
             options_module.ENV_MAX_BATCH_ROWS: max_batch_rows,
             options_module.ENV_MAX_BATCH_WAIT_MS: max_batch_wait_ms,
             options_module.ENV_TIMEOUT_MS: timeout_ms, options_module.ENV_POLL_S: poll_s,
             options_module.ENV_TOKEN: token,
             options_module.ENV_LOG_ID_COLUMN: settings.label_id_column or None,
             options_module.ENV_ALLOWED_HOSTS: ",".join(allowed_hosts) or None}
    updates = {serving_app.ENV_LOG_URL: store,
               **{name: str(value) for name, value in given.items() if value is not None}}
    options = ServeOptions.from_env({**os.environ, **updates})
    where = _check_store(store, progress)
    os.environ.update(settings.as_env())
    os.environ.update(updates)
    # A server log wants lines, not a download progress bar per worker.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    label, source = _pin_model(ref, settings, options)
    for name in (options_module.ENV_FOLLOW, options_module.ENV_SHADOW,
                 options_module.ENV_SHADOW_FOLLOW):
        os.environ.pop(name, None)
    if follow:
        os.environ[options_module.ENV_FOLLOW] = _alias_ref(ref, "--follow")
    if shadow:
        shadow_label, shadow_uri = _pin_shadow(shadow, settings)
        os.environ[options_module.ENV_SHADOW] = shadow_uri
        if follow and _has_alias(shadow):
            os.environ[options_module.ENV_SHADOW_FOLLOW] = shadow
        progress(f"shadow: {shadow_label} scores every request too, logged as role 'shadow'")
    if follow:
        progress(f"following {ref}: its new instances are swapped in (checked every "
                 f"{options.poll_s:g} s)")
    progress(f"serving {label} ({source}) on http://{host}:{port} with {workers} "
             f"worker(s); predictions logged to {where}")
    uvicorn.run(
        "workbench.serving.app:app_from_env", factory=True, host=host, port=port,
        workers=workers, log_level="warning", access_log=False,
        timeout_graceful_shutdown=30, server_header=False,
    )


def _check_store(url: str, progress: Progress) -> str:
    """Check the store before serving; returns where predictions go, for printing.

    Raises:
        ConfigError: the URL cannot be used.
        StoreSchemaError: see ``schema.ensure``.
    """
    if not url:
        return "nowhere"
    from workbench.store import engine, schema

    where = engine.redact(url)
    if not schema.check_at_start(url):
        progress(f"prediction store {where} does not answer now; predictions wait in a "
                 "bounded backlog until it does (see /metrics)")
    return where


def _pin_model(ref: str, settings: Settings, options: ServeOptions) -> tuple[str, str]:
    """Point the workers at the model: a folder in MLflow format (as a model image holds
    it, with its metadata in WORKBENCH_SERVE_METADATA), or a registry reference pinned to
    its version number. Returns the model's label and source."""
    folder = Path(ref)
    if (folder / "MLmodel").is_file():
        os.environ[serving_app.ENV_MODEL_DIR] = str(folder.resolve())
        os.environ.pop(serving_app.ENV_MODEL, None)
        return options.metadata.get("full_name") or str(folder), str(folder.resolve())

    from workbench.registry import Registry
    from workbench.tracking import require_server

    require_server(settings)
    instance = Registry(settings).resolve(ref)
    os.environ[serving_app.ENV_MODEL] = instance.uri
    os.environ.pop(serving_app.ENV_MODEL_DIR, None)
    return instance.label, instance.uri


def _has_alias(ref: str) -> bool:
    """Whether ``ref`` names an alias (``churn@champion``), which can move; a full name is an
    alias of itself that never does."""
    from workbench.naming import parse_ref

    try:
        return "@" in ref and parse_ref(ref).alias is not None
    except WorkbenchError:
        return False


def _alias_ref(ref: str, option: str) -> str:
    """``ref`` when it names an alias; ``--follow`` has nothing to watch otherwise."""
    if not _has_alias(ref):
        raise ConfigError(f"{option} watches an alias: serve a reference like churn@champion, "
                          f"not {ref[:80]!r}")
    return ref


def _pin_shadow(ref: str, settings: Settings) -> tuple[str, str]:
    """The shadow's label and its models:/ URI pinned to a version number.

    Raises:
        InvalidModelName, ModelNotFound: ``ref`` is malformed or unknown.
    """
    from workbench.registry import Registry

    if (Path(ref) / "MLmodel").is_file():
        raise ConfigError("--shadow takes a registry reference (churn@challenger), not a folder")
    instance = Registry(settings).resolve(ref)
    return instance.label, instance.uri
