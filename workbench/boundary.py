"""What a face says about an exception: one line, an exit status, and whether it is a bug.

Every face (the CLI, the magics, the widgets) ends in the same place when something goes
wrong, so the reading is done once, here:

- a :class:`~workbench.errors.WorkbenchError` is said as it is (its message already says
  what is wrong and how to fix it);
- an MLflow error or a connection error that escaped the library is said the way
  :mod:`workbench.client` says tracking failures: the server's URI and how to start it;
- anything else is a bug in the workbench: one line saying so and how to see the traceback.

Tracebacks are the faces' business: they show one only when :func:`debug_requested`
(``WORKBENCH_DEBUG=1``, or the CLI's ``--debug``) says so. This module imports neither
click nor IPython, and MLflow only when the exception came from it.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from workbench.config import Settings, debug_requested
from workbench.errors import ConfigError, WorkbenchError

__all__ = ["Failure", "debug_requested", "describe"]


@dataclass(frozen=True)
class Failure:
    """An exception as a face presents it.

    Attributes:
        message: what to print (one line, except messages that carry a log tail on purpose).
        exit_code: the CLI's exit status.
        bug: the exception was not one the workbench raises on purpose.
    """

    message: str
    exit_code: int
    bug: bool = False


def describe(error: BaseException, doing: str, *,
             settings: Callable[[], Settings] = Settings.from_env,
             debug_hint: str = "run again with WORKBENCH_DEBUG=1") -> Failure:
    """How a face reports ``error``, raised while it was ``doing`` something.

    Args:
        error: what the command raised.
        doing: the command, as a phrase (``"workbench models list"``).
        settings: builds the settings that name the tracking server (called only for
            MLflow and connection errors).
        debug_hint: how this face shows tracebacks, for the line that reports a bug.
    """
    if isinstance(error, WorkbenchError):
        return Failure(str(error), error.exit_code)
    if _is_tracking_error(error):
        from workbench import client

        try:
            known = settings()
        except ConfigError as config_error:
            return Failure(str(config_error), config_error.exit_code)
        return Failure(str(client.as_tracking_error(known, doing, error)), 1)
    first = str(error).strip().splitlines()
    detail = f": {first[0][:200]}" if first else ""
    return Failure(
        f"{doing} failed with an unexpected {type(error).__name__}{detail}. This is a bug in the "
        f"workbench; {debug_hint} to see the traceback, and report it", 1, bug=True)


def _is_tracking_error(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    if "mlflow" in sys.modules:
        from mlflow.exceptions import MlflowException

        if isinstance(error, MlflowException):
            return True
    if "requests" in sys.modules:
        import requests

        return isinstance(error, requests.exceptions.RequestException)
    return False
