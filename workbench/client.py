"""The tracking server as the workbench's clients see it: does it answer, and what an error means.

MLflow's client raises one exception type, ``MlflowException``, for "this model does not
exist", "the server refused the request" and "nothing answers at that address" alike, and
retries a dead server with backoff for minutes. The workbench tells these apart here, once:

- :func:`is_not_found` is the only way to read an MLflow error as "not found" (its
  ``RESOURCE_DOES_NOT_EXIST`` error code);
- :func:`mlflow_errors` turns every other MLflow or connection error into a
  :class:`~workbench.errors.TrackingError` that names the server and what failed;
- :func:`require_server` answers in seconds whether an HTTP server is there at all, so a face
  can say so before MLflow's retries start.

The core (registry, jobs, serving, monitoring) uses this module; ``platforms/`` uses
:func:`answers` to wait for the server it starts. It imports nothing of the workbench's but
its errors.
"""
from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from workbench.errors import TrackingError

if TYPE_CHECKING:
    from workbench.config import Settings

#: How long a face waits for ``/health`` before it says the server is down.
PROBE_TIMEOUT_S = 3.0
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


def answers(uri: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether an MLflow server answers ``/health`` at ``uri`` (an ``http(s)://`` URI)."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_hint(settings: Settings) -> str:
    """How to bring the configured tracking server up, for the end of an error line."""
    if settings.tracking_uri == settings.embedded_tracking_uri:
        return "start it with `workbench platform up`"
    return ("start the platform that serves it (`workbench platform up --compose`) "
            "or point MLFLOW_TRACKING_URI at one that runs")


def require_server(settings: Settings) -> None:
    """Fail in one line, within seconds, when an HTTP tracking server does not answer.

    A ``file:`` or database tracking URI needs no server and always passes.

    Raises:
        TrackingError: the server does not answer ``/health``.
    """
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")) and not answers(uri):
        raise TrackingError(f"no tracking server answers at {uri}; {start_hint(settings)}")


def is_not_found(error: BaseException) -> bool:
    """Whether an MLflow error means "no such entity" (and nothing else)."""
    return getattr(error, "error_code", None) == NOT_FOUND


@contextmanager
def mlflow_errors(settings: Settings, doing: str) -> Iterator[None]:
    """Turn MLflow and connection errors raised inside the block into one honest line.

    "Not found" errors pass through unchanged, so callers can still catch them (with
    :func:`is_not_found`) where absence has a meaning.

    Args:
        settings: names the tracking server in the message.
        doing: what was being done, as a gerund phrase (``"listing registered models"``).

    Raises:
        TrackingError: any other MLflow error, or the server could not be reached.
    """
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        if is_not_found(error):
            raise
        raise TrackingError(_describe(settings, doing, error)) from error
    except (ConnectionError, TimeoutError) as error:
        raise TrackingError(
            f"{doing} failed: no tracking server answers at {settings.tracking_uri}; "
            f"{start_hint(settings)}"
        ) from error


def as_tracking_error(settings: Settings, doing: str, error: BaseException) -> TrackingError:
    """``error`` (an MLflow or connection error, "not found" included) as one honest line.

    For faces that catch what escaped the library; :func:`mlflow_errors` is the way in.
    """
    if _caused_by_connection(error) and not hasattr(error, "error_code"):
        return TrackingError(f"{doing} failed: no tracking server answers at "
                             f"{settings.tracking_uri}; {start_hint(settings)}")
    return TrackingError(_describe(settings, doing, error))


def _describe(settings: Settings, doing: str, error: BaseException) -> str:
    code = getattr(error, "error_code", None) or "ERROR"
    message = str(getattr(error, "message", None) or error).strip().splitlines()
    first = message[0] if message else type(error).__name__
    if len(first) > 200:
        first = first[:197] + "..."
    if _caused_by_connection(error) or "Max retries exceeded" in first:
        # MLflow wraps a dead server in an MlflowException after its retries.
        return (f"{doing} failed: no tracking server answers at {settings.tracking_uri}; "
                f"{start_hint(settings)}")
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED") or "401" in first or "403" in first:
        return (f"{doing} was refused by {settings.tracking_uri} ({code}); set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user it accepts")
    return f"{doing} failed at {settings.tracking_uri} ({code}): {first}"


def _caused_by_connection(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (ConnectionError, TimeoutError)) or type(seen).__name__ in (
                "ConnectionError", "MaxRetryError", "NewConnectionError",
                "ConnectTimeout", "ReadTimeout", "ReadTimeoutError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
