"""Registry faults with real processes: a registration race, and a tracking server that stopped.

Each case asserts what the user sees (the error class, one line, the exit status) and what
the registry keeps afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _processes import stop_session

from workbench import tracking
from workbench.config import Settings
from workbench.errors import TrackingError
from workbench.naming import ModelName
from workbench.platforms import EmbeddedPlatform
from workbench.platforms.embedded import free_port
from workbench.registry import MODEL_NAME_TAG, Registry

pytestmark = pytest.mark.integration

ROUNDS = 3

# One registration in its own interpreter: get ready (imports, a fitted model), say so,
# wait for the go file, register, print what happened as one JSON line.
_RACER = r"""
import json, os, sys, time
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from workbench.config import Settings
from workbench.errors import ModelAlreadyRegistered
from workbench.naming import ModelName
from workbench.registry import Registry

name, run_id, go = ModelName.parse(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(0)
X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
model = LogisticRegression().fit(X, (X.a > 0).astype(int))
registry = Registry(Settings.from_env())
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
try:
    instance = registry.register(model, name, run_id=run_id, input_example=X)
    print(json.dumps({"won": instance.number}), flush=True)
except ModelAlreadyRegistered as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
"""


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.as_env(), "WORKBENCH_PORT": str(settings.port)}


def test_two_processes_registering_one_full_name_leave_one_version(registry, settings,
                                                                   unique_instance, tmp_path):
    outcomes = []
    for round_ in range(ROUNDS):
        name = ModelName(unique_instance, "v1", f"2024010{round_ + 1}")
        go = tmp_path / f"go-{round_}"
        racers = []
        for _ in range(2):
            run_id = tracking.start_run(registry.client, unique_instance, str(name), {})
            racers.append(subprocess.Popen(
                [sys.executable, "-c", _RACER, str(name), run_id, str(go)], env=_env(settings),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True))
        try:
            for racer in racers:
                assert racer.stdout is not None
                assert racer.stdout.readline().strip() == "ready", racer.stderr.read()
            go.touch()  # both are ready: they register at the same moment
            results = []
            for racer in racers:
                out, err = racer.communicate(timeout=300)
                assert racer.returncode == 0, err
                results.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for racer in racers:
                stop_session(racer, grace=5)

        won = [r for r in results if "won" in r]
        lost = [r for r in results if "error" in r]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0]["error"] == "ModelAlreadyRegistered"
        assert "already registered" in lost[0]["message"] and "\n" not in lost[0]["message"]
        kept = registry.client.search_model_versions(
            f"name = '{unique_instance}' and tag.{MODEL_NAME_TAG} = '{name}'")
        assert [int(v.version) for v in kept] == [won[0]["won"]]
        assert registry.resolve(str(name)).number == won[0]["won"]
        # The loser's logged model is deleted too: one live model files entry for the name.
        experiment = registry.client.get_run(registry.resolve(str(name)).run_id).info.experiment_id
        live = registry.client.search_logged_models([experiment], filter_string=f"name = '{name}'")
        assert len(live) == 1
        outcomes.append(won[0]["won"])

    # Every round kept exactly one version; a gap in the numbers is a loser that created its
    # version and then withdrew it (the race was real, not settled by the early check).
    versions = registry.client.search_model_versions(f"name = '{unique_instance}'")
    assert sorted(int(v.version) for v in versions) == outcomes
    print(f"race: kept versions {outcomes}; at least this many withdrawn after creating: "
          f"{outcomes[-1] - len(outcomes)}")


@pytest.fixture(scope="module")
def stopped_platform(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Registry]:
    """A real embedded tracking server that was started, then stopped, and a Registry built
    while it ran (as a widget or a kernel holds one)."""
    home = tmp_path_factory.mktemp("stopped-platform")
    settings = Settings.from_env(environ={}, cwd=home, home=str(home / "state"),
                                 port=free_port(), data_dir=str(home / "data"))
    platform = EmbeddedPlatform(settings, workers=1)
    platform.up()
    try:
        registry = Registry(settings)
        assert registry.registered_models() == []
    finally:
        platform.down()
    return settings, registry


@pytest.fixture(scope="module")
def stopped_server(stopped_platform: tuple[Settings, Registry]) -> Settings:
    return stopped_platform[0]


@pytest.mark.parametrize("call", [
    lambda registry: registry.list_instances(),
    lambda registry: registry.resolve("churn@champion"),
    lambda registry: registry.promote("churn_v1_20240131", reason="server test"),
    lambda registry: registry.history("churn"),
], ids=["list", "resolve", "promote", "history"])
def test_a_registry_whose_server_stopped_says_so_within_seconds(stopped_platform, call):
    settings, registry = stopped_platform
    registry.probe_interval = 0  # the last good probe was during set-up, seconds ago
    started = time.monotonic()
    with pytest.raises(TrackingError) as raised:
        call(registry)
    assert time.monotonic() - started < 5
    assert settings.tracking_uri in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("args", [
    ("models", "list"),
    ("models", "show", "churn@champion"),
    ("models", "history", "churn"),
    ("models", "rollback", "churn", "--reason", "server test"),
])
def test_models_commands_with_the_server_stopped_say_so_in_one_line(stopped_server: Settings,
                                                                     args: tuple[str, ...],
                                                                     tmp_path: Path):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, env=_env(stopped_server), timeout=60, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert stopped_server.tracking_uri in lines[0] and "workbench platform up" in lines[0]
    assert "Traceback" not in done.stderr
    assert elapsed < 5, f"took {elapsed:.1f} s"
