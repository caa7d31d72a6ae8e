"""pytest-jupyter's server fixtures (``jp_fetch``), for this folder only: its autouse event
loop and async test hooks stay out of the other integration tests."""
from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_core import *  # noqa: F403 (fixtures and the async test hooks)
from pytest_jupyter.jupyter_server import *  # noqa: F403

from workbench.config import Settings


@pytest.fixture
def jp_server_config(env_for: Settings) -> dict:
    """A real Jupyter server with the workbench extension, tracking to the test platform
    (the settings come from the environment ``env_for`` sets, as in ``workbench lab``)."""
    return {"ServerApp": {"jpserver_extensions": {"workbench.jupyter": True}}}
