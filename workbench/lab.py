"""``workbench lab``: JupyterLab on 127.0.0.1 with token auth, wired to the platform.

Every kernel it starts loads the magics: ``extension/kernels/python3/kernel.json`` replaces
the default Python kernel (it passes ``--ext=workbench`` to ipykernel) and JUPYTER_PATH puts
that folder first.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from workbench.config import Settings
from workbench.resources import shipped


def lab_environment(settings: Settings) -> dict[str, str]:
    """The environment JupyterLab and its kernels run with."""
    env = dict(os.environ)
    env.update(settings.as_env())
    extension = str(shipped("extension"))
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (extension, env.get("JUPYTER_PATH")) if p)
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
