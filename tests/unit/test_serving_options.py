"""The server's WORKBENCH_SERVE_* variables: defaults, values, and one line for a bad one."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workbench.errors import ConfigError
from workbench.serving.options import ServeOptions
from workbench.serving.protocol import Limits


def test_unset_variables_take_the_defaults() -> None:
    options = ServeOptions.from_env({})
    assert options.limits == Limits()
    assert (options.log_url, options.metadata, options.log_batch_size,
            options.log_flush_interval, options.log_max_backlog) == ("", {}, 500, 0.5, 10_000)


def test_values_are_read() -> None:
    options = ServeOptions.from_env({
        "WORKBENCH_SERVE_MAX_ROWS": "50", "WORKBENCH_SERVE_MAX_BODY_BYTES": "65536",
        "WORKBENCH_SERVE_LOG_MAX_BACKLOG": "10_000", "WORKBENCH_SERVE_LOG_BATCH_SIZE": " 20 ",
        "WORKBENCH_SERVE_LOG_FLUSH_INTERVAL": "0.25",
        "WORKBENCH_SERVE_METADATA": '{"full_name": "churn_v1_20240101"}'})
    assert options.limits == Limits(50, 65536)
    assert (options.log_max_backlog, options.log_batch_size, options.log_flush_interval) == (
        10_000, 20, 0.25)
    assert options.metadata == {"full_name": "churn_v1_20240101"}


def test_batching_timeout_guard_follow_and_shadow_are_read() -> None:
    defaults = ServeOptions.from_env({})
    assert (defaults.max_batch_rows, defaults.max_batch_wait_ms, defaults.timeout_ms,
            defaults.allowed_hosts, defaults.token, defaults.follow, defaults.shadow) == (
        1024, 2.0, 60_000, (), "", "", "")
    options = ServeOptions.from_env({
        "WORKBENCH_SERVE_MAX_BATCH_ROWS": "64", "WORKBENCH_SERVE_MAX_BATCH_WAIT_MS": "2.5",
        "WORKBENCH_SERVE_TIMEOUT_MS": "0", "WORKBENCH_SERVE_ALLOWED_HOSTS": "serving, wb.local,",
        "WORKBENCH_SERVE_TOKEN": " s3cret ", "WORKBENCH_SERVE_FOLLOW": "churn@champion",
        "WORKBENCH_SERVE_POLL_S": "0.5", "WORKBENCH_SERVE_SHADOW": "models:/churn/4"})
    assert (options.max_batch_rows, options.max_batch_wait_ms, options.timeout_ms) == (64, 2.5, 0)
    assert options.allowed_hosts == ("serving", "wb.local") and options.token == "s3cret"
    assert (options.follow, options.poll_s, options.shadow) == ("churn@champion", 0.5,
                                                                "models:/churn/4")
    assert "s3cret" not in repr(options)


@pytest.mark.parametrize("name, value", [
    ("WORKBENCH_SERVE_MAX_ROWS", "ten"), ("WORKBENCH_SERVE_MAX_ROWS", "0"),
    ("WORKBENCH_SERVE_MAX_BODY_BYTES", "1.5"), ("WORKBENCH_SERVE_LOG_MAX_BACKLOG", "-3"),
    ("WORKBENCH_SERVE_LOG_BATCH_SIZE", "lots"), ("WORKBENCH_SERVE_LOG_FLUSH_INTERVAL", "nan"),
    ("WORKBENCH_SERVE_LOG_FLUSH_INTERVAL", "0"), ("WORKBENCH_SERVE_METADATA", "{oops"),
    ("WORKBENCH_SERVE_METADATA", "[1, 2]"), ("WORKBENCH_SERVE_MAX_BATCH_ROWS", "0"),
    ("WORKBENCH_SERVE_MAX_BATCH_WAIT_MS", "-1"), ("WORKBENCH_SERVE_TIMEOUT_MS", "soon"),
    ("WORKBENCH_SERVE_POLL_S", "0"),
])
def test_a_malformed_value_is_a_config_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServeOptions.from_env({name: value})
    assert str(info.value).startswith(name) and "\n" not in str(info.value)


def test_the_uvicorn_factory_says_a_bad_value_in_one_line() -> None:
    env = {**os.environ, "WORKBENCH_SERVE_MAX_ROWS": "ten", "WORKBENCH_SERVE_MODEL_DIR": "/nowhere"}
    done = subprocess.run([sys.executable, "-c",
                           "from workbench.serving.app import app_from_env; app_from_env()"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: WORKBENCH_SERVE_MAX_ROWS")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_fastapi_has_no_route_for_invocations() -> None:
    """The lean ASGI path takes every POST /invocations; the docs still describe it."""
    from workbench.serving import app as serving_app

    class Model:
        name = "m"
        metadata = None

        def signature_json(self) -> list:
            return []

    served = serving_app.create_app(Model())  # type: ignore[arg-type]
    assert [r for r in served.api.routes if getattr(r, "path", "") == "/invocations"] == []
    paths = served.api.openapi()["paths"]
    assert "post" in paths["/invocations"] and "text/csv" in str(paths["/invocations"])
