"""The embedded platform: a real ``mlflow server`` as a background process, no Docker.

Layout under ``<home>/platform``: ``mlflow.db`` (SQLite backend store), ``artifacts/``
(proxied artifact store), ``server.pid`` (JSON: pid, host, port) and ``server.log``.

The server is started in its own session so that its process group holds everything it
starts (uvicorn workers, MLflow 3.17's job runner and its huey consumers); ``down`` signals
that group, by the pid recorded at start, and nothing else.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.config import Settings
from workbench.errors import PlatformError, PortBusy

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlatformStatus:
    """What ``workbench platform status`` reports."""

    running: bool
    healthy: bool
    tracking_uri: str
    pid: int | None
    home: Path
    note: str = ""

    def as_dict(self) -> dict:
        out = asdict(self)
        out["home"] = str(self.home)
        return out


class EmbeddedPlatform:
    """Start, inspect and stop the embedded MLflow tracking server.

    Args:
        settings: host, port, state directory and start-up timeout come from here.
        workers: uvicorn worker processes for the server.
    """

    def __init__(self, settings: Settings, workers: int = 2) -> None:
        self.settings = settings
        self.workers = workers
        self.dir = settings.home / "platform"
        self.pid_file = self.dir / "server.pid"
        self.log_file = self.dir / "server.log"
        self.backend_uri = f"sqlite:///{self.dir / 'mlflow.db'}"
        self.artifacts_dir = self.dir / "artifacts"

    @property
    def tracking_uri(self) -> str:
        return self.settings.embedded_tracking_uri

    # -- queries ---------------------------------------------------------------------------
    def status(self) -> PlatformStatus:
        """Whether the server recorded in the pid file runs and answers."""
        record = self._read_pid_file()
        if record is None:
            return PlatformStatus(False, False, self.tracking_uri, None, self.settings.home)
        pid, uri = record["pid"], record["tracking_uri"]
        if not _is_our_server(pid):
            return PlatformStatus(
                False, False, uri, pid, self.settings.home,
                note=f"stale pid file {self.pid_file}: process {pid} is not running",
            )
        return PlatformStatus(True, answers(uri), uri, pid, self.settings.home)

    def logs(self, lines: int = 50) -> str:
        """The last ``lines`` lines of the server log."""
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    # -- commands --------------------------------------------------------------------------
    def up(self, progress: Progress = lambda _: None) -> PlatformStatus:
        """Start the server unless it runs already; wait until it answers.

        Raises:
            PortBusy: another process listens on the port.
            PlatformError: the server exited or did not answer in time (with its log's tail).
        """
        current = self.status()
        if current.running:
            if not current.healthy:
                progress(f"server (pid {current.pid}) is starting; waiting for {current.tracking_uri}")
                self._wait_until_healthy(current.pid, current.tracking_uri)
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
        progress(f"starting mlflow server on {self.tracking_uri} (store: {self.dir})")
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=self.dir,
            )
        self.pid_file.write_text(json.dumps({
            "pid": process.pid, "host": host, "port": port,
            "tracking_uri": self.tracking_uri, "started": time.time(),
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
        """Stop the server and every process it started; keep the stores."""
        current = self.status()
        if current.running and current.pid is not None:
            progress(f"stopping mlflow server (pid {current.pid})")
            self._stop_group(current.pid)
        elif current.note:
            progress(f"removed {current.note}")
        self.pid_file.unlink(missing_ok=True)
        return self.status()

    # -- internals -------------------------------------------------------------------------
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
    """Pids of live (not zombie) processes in process group ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int) -> bool:
    """The pid is alive and is an ``mlflow server`` (pids are reused after a reboot)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return b"mlflow" in cmdline and b"server" in cmdline


def answers(uri: str, timeout: float = 2.0) -> bool:
    """Whether an MLflow server answers ``/health`` at ``uri``."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


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
