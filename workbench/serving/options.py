"""The server's ``WORKBENCH_SERVE_*`` variables, read and checked in one place.

``workbench serve`` sets them for its workers (and a model image sets some in its Dockerfile);
every worker reads them again. Reading them in the parent first turns a malformed value into
one line before any worker starts, instead of a traceback per worker.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from workbench.errors import ConfigError
from workbench.serving.protocol import Limits

ENV_MODEL = "WORKBENCH_SERVE_MODEL"
ENV_MODEL_DIR = "WORKBENCH_SERVE_MODEL_DIR"
ENV_METADATA = "WORKBENCH_SERVE_METADATA"
ENV_LOG_URL = "WORKBENCH_SERVE_LOG_URL"
ENV_LOG_ID_COLUMN = "WORKBENCH_SERVE_LOG_ID_COLUMN"
ENV_MAX_ROWS = "WORKBENCH_SERVE_MAX_ROWS"
ENV_MAX_BODY = "WORKBENCH_SERVE_MAX_BODY_BYTES"
ENV_LOG_MAX_BACKLOG = "WORKBENCH_SERVE_LOG_MAX_BACKLOG"
ENV_LOG_BATCH_SIZE = "WORKBENCH_SERVE_LOG_BATCH_SIZE"
ENV_LOG_FLUSH_INTERVAL = "WORKBENCH_SERVE_LOG_FLUSH_INTERVAL"
ENV_MAX_BATCH_ROWS = "WORKBENCH_SERVE_MAX_BATCH_ROWS"
ENV_MAX_BATCH_WAIT_MS = "WORKBENCH_SERVE_MAX_BATCH_WAIT_MS"
ENV_TIMEOUT_MS = "WORKBENCH_SERVE_TIMEOUT_MS"
ENV_ALLOWED_HOSTS = "WORKBENCH_SERVE_ALLOWED_HOSTS"
ENV_TOKEN = "WORKBENCH_SERVE_TOKEN"
ENV_FOLLOW = "WORKBENCH_SERVE_FOLLOW"
ENV_POLL_S = "WORKBENCH_SERVE_POLL_S"
ENV_SHADOW = "WORKBENCH_SERVE_SHADOW"
ENV_SHADOW_FOLLOW = "WORKBENCH_SERVE_SHADOW_FOLLOW"

DEFAULT_LOG_MAX_BACKLOG = 10_000
DEFAULT_LOG_BATCH_SIZE = 500
DEFAULT_LOG_FLUSH_INTERVAL = 0.5
DEFAULT_MAX_BATCH_ROWS = 1024
DEFAULT_TIMEOUT_MS = 60_000  # as mlflow models serve's default request timeout
DEFAULT_POLL_S = 10.0
DEFAULT_MAX_BATCH_WAIT_MS = 2.0


@dataclass(frozen=True)
class ServeOptions:
    """What a server process is told through its environment.

    Attributes:
        model: a models:/ URI to load (unless ``model_dir`` is set).
        model_dir: a folder in MLflow format to load instead.
        metadata: what ``/metadata`` says about a model loaded from a folder.
        log_url: SQLAlchemy URL of the prediction store; empty logs nothing.
        log_id_column: the input column logged beside each record as its label id
            (``workbench serve`` sets it from ``WORKBENCH_LABEL_ID_COLUMN``); empty: none.
        limits: row and body-size limits.
        log_max_backlog, log_batch_size, log_flush_interval: the prediction writer's bounds.
        max_batch_rows, max_batch_wait_ms: how requests are merged (see ``batching``).
        timeout_ms: a request not answered by then gets 504; 0 turns the limit off.
        allowed_hosts: host names accepted in ``Host``/``Origin`` beside localhost's.
        token: the bearer token requests must carry; empty: none.
        follow: a reference (``churn@champion``) to watch; its new instances are swapped in.
        poll_s: how often ``follow`` and ``shadow_follow`` look at the registry.
        shadow: a models:/ URI scored beside the served model, off the response path.
        shadow_follow: a reference whose new instances replace the shadow.
    """

    model: str = ""
    model_dir: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    log_url: str = ""
    log_id_column: str = ""
    limits: Limits = field(default_factory=Limits)
    log_max_backlog: int = DEFAULT_LOG_MAX_BACKLOG
    log_batch_size: int = DEFAULT_LOG_BATCH_SIZE
    log_flush_interval: float = DEFAULT_LOG_FLUSH_INTERVAL
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    max_batch_wait_ms: float = DEFAULT_MAX_BATCH_WAIT_MS
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    allowed_hosts: tuple[str, ...] = ()
    token: str = field(default="", repr=False)
    follow: str = ""
    poll_s: float = DEFAULT_POLL_S
    shadow: str = ""
    shadow_follow: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeOptions:
        """Read the options; unset or empty variables take their defaults.

        Raises:
            ConfigError: a variable's value is malformed (the message names it and says
                what it expects).
        """
        env = os.environ if environ is None else environ
        return cls(
            model=env.get(ENV_MODEL, ""),
            model_dir=env.get(ENV_MODEL_DIR, ""),
            metadata=_json_object(env, ENV_METADATA),
            log_url=env.get(ENV_LOG_URL, ""),
            log_id_column=env.get(ENV_LOG_ID_COLUMN, "").strip(),
            limits=Limits(_positive_int(env, ENV_MAX_ROWS, Limits.max_rows),
                          _positive_int(env, ENV_MAX_BODY, Limits.max_body_bytes)),
            log_max_backlog=_positive_int(env, ENV_LOG_MAX_BACKLOG, DEFAULT_LOG_MAX_BACKLOG),
            log_batch_size=_positive_int(env, ENV_LOG_BATCH_SIZE, DEFAULT_LOG_BATCH_SIZE),
            log_flush_interval=_positive_float(env, ENV_LOG_FLUSH_INTERVAL,
                                               DEFAULT_LOG_FLUSH_INTERVAL),
            max_batch_rows=_positive_int(env, ENV_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_ROWS),
            max_batch_wait_ms=_milliseconds(env, ENV_MAX_BATCH_WAIT_MS, DEFAULT_MAX_BATCH_WAIT_MS),
            timeout_ms=int(_milliseconds(env, ENV_TIMEOUT_MS, DEFAULT_TIMEOUT_MS)),
            allowed_hosts=tuple(h.strip() for h in env.get(ENV_ALLOWED_HOSTS, "").split(",")
                                if h.strip()),
            token=env.get(ENV_TOKEN, "").strip(),
            follow=env.get(ENV_FOLLOW, "").strip(),
            poll_s=_positive_float(env, ENV_POLL_S, DEFAULT_POLL_S),
            shadow=env.get(ENV_SHADOW, "").strip(),
            shadow_follow=env.get(ENV_SHADOW_FOLLOW, "").strip(),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, not {raw[:40]!r}; "
                          f"unset it for the default ({default})")
    return value


def _milliseconds(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, zero_allowed=True, what="a number of milliseconds (0 or more)")


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, zero_allowed=False, what="a positive number of seconds")


def _number(env: Mapping[str, str], name: str, default: float, *, zero_allowed: bool,
            what: str) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw.replace("_", ""))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value > 0 or (zero_allowed and value == 0))):
        raise ConfigError(f"{name} must be {what}, not {raw[:40]!r}; unset it for the "
                          f"default ({default:g})")
    return value


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object (the model's metadata, e.g. "
                          '{"full_name": "churn_v1_20240101"}); unset it or fix its value')
    return value
