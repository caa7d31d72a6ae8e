"""A real Spark standalone cluster for the tests: a master and one worker on 127.0.0.1.

Both are started from pyspark's own launcher (``bin/spark-class``) as child processes, each
in a session of its own; ``start`` returns once the master's status page lists the worker
as ALIVE, ``stop`` ends the worker and then the master by their pids (the worker ends its
executors itself).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _processes import stop_session

from workbench.pytest_plugin import free_port


class StandaloneCluster:
    """One master and one worker (``cores`` cores, ``memory``), logs under ``folder``."""

    def __init__(self, folder: Path, cores: int = 2, memory: str = "2g") -> None:
        self.folder, self.cores, self.memory = folder, cores, memory
        self.port, self.ui_port = free_port(), free_port()
        self.processes: list[subprocess.Popen] = []

    @property
    def master(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> StandaloneCluster:
        from pyspark.find_spark_home import _find_spark_home

        home = _find_spark_home()
        launcher = str(Path(home) / "bin" / "spark-class")
        env = {**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_LOCAL_HOSTNAME": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
               "SPARK_WORKER_DIR": str(self.folder / "work"),
               "SPARK_MASTER_OPTS": "-Dspark.ui.showConsoleProgress=false"}
        self._start([launcher, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(self.port), "--webui-port", str(self.ui_port)], env, "master")
        self._wait(lambda: _open(self.port), timeout, "the master's port")
        self._start([launcher, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                     "--webui-port", str(free_port()), "--cores", str(self.cores),
                     "--memory", self.memory, "--work-dir", str(self.folder / "work"),
                     self.master], env, "worker")
        self._wait(self._worker_alive, timeout, "an ALIVE worker")
        return self

    def _start(self, command: list[str], env: dict[str, str], name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"{name}.log", "wb")
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               env=env, start_new_session=True))

    def _worker_alive(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
                status = json.load(r)
        except OSError:
            return False
        return any(w.get("state") == "ALIVE" for w in status.get("workers", []))

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [p for p in self.processes if p.poll() is not None]
            if dead:
                break
            time.sleep(0.5)
        logs = "\n".join(p.read_text(errors="replace")[-2000:]
                         for p in sorted(self.folder.glob("*.log")))
        self.stop()
        raise RuntimeError(f"the standalone cluster did not get {what}:\n{logs}")

    def stop(self) -> None:
        for process in reversed(self.processes):  # the worker first: it ends its executors
            stop_session(process)
        self.processes.clear()


def _open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
