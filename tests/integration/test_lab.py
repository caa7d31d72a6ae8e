"""``workbench lab`` for real: the shipped kernel spec loads the magics into a real kernel, and
the ``workbench lab`` command starts a JupyterLab on 127.0.0.1 with token auth on."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _processes import stop_session

from workbench.config import Settings
from workbench.lab import lab_environment
from workbench.pytest_plugin import free_port
from workbench.resources import shipped

pytestmark = pytest.mark.integration


def test_python3_kernel_loads_the_magics_without_load_ext(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    settings = Settings.from_env(environ={}, cwd=tmp_path, home=str(tmp_path / ".workbench"),
                                 port=free_port())
    env = lab_environment(settings)
    extension = str(shipped("extension"))
    assert env["JUPYTER_PATH"].split(os.pathsep)[0] == extension
    assert env["MLFLOW_TRACKING_URI"] == settings.tracking_uri
    assert env["WORKBENCH_HOME"] == str(tmp_path / ".workbench")

    # Kernel specs are looked up in this process's JUPYTER_PATH, as JupyterLab would.
    monkeypatch.setenv("JUPYTER_PATH", env["JUPYTER_PATH"])
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert "--ext=workbench.preload" in spec.argv
    assert Path(spec.resource_dir) == Path(extension) / "kernels" / "python3"

    km, kc = start_new_kernel(kernel_name="python3", env=env, startup_timeout=120)
    try:
        outputs: list[str] = []
        errors: list[str] = []

        def collect(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                outputs.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

        code = ("import os\n"
                "print(sorted(k for k in get_ipython().magics_manager.magics['line'] "
                "if k.startswith('mlops')))\n"
                "print(os.environ['WORKBENCH_HOME'])")
        reply = kc.execute_interactive(code, timeout=60, output_hook=collect)
        assert reply["content"]["status"] == "ok", errors
        text = "".join(outputs)
        assert "'mlops_track'" in text and "'mlops_package'" in text, text
        assert str(tmp_path / ".workbench") in text  # the kernel got the settings' environment

        # A notebook's own %load_ext workbench says nothing in this kernel.
        outputs.clear()
        reply = kc.execute_interactive("%load_ext workbench", timeout=60, output_hook=collect)
        assert reply["content"]["status"] == "ok", errors
        assert outputs == []
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert not km.is_alive()


def _get(url: str) -> tuple[int, dict[str, str]]:
    """Status and headers of a GET that does not follow redirects; (0, {}) if nothing answers."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)
    except (urllib.error.URLError, OSError):
        return 0, {}


def test_workbench_lab_serves_on_localhost_with_token_auth(tmp_path: Path):
    lab_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "JUPYTER"))}
    env.update(
        WORKBENCH_HOME=str(tmp_path / ".workbench"),
        WORKBENCH_PROJECT_ROOT=str(tmp_path),
        MLFLOW_TRACKING_URI="http://127.0.0.1:1",
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),  # no user config changes auth
    )
    config = {"ServerApp": {"allow_root": True}} if os.geteuid() == 0 else {}
    (tmp_path / "jupyter-config").mkdir()
    # Jupyter refuses to run as root unless told; CI containers often are root.
    (tmp_path / "jupyter-config" / "jupyter_server_config.json").write_text(json.dumps(config))
    log_path = tmp_path / "lab.log"
    base = f"http://127.0.0.1:{lab_port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "lab", "--port", str(lab_port), "--no-platform"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            status, _ = _get(f"{base}/api")
            if status == 200 or process.poll() is not None:
                break
            time.sleep(0.5)
        output = log_path.read_text(errors="replace")
        assert process.poll() is None, f"workbench lab exited:\n{output}"
        assert status == 200, f"JupyterLab did not answer at {base}/api within 60 s:\n{output}"

        refused, headers = _get(f"{base}/api/kernels")
        assert refused in (401, 403) or (
            refused in (301, 302, 303, 307) and "login" in headers.get("Location", "")
        ), f"/api/kernels without a token answered {refused}; token auth should be on"

        output = log_path.read_text(errors="replace")
        assert f"starting JupyterLab on 127.0.0.1:{lab_port}" in output
        assert "tracking: http://127.0.0.1:1" in output
        match = re.search(rf"http://127\.0\.0\.1:{lab_port}/lab\?token=([0-9a-f]+)", output)
        assert match, f"no 127.0.0.1 URL with a token in the startup output:\n{output}"
        authorised, _ = _get(f"{base}/api/kernels?token={match.group(1)}")
        assert authorised == 200
        wrong, _ = _get(f"{base}/api/kernels?token=not-the-token")
        assert wrong in (401, 403)

        # The server extension is on: its routes answer with the token, 403 without.
        with urllib.request.urlopen(f"{base}/workbench/api/status?token={match.group(1)}",
                                    timeout=30) as response:
            assert json.load(response)["tracking_uri"] == "http://127.0.0.1:1"
        assert _get(f"{base}/workbench/api/status")[0] == 403

        # Offline by default: Lab's news feed and update check are off.
        plugin = "@jupyterlab/apputils-extension:notification"
        with urllib.request.urlopen(f"{base}/lab/api/settings/{plugin}?token={match.group(1)}",
                                    timeout=10) as response:
            schema = json.load(response)["schema"]["properties"]
        assert schema["fetchNews"]["default"] == "false"
        assert schema["checkForUpdates"]["default"] is False

        # Bound to loopback only: another local address of this machine gets no answer.
        import socket

        hostname_ip = _non_loopback_ip()
        if hostname_ip:
            with pytest.raises(OSError):
                socket.create_connection((hostname_ip, lab_port), timeout=2).close()
    finally:
        stop_session(process, grace=20)
    assert process.returncode is not None
    assert _get(f"{base}/api")[0] == 0


def _non_loopback_ip() -> str | None:
    """An IPv4 address of this machine that is not 127.x, if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent for UDP connect
            ip = probe.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def test_the_server_extension_is_enabled_on_install():
    listed = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"],
                            capture_output=True, text=True, timeout=120)
    output = listed.stdout + listed.stderr
    assert re.search(r"workbench\.jupyter\s.*enabled", output), output
    assert re.search(r"workbench\.jupyter\s.*OK", output), output
