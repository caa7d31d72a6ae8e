"""The job's bookkeeping in MLflow, behind one small interface.

``ClientTracker`` does it with an MlflowClient in this process. ``BackgroundTracker`` does
the same calls in a forked helper process: a cold ``workbench run`` then imports MLflow
(about 1 s) on one core while papermill is imported (about 1.4 s) on the other, instead of
one after the other. The runner cannot tell them apart.
"""
from __future__ import annotations

import functools
import multiprocessing
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from workbench import lineage
from workbench.config import Settings
from workbench.errors import TrackingError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from mlflow import MlflowClient


@dataclass(frozen=True)
class Settlement:
    """What finishing a job's run did.

    Attributes:
        removed: the model versions a failed or killed run had registered and that are gone.
        problems: one line per step that could not be done (the others were still tried).
        terminated: whether the run's terminal status was set.
    """

    removed: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    terminated: bool = False


class JobTracker(Protocol):
    def start(self, experiment: str, run_name: str, tags: Mapping[str, str],
              params: Mapping[str, Any]) -> tuple[str, str]:
        """Create the job's RUNNING run; returns (run id, experiment id)."""

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def finish(self, run_id: str, output: Path, status: str,
               tags: Mapping[str, str] | None = None) -> Settlement:
        """Tag the run (``tags`` and the output notebook), log the output notebook, set the
        terminal status and, unless it is FINISHED, remove the model versions the run
        registered. Every step is tried even when an earlier one fails; what failed is
        returned, not raised."""

    def close(self) -> None: ...


class ClientTracker:
    """JobTracker over an MlflowClient in this process."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def start(self, experiment: str, run_name: str, tags: Mapping[str, str],
              params: Mapping[str, Any]) -> tuple[str, str]:
        from workbench.tracking import start_run

        run_id = start_run(self.client, experiment, run_name, tags, params)
        return run_id, self.client.get_run(run_id).info.experiment_id

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def finish(self, run_id: str, output: Path, status: str,
               tags: Mapping[str, str] | None = None) -> Settlement:
        problems: list[str] = []

        def attempt(what: str, step: Callable[[], object]) -> bool:
            try:
                step()
            except Exception as exc:
                problems.append(f"cannot {what}: {_first_line(exc)}")
                return False
            return True

        attempt("tag the run", lambda: self.set_tags(
            run_id, {**(tags or {}), lineage.OUTPUT_NOTEBOOK: str(output)}))
        # The executed notebook, and the job's log (the container's, or the local kernel's).
        for path in (output, output.with_suffix(".log")):
            if path.exists():
                attempt(f"log {path.name}", functools.partial(
                    self.client.log_artifact, run_id, str(path), artifact_path="job"))
        # The kernel's own atexit may have ended the run FINISHED; the job's verdict wins.
        terminated = attempt(f"mark the run {status}",
                             lambda: self.client.set_terminated(run_id, status))
        removed: list[str] = []
        if status != "FINISHED":
            # Tried even when marking the run failed: a failed job leaves no instance.
            attempt("find the model versions it registered",
                    lambda: self._remove_registered(run_id, removed, problems))
        return Settlement(tuple(removed), tuple(problems), terminated)

    def _remove_registered(self, run_id: str, removed: list[str], problems: list[str]) -> None:
        """Delete the model versions ``run_id`` registered, one by one, each whatever the
        others do; the names of the deleted ones go to ``removed``."""
        for version in self.client.search_model_versions(f"run_id = '{run_id}'"):
            label = (version.tags or {}).get("model_name") or f"{version.name}/{version.version}"
            try:
                self.client.delete_model_version(version.name, version.version)
            except Exception as exc:
                problems.append(f"cannot remove model version {label}: {_first_line(exc)}")
            else:
                removed.append(label)

    def close(self) -> None:
        pass


class BackgroundTracker:
    """JobTracker whose MlflowClient lives in a forked helper process.

    Fork it first thing, before heavy imports and threads, so the child is cheap and safe.
    Calls are sent over a pipe one at a time; an error in the child comes back as a
    TrackingError with the child's one-line description.
    """

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, settings), daemon=True,
                                        name="workbench-tracker")
        self._process.start()
        child.close()

    def _call(self, method: str, *args: Any) -> Any:
        try:
            self._conn.send((method, args))
            ok, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise TrackingError("the tracking helper process ended unexpectedly "
                                f"({exc.__class__.__name__})") from exc
        if not ok:
            raise TrackingError(value)
        return value

    def start(self, experiment: str, run_name: str, tags: Mapping[str, str],
              params: Mapping[str, Any]) -> tuple[str, str]:
        return self._call("start", experiment, run_name, dict(tags), dict(params))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call("set_tags", run_id, dict(tags))

    def finish(self, run_id: str, output: Path, status: str,
               tags: Mapping[str, str] | None = None) -> Settlement:
        settlement: Settlement = self._call("finish", run_id, output, status, dict(tags or {}))
        return settlement

    def close(self) -> None:
        if self._process.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
        self._conn.close()


def _serve(conn: Connection, settings: Settings) -> None:
    """The helper process: import MLflow now, then answer calls until told to stop."""
    # Ctrl-C reaches the whole process group; the parent handles it and then asks this
    # process to mark the run KILLED, so the helper must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from workbench.tracking import make_client

    tracker = ClientTracker(make_client(settings))
    while True:
        try:
            request = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if request is None:
            return
        method, args = request
        try:
            conn.send((True, getattr(tracker, method)(*args)))
        except Exception as exc:
            conn.send((False, _first_line(exc)))


def _first_line(exc: BaseException) -> str:
    line = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{exc.__class__.__name__}: {line}"
