"""The embedded platform: a real ``mlflow server`` as a background process, no Docker.

Layout under ``<home>/platform``: ``mlflow.db`` (SQLite backend store), ``artifacts/``
(proxied artifact store), ``server.pid`` (JSON: pid, its start time, host, port),
``server.log`` and ``platform.lock``; when the project has policy files, the scheduler's
``scheduler.pid``, ``scheduler.log`` and ``scheduler.state`` (written by the scheduler once
its jobs are in its store, ``<home>/scheduler.db``).

The scheduler (:mod:`workbench.policy.scheduler`) is a second managed process, started by
``up`` after the server answers (the policies are checked before anything starts: a bad
policy file is one line per problem and nothing is started) and stopped by ``down`` before
the server; an ``up`` that finds it running asks it to reload the policy files (SIGHUP).

``up`` and ``down`` hold ``platform.lock`` (a ``filelock`` lock, released by the OS if the
holder dies) while they read and change the pid file, so two ``up`` at once start one server:
the second waits for the first and reports the server it started.

The server is started in its own session so that its process group holds everything it
starts (uvicorn workers, MLflow 3.17's job runner and its huey consumers); ``down`` signals
that group, by the pid recorded at start, and nothing else. Processes are inspected with
psutil, so this works on Linux and macOS alike.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import filelock
import psutil

from workbench.client import answers
from workbench.config import Settings
from workbench.errors import PlatformError, PortBusy
from workbench.progress import Progress


@dataclass(frozen=True)
class PlatformStatus:
    """What ``workbench platform status`` reports."""

    running: bool
    healthy: bool
    tracking_uri: str
    pid: int | None
    home: Path
    note: str = ""
    scheduler_pid: int | None = None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["home"] = str(self.home)
        return out


class EmbeddedPlatform:
    """Start, inspect and stop the embedded MLflow tracking server.

    Args:
        settings: host, port, state directory and start-up timeout come from here.
        workers: uvicorn worker processes for the server.
        scheduler: start the policy scheduler beside the server when the project has
            policy files.
    """

    def __init__(self, settings: Settings, workers: int = 2, scheduler: bool = True) -> None:
        self.settings = settings
        self.workers = workers
        self.scheduler = scheduler
        self.dir = settings.home / "platform"
        self.pid_file = self.dir / "server.pid"
        self.log_file = self.dir / "server.log"
        self.lock_file = self.dir / "platform.lock"
        self.backend_uri = f"sqlite:///{self.dir / 'mlflow.db'}"
        self.artifacts_dir = self.dir / "artifacts"
        self.scheduler_pid_file = self.dir / "scheduler.pid"
        self.scheduler_log_file = self.dir / "scheduler.log"

    @property
    def tracking_uri(self) -> str:
        return self.settings.embedded_tracking_uri

    # -- queries ---------------------------------------------------------------------------
    def status(self) -> PlatformStatus:
        """Whether the server recorded in the pid file runs and answers."""
        record = self._read_pid_file()
        scheduler = self._scheduler_pid()
        if record is None:
            return PlatformStatus(False, False, self.tracking_uri, None, self.settings.home,
                                  scheduler_pid=scheduler)
        pid, uri = record["pid"], record["tracking_uri"]
        if not _is_our_server(pid, record.get("started")):
            return PlatformStatus(
                False, False, uri, pid, self.settings.home,
                note=f"stale pid file {self.pid_file}: process {pid} is not running",
                scheduler_pid=scheduler,
            )
        return PlatformStatus(True, answers(uri), uri, pid, self.settings.home,
                              scheduler_pid=scheduler)

    def logs(self, lines: int = 50) -> str:
        """The last ``lines`` lines of the server log."""
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    # -- commands --------------------------------------------------------------------------
    def up(self, progress: Progress = lambda _: None) -> PlatformStatus:
        """Start the server unless it runs already; wait until it answers.

        Concurrent calls (other processes included) start one server: the others wait for
        the lock, then find it running and report it.

        Raises:
            PortBusy: another process listens on the port.
            PlatformError: the server exited or did not answer in time (with its log's tail),
                or another ``up`` held the lock for longer than the start-up timeout.
        """
        with self._locked(progress):
            policies = self._policies()
            status = self._up(progress)
            if policies:
                self._up_scheduler(progress)
                status = self.status()
            return status

    def _up(self, progress: Progress) -> PlatformStatus:
        current = self.status()
        if current.running and current.pid is not None:
            if not current.healthy:
                progress(f"server (pid {current.pid}) is starting; waiting for {current.tracking_uri}")
                self._wait_until_healthy(current.pid, current.tracking_uri)
            progress(f"mlflow server runs already (pid {current.pid}) at {current.tracking_uri}")
            return self.status()
        if current.note:  # stale pid file: the server died or the machine restarted
            progress(f"removed {current.note}")
            self.pid_file.unlink(missing_ok=True)

        host, port = self.settings.host, self.settings.port
        if not _port_free(host, port):
            raise PortBusy(
                f"port {port} on {host} is in use by another process; stop it, or pick another "
                f"port with --port or WORKBENCH_PORT"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.artifacts_dir.mkdir(exist_ok=True)
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", host, "--port", str(port),
            "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", str(self.artifacts_dir),
            "--serve-artifacts",
            "--workers", str(self.workers),
        ]
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        # MLflow 3.17 starts a job runner and eight huey consumers beside every server (for its
        # GenAI jobs): about 1 GB and seconds of CPU at start that the workbench never uses.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        progress(f"starting mlflow server on {self.tracking_uri} (store: {self.dir})")
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=self.dir,
            )
        self.pid_file.write_text(json.dumps({
            "pid": process.pid, "host": host, "port": port,
            "tracking_uri": self.tracking_uri, "started": _create_time(process.pid),
        }))
        try:
            self._wait_until_healthy(process.pid, self.tracking_uri, process)
        except BaseException:
            self._stop_group(process.pid)
            self.pid_file.unlink(missing_ok=True)
            raise
        progress(f"mlflow server is up (pid {process.pid})")
        return self.status()

    def down(self, progress: Progress = lambda _: None) -> PlatformStatus:
        """Stop the server and every process it started; keep the stores.

        Raises:
            PlatformError: an ``up`` held the lock for longer than the start-up timeout.
        """
        with self._locked(progress):
            return self._down(progress)

    def _down(self, progress: Progress) -> PlatformStatus:
        scheduler = self._scheduler_pid()
        if scheduler is not None:
            # First, so that no fire starts a job against a server that is going away.
            progress(f"stopping the scheduler (pid {scheduler})")
            self._stop_group(scheduler)
        self.scheduler_pid_file.unlink(missing_ok=True)
        current = self.status()
        if current.running and current.pid is not None:
            progress(f"stopping mlflow server (pid {current.pid})")
            self._stop_group(current.pid)
        elif current.note:
            progress(f"removed {current.note}")
        self.pid_file.unlink(missing_ok=True)
        return self.status()

    # -- the scheduler ---------------------------------------------------------------------
    def _policies(self) -> int:
        """How many policy files the scheduler would load; checked before anything starts.

        Raises:
            PolicyError: a policy file has a problem (one line each).
        """
        if not self.scheduler:
            return 0
        from workbench.policy.schema import load_policies

        return len(load_policies(self.settings.project_root, None, self.settings.policies_dir))

    def _scheduler_pid(self) -> int | None:
        """The pid of our running scheduler process, None when none runs."""
        try:
            record = json.loads(self.scheduler_pid_file.read_text())
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if _is_our_server(pid, record.get("started"), _SCHEDULER) else None

    def _up_scheduler(self, progress: Progress) -> None:
        from workbench.policy.scheduler import daemon_env, read_state, state_file

        running = self._scheduler_pid()
        if running is not None:
            os.kill(running, signal.SIGHUP)
            progress(f"scheduler runs already (pid {running}); asked it to reload the policies")
            return
        env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
               **daemon_env(self.settings)}
        progress(f"starting the scheduler (policies in {self.settings.policies_dir})")
        with open(self.scheduler_log_file, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", _SCHEDULER[0]], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, env=env,
                cwd=self.settings.project_root)
        self.scheduler_pid_file.write_text(json.dumps(
            {"pid": process.pid, "started": _create_time(process.pid)}))
        deadline = time.monotonic() + self.settings.startup_timeout
        while (read_state(self.settings) or {}).get("pid") != process.pid:
            exited = process.poll()
            if exited is not None or time.monotonic() > deadline:
                if exited is None:
                    self._stop_group(process.pid)
                self.scheduler_pid_file.unlink(missing_ok=True)
                what = f"exited with status {exited}" if exited is not None else "did not start"
                raise PlatformError(
                    f"the scheduler {what} (it writes {state_file(self.settings)} when ready); last lines of "
                    f"{self.scheduler_log_file}:\n{self._tail(self.scheduler_log_file, 15)}")
            time.sleep(0.1)
        progress(f"scheduler is up (pid {process.pid})")

    @staticmethod
    def _tail(path: Path, lines: int) -> str:
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------
    @contextmanager
    def _locked(self, progress: Progress) -> Iterator[None]:
        """Hold ``platform.lock``; say so when another process holds it, and wait for it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.lock_file)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            progress(f"another `workbench platform` command holds {self.lock_file}; waiting")
            # It may be starting the server: allow it the whole start-up, and a margin.
            wait = self.settings.startup_timeout + 30
            try:
                lock.acquire(timeout=wait)
            except filelock.Timeout:
                raise PlatformError(
                    f"another `workbench platform` command held {self.lock_file} for more than "
                    f"{wait:.0f} s; wait for it to end, or stop it"
                ) from None
        try:
            yield
        finally:
            lock.release()

    def _read_pid_file(self) -> dict | None:
        try:
            record = json.loads(self.pid_file.read_text())
            int(record["pid"]), str(record["tracking_uri"])
            return record
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # An unreadable pid file points at no process we can trust: treat it as stale.
            return {"pid": -1, "tracking_uri": self.tracking_uri}

    def _wait_until_healthy(
        self, pid: int, uri: str, process: subprocess.Popen | None = None
    ) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout
        while time.monotonic() < deadline:
            if answers(uri):
                return
            exited = process.poll() if process is not None else (None if _alive(pid) else -1)
            if exited is not None:
                raise PlatformError(
                    f"mlflow server exited with status {exited} during start-up; "
                    f"last lines of {self.log_file}:\n{self.logs(15)}"
                )
            time.sleep(0.25)
        raise PlatformError(
            f"mlflow server did not answer at {uri} within {self.settings.startup_timeout:.0f} s "
            f"(WORKBENCH_STARTUP_TIMEOUT raises the limit); last lines of {self.log_file}:\n"
            f"{self.logs(15)}"
        )

    @staticmethod
    def _stop_group(pid: int, grace: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL whatever is left after ``grace``."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not group_members(pid):
                    _reap(pid)
                    return
                _reap(pid)
                time.sleep(0.1)


def group_members(pgid: int) -> list[int]:
    """Pids of live (not zombie) processes in process group ``pgid``."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue  # it ended while we looked, or is not ours to inspect
    return members


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _process(pid: int) -> Any:
    """The live (not zombie) process ``pid``, or None."""
    if pid <= 0:
        return None
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
    try:
        return None if process.status() == psutil.STATUS_ZOMBIE else process
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return process  # someone else's process: alive, but not inspectable


def _alive(pid: int) -> bool:
    return _process(pid) is not None


def _create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


_MLFLOW_SERVER = ("mlflow", "server")
_SCHEDULER = ("workbench.policy.scheduler",)


def _is_our_server(pid: int, started: Any = None,
                   markers: tuple[str, ...] = _MLFLOW_SERVER) -> bool:
    """The pid is alive and is our ``mlflow server`` (or the process whose command line has
    all of ``markers``; pids are reused after a reboot).

    ``started`` is the process's start time recorded in the pid file; a process with the
    same pid but another start time is someone else's.
    """
    process = _process(pid)
    if process is None:
        return False
    try:
        if isinstance(started, (int, float)) and abs(process.create_time() - started) > 1.0:
            return False
        cmdline = process.cmdline()
    except psutil.AccessDenied:
        return True
    except psutil.NoSuchProcess:
        return False
    return all(marker in cmdline for marker in markers)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for test servers and the demo's REST server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
