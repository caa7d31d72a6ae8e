"""The workbench's jupyter_server extension: REST routes under ``/workbench/api/``.

Enabled on install (``etc/jupyter/jupyter_server_config.d/mlops_workbench.json``); the
JupyterLab front-end in ``extension/`` calls these routes. See :mod:`.handlers`.
"""
from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from workbench.jupyter.extension import WorkbenchExtension

    return [{"module": "workbench.jupyter.extension", "app": WorkbenchExtension}]
