"""A real ``workbench serve`` process for the serving tests, spoken to over real HTTP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from workbench import tracking
from workbench.pytest_plugin import free_port


def register(registry, name, model, frame):
    """Register ``model`` as ``name`` from a finished run of its own, as a job would."""
    run_id = tracking.start_run(registry.client, name.instance, str(name), {})
    instance = registry.register(model, name, run_id=run_id, input_example=frame)
    registry.client.set_terminated(run_id)
    return instance


class Server:
    def __init__(self, settings, ref: str, tmp: Path, *extra: str, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store_dir = tmp / "store"
        self.store_dir.mkdir(exist_ok=True)
        self.log_url = f"sqlite:///{self.store_dir / 'predictions.db'}"
        environment = {**os.environ, **settings.as_env(), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "serve", ref, "--port", str(self.port),
             "--log-url", self.log_url, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.process.stderr.read()[-3000:]}")
            if self.get("/ready")[0] == 200:
                return
            time.sleep(0.3)
        raise AssertionError("server never became ready")

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = "application/json", headers: dict | None = None):
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)
        except (urllib.error.URLError, ConnectionError):
            return 0, b"", {}

    def get(self, path: str):
        return self.request("GET", path, content_type=None)

    def post(self, payload, content_type: str = "application/json", headers: dict | None = None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, raw, response_headers = self.request("POST", "/invocations", body, content_type, headers)
        return status, json.loads(raw) if raw else None, response_headers

    def stop(self) -> int:
        """SIGTERM, wait; uvicorn exits by re-raising SIGTERM after a graceful shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
