"""``workbench lab``: JupyterLab on 127.0.0.1 with token auth, wired to the platform.

Every kernel it starts loads the magics: ``extension/kernels/python3/kernel.json`` replaces
the default Python kernel (it passes ``--ext=workbench.preload`` to ipykernel) and
JUPYTER_PATH puts that folder first. JUPYTER_CONFIG_PATH puts it first among the
configuration folders too: ``extension/labconfig/default_setting_overrides.json`` turns
Lab's news feed and update check off (the workbench runs offline; Lab would otherwise ask
"Would you like to get notified about official Jupyter news?").
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import Settings
from workbench.resources import shipped


def lab_environment(settings: Settings) -> dict[str, str]:
    """The environment JupyterLab and its kernels run with."""
    env = dict(os.environ)
    env.update(settings.as_env())
    extension = str(shipped("extension"))
    for variable in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        env[variable] = os.pathsep.join(p for p in (extension, env.get(variable)) if p)
    return env


def lab_command(settings: Settings, port: int | None = None, open_browser: bool = False,
                root_dir: Path | None = None) -> list[str]:
    """The ``jupyter lab`` command line; the token is left on (Jupyter generates one)."""
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.ip={settings.host}",
        f"--ServerApp.port={port or settings.lab_port}",
        f"--ServerApp.root_dir={root_dir or settings.project_root}",
        f"--ServerApp.open_browser={open_browser}",
        "--ServerApp.port_retries=0",
    ]
    if os.geteuid() == 0:
        # Root is what CI runners and many containers are; the user asked for this server.
        command.append("--ServerApp.allow_root=True")
    return command


CONTAINER_LAB_PORT = 8888


@dataclass
class LabContainer:
    """A running JupyterLab container: its URL (token included) and how to stop it."""

    container: Any
    url: str
    token: str

    def log_lines(self) -> Iterator[str]:
        """The container's output as it comes, until the container stops."""
        for chunk in self.container.logs(stream=True, follow=True):
            yield chunk.decode("utf-8", "replace")

    def stop(self) -> None:
        from workbench import _docker

        _docker.remove(self.container)


def start_lab_container(settings: Settings, *, image: str | None = None, port: int | None = None,
                        progress: Callable[[str], None] = lambda _: None) -> LabContainer:
    """Start JupyterLab in a container of the workbench image, on 127.0.0.1 with a token.

    The project is mounted read-write at its own path, so notebooks, paths and lineage are
    the same inside and out. On the host's network (the embedded platform listens on the
    host's loopback) Lab binds 127.0.0.1; otherwise its port is published on 127.0.0.1 only.

    Raises:
        DockerError, ImageNotFound: no engine, or the workbench image is not built.
    """
    import secrets

    from workbench import _docker
    from workbench.packaging.images import image_kind

    client = _docker.get_client()
    ref = image or image_kind("workbench").tag
    _docker.get_image(client, ref, hint="build it with `workbench image build workbench`")
    port = port or settings.lab_port
    token = secrets.token_hex(24)
    network = _docker.network_options(settings.tracking_uri, settings.docker_network)
    on_host = network.get("network_mode") == "host"
    env = {**settings.container_env(), "JUPYTER_TOKEN": token,
           "WORKBENCH_HOST": "127.0.0.1" if on_host else "0.0.0.0"}
    user: dict[str, str] = {}
    if os.geteuid() != 0:
        # Files the data scientist saves stay theirs; HOME must then be writable by them.
        user = {"user": f"{os.geteuid()}:{os.getegid()}"}
        env["HOME"] = "/tmp"
    root = str(settings.project_root)
    with _docker.api_errors(f"start JupyterLab from {ref}"):
        container = client.containers.run(
            ref, ["workbench", "lab", "--no-platform", "--port",
                  str(port if on_host else CONTAINER_LAB_PORT)],
            detach=True, environment=env, working_dir=root,
            volumes={root: {"bind": root, "mode": "rw"}},
            ports={} if on_host else {f"{CONTAINER_LAB_PORT}/tcp": ("127.0.0.1", port)},
            labels={"org.mlops-workbench.lab": root}, **network, **user,
        )
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    progress(f"JupyterLab container {container.short_id} ({ref}) on {url}")
    return LabContainer(container, url, token)
