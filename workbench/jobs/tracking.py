"""The job's bookkeeping in MLflow, behind one small interface.

``ClientTracker`` does it with an MlflowClient in this process. ``BackgroundTracker`` does
the same calls in a forked helper process: a cold ``workbench run`` then imports MLflow
(about 1 s) on one core while papermill is imported (about 1.4 s) on the other, instead of
one after the other. The runner cannot tell them apart.
"""
from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from workbench import lineage
from workbench.config import Settings
from workbench.errors import TrackingError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from mlflow import MlflowClient


class JobTracker(Protocol):
    def start(self, experiment: str, run_name: str, tags: Mapping[str, str],
              params: Mapping[str, Any]) -> tuple[str, str]:
        """Create the job's RUNNING run; returns (run id, experiment id)."""

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def finish(self, run_id: str, output: Path, status: str) -> list[str]:
        """Log the output notebook, set the terminal status; on failure remove the model
        versions the run registered and return their names."""

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

    def finish(self, run_id: str, output: Path, status: str) -> list[str]:
        try:
            self.client.set_tag(run_id, lineage.OUTPUT_NOTEBOOK, str(output))
            # The executed notebook, and the container's log when the job ran in one.
            for path in (output, output.with_suffix(".log")):
                if path.exists():
                    self.client.log_artifact(run_id, str(path), artifact_path="job")
        finally:
            # The kernel's own atexit may have ended the run FINISHED; the job's verdict wins.
            self.client.set_terminated(run_id, status)
        return [] if status == "FINISHED" else self._remove_registered(run_id)

    def _remove_registered(self, run_id: str) -> list[str]:
        """A failed run leaves no instance: delete the model versions it registered."""
        removed = []
        for version in self.client.search_model_versions(f"run_id = '{run_id}'"):
            self.client.delete_model_version(version.name, version.version)
            removed.append((version.tags or {}).get("model_name") or f"{version.name}/{version.version}")
        return removed

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
            raise TrackingError(f"the tracking helper process ended unexpectedly ({exc.__class__.__name__})") from exc
        if not ok:
            raise TrackingError(value)
        return value

    def start(self, experiment: str, run_name: str, tags: Mapping[str, str],
              params: Mapping[str, Any]) -> tuple[str, str]:
        return self._call("start", experiment, run_name, dict(tags), dict(params))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call("set_tags", run_id, dict(tags))

    def finish(self, run_id: str, output: Path, status: str) -> list[str]:
        return self._call("finish", run_id, output, status)

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
            line = (str(exc).strip().splitlines() or [""])[0][:300]
            conn.send((False, f"{exc.__class__.__name__}: {line}"))
