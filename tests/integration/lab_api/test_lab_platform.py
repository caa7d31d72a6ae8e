"""The platform routes on a project whose embedded platform is down: the status says so and
the sidebar's Start starts it (what `workbench platform up` does)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lab_api import _json

from workbench.config import Settings
from workbench.platforms import EmbeddedPlatform
from workbench.platforms.embedded import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def stopped_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The environment of a `workbench lab --no-platform` on a project whose embedded
    platform is not running; stopped by pid afterwards if a test started it."""
    settings = Settings.from_env(environ={}, cwd=tmp_path, home=str(tmp_path / ".workbench"),
                                 port=free_port())
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WORKBENCH_PORT", str(settings.port))
    try:
        yield settings
    finally:
        EmbeddedPlatform(settings).down()


@pytest.fixture
def jp_server_config(stopped_platform: Settings) -> dict:
    return {"ServerApp": {"jpserver_extensions": {"workbench.jupyter": True}}}


async def test_status_says_down_and_start_brings_the_embedded_platform_up(jp_fetch,
                                                                          stopped_platform):
    code, status = await _json(jp_fetch, "status")
    assert code == 200 and status["embedded"] is True
    assert status["running"] is False and status["healthy"] is False
    # A cold mlflow server creates its store first: longer than jp_fetch's 20 s default.
    response = await jp_fetch("workbench", "api", "platform", "start", method="POST", body="{}",
                              request_timeout=240)
    started = json.loads(response.body)
    assert response.code == 200 and started["healthy"] is True and started["pid"]
    assert EmbeddedPlatform(stopped_platform).status().healthy
    # No policy in this project: no schedules, and no scheduler store made to say so.
    code, schedules = await _json(jp_fetch, "schedules")
    assert code == 200 and schedules == []
    assert not (stopped_platform.home / "scheduler.db").exists()
