"""Faults at the faces, with real processes: what the user sees and what is kept.

A tracking server is started and stopped for real before a CLI command and before a magic
in a real kernel: each answer is one line naming the server's URI and how to start it, a
non-zero exit status (an error reply for the kernel), within 5 s, and no traceback. A
malformed CSV given to `workbench predict` is one line, and no output file appears.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.naming import ModelName
from workbench.platforms import EmbeddedPlatform
from workbench.pytest_plugin import free_port

pytestmark = pytest.mark.integration

#: The issue's bound: a face says the server is down within this many seconds.
DOWN_WITHIN_S = 5.0
#: A server that fails after the probe: MLflow's (shortened) retries, then one line.
MID_COMMAND_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def stopped_server(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of an embedded tracking server that was started, answered, and was stopped."""
    project = tmp_path_factory.mktemp("stopped-project")
    (project / "pyproject.toml").write_text("")
    settings = Settings.from_env(environ={}, cwd=project, home=str(project / ".workbench"),
                                 port=free_port())
    platform = EmbeddedPlatform(settings, workers=1)
    assert platform.up().healthy
    platform.down()
    assert not platform.status().running
    return settings


def _clean_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update(settings.as_env())
    env["WORKBENCH_PORT"] = str(settings.port)  # so the URI is the embedded one (and the hint)
    return env


def _workbench(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)
    return done, time.monotonic() - started


@pytest.mark.parametrize("args", [
    ["models", "list"],
    ["models", "show", "churn@champion"],
    ["models", "compare", "churn"],
    ["predict", "churn@champion", "--input", "in.csv", "--output", "out.csv"],
    ["package", "churn@champion"],
    ["monitor", "drift", "churn@champion", "--current", "in.csv"],
    ["serve", "churn@champion", "--port", "0"],
])
def test_cli_with_the_server_stopped_is_one_line_in_seconds(stopped_server, tmp_path, args):
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    done, elapsed = _workbench(args, _clean_env(stopped_server), tmp_path)
    lines = done.stderr.strip().splitlines()
    # monitor drift keeps 1 for "drift found": a check that cannot be made is 2
    assert done.returncode == (2 if args[0] == "monitor" else 1)
    assert len(lines) == 1, done.stderr
    assert stopped_server.tracking_uri in lines[0] and "workbench platform up" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert elapsed < DOWN_WITHIN_S, f"{elapsed:.1f} s"
    assert not (tmp_path / "out.csv").exists()
    print(f"{' '.join(args[:2])}: exit {done.returncode} in {elapsed:.1f} s: {lines[0]}")


def test_cli_debug_with_the_server_stopped_shows_the_traceback(stopped_server, tmp_path):
    done, _ = _workbench(["--debug", "models", "list"], _clean_env(stopped_server), tmp_path)
    assert done.returncode != 0
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: no tracking server answers")


def test_magic_in_a_real_kernel_with_the_server_stopped(stopped_server, tmp_path):
    from jupyter_client.manager import start_new_kernel

    env = _clean_env(stopped_server)
    manager, kernel = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path),
                                       startup_timeout=120)
    try:
        load = kernel.execute_interactive("%load_ext workbench", timeout=120,
                                          output_hook=lambda message: None)
        assert load["content"]["status"] == "ok"
        seen: list[dict] = []
        started = time.monotonic()
        reply = kernel.execute_interactive(
            "%mlops_track --instance churn --version v1 --data-date 20240131", timeout=60,
            output_hook=seen.append)
        elapsed = time.monotonic() - started
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    content = reply["content"]
    shown = "".join(m["content"].get("text", "") + m["content"].get("evalue", "")
                    + "".join(m["content"].get("traceback", [])) for m in seen)
    assert content["status"] == "error"
    assert content["ename"] == "UsageError"
    assert stopped_server.tracking_uri in content["evalue"]
    assert "workbench platform up" in content["evalue"]
    assert "\n" not in content["evalue"].strip()
    assert "Traceback" not in shown
    assert elapsed < DOWN_WITHIN_S, f"{elapsed:.1f} s"
    print(f"said in {elapsed:.1f} s: {content['evalue']}")


@pytest.fixture
def failing_server() -> Iterator[str]:
    """A server that passes the face's /health probe and then fails every MLflow call with 503,
    as a tracking server that dies (or whose database does) in the middle of a command."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            status = 200 if self.path.rstrip("/") == "/health" else 503
            body = b"OK" if status == 200 else b"unavailable"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_magic_against_a_server_that_fails_mid_command_is_said_in_seconds(failing_server,
                                                                          tmp_path):
    """MLflow's own retries would take minutes (7 retries, backoff factor 2); the workbench's
    defaults bound them to seconds."""
    from jupyter_client.manager import start_new_kernel

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=failing_server, WORKBENCH_HOME=str(tmp_path / ".workbench"))
    manager, kernel = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path),
                                       startup_timeout=120)
    try:
        kernel.execute_interactive("%load_ext workbench", timeout=120,
                                   output_hook=lambda message: None)
        seen: list[dict] = []
        started = time.monotonic()
        reply = kernel.execute_interactive("%mlops_track --instance churn", timeout=300,
                                           output_hook=seen.append)
        elapsed = time.monotonic() - started
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    content = reply["content"]
    shown = "".join(m["content"].get("text", "") + "".join(m["content"].get("traceback", []))
                    for m in seen)
    assert content["status"] == "error" and content["ename"] == "UsageError"
    assert failing_server in content["evalue"] and "\n" not in content["evalue"].strip()
    assert "Traceback" not in shown
    assert elapsed < MID_COMMAND_WITHIN_S, f"{elapsed:.1f} s"
    print(f"said in {elapsed:.1f} s: {content['evalue']}")


def test_predict_on_a_malformed_csv_is_one_line_and_writes_nothing(settings, register,
                                                                    unique_instance, tmp_path):
    instance = register(ModelName(unique_instance, "v1", "20240131"), auc=0.8)
    bad = tmp_path / "ragged.csv"
    bad.write_text("a,b\n0.1,0.2\n0.3,0.4,0.5,0.6\n")
    out = tmp_path / "scored" / "out.csv"
    done, _ = _workbench(["predict", instance.full_name, "--input", str(bad), "--output", str(out)],
                         _clean_env(settings), tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0]
    assert "Traceback" not in done.stderr
    assert not out.exists() and not out.parent.exists()


def test_predict_on_a_frame_the_signature_rejects_names_the_column(settings, register,
                                                                    unique_instance, tmp_path):
    instance = register(ModelName(unique_instance, "v1", "20240131"), auc=0.8)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n0.1,0.2\n0.3,high\n")
    out = tmp_path / "out.csv"
    done, _ = _workbench(["predict", instance.full_name, "--input", str(wrong), "--output", str(out)],
                         _clean_env(settings), tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1 and "'b'" in lines[0] and "row 2" in lines[0]
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.csv.*"))  # no temporary file left either
