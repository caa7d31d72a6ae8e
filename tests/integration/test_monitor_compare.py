"""`workbench monitor compare` and `monitor replay` on a real mlflow server and a real store:
two registered instances, predictions written by the real PredictionLog (the challenger's as
shadow, under the champion's request ids), the CLI run as a subprocess."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from workbench import tracking
from workbench.errors import MonitoringError, UnknownMonitoredModel
from workbench.monitoring.compare import replay_model
from workbench.naming import ModelName
from workbench.store import PredictionLog, PredictionRecord, sqlite_url

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
FEATURES = ["a", "b"]


def _cli(settings, store: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env(), "WORKBENCH_PREDICTION_STORE": store}
    return subprocess.run([sys.executable, "-m", "workbench.cli", "monitor", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def models(registry):
    """Champion (v1: a > 0) and challenger (v2: a + b > 0) of one instance, aliased."""
    instance = f"cmp{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(7)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    fitted = {}
    for version, target in (("v1", X.a > 0), ("v2", X.a + X.b > 0)):
        name = ModelName(instance, version, "20240131")
        model = LogisticRegression().fit(X, target.astype(int))
        run_id = tracking.start_run(registry.client, instance, str(name), {})
        fitted[version] = (registry.register(model, name, run_id=run_id, input_example=X),
                           model)
        registry.client.set_terminated(run_id)
    champion, challenger = fitted["v1"][0], fitted["v2"][0]
    registry.client.set_registered_model_alias(instance, "champion", str(champion.number))
    registry.client.set_registered_model_alias(instance, "challenger", str(challenger.number))
    return instance, fitted


def _requests(seed: int, count: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return [pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
            for n in rng.integers(1, 6, size=count)]


def _record(request_id: str, at: dt.datetime, name: str, rows: pd.DataFrame, outputs,
            latency: float, role: str = "primary") -> PredictionRecord:
    return PredictionRecord(request_id=request_id, created_at=at, model_name=name,
                            columns=FEATURES, inputs={c: rows[c].tolist() for c in FEATURES},
                            outputs=list(outputs), latency_ms=latency, role=role)


@pytest.fixture(scope="module")
def shadowed(models, tmp_path_factory):
    """A store as `serve churn@champion --shadow churn@challenger` leaves it: 30 requests in
    the last hour scored by both (the challenger's as shadow, same request ids), 5 more the
    champion alone answered (shadow dropped), and 10 of both from a week ago."""
    _, fitted = models
    (champion, model_a), (challenger, model_b) = fitted["v1"], fitted["v2"]
    url = sqlite_url(tmp_path_factory.mktemp("shadowed") / "p.db")
    now = dt.datetime.now(UTC)
    log = PredictionLog(url, flush_interval=0.05)
    log.start()
    recent, only_champion, old = _requests(1, 30), _requests(2, 5), _requests(3, 10)
    for label, frames, at in (("new", recent, now - dt.timedelta(hours=1)),
                              ("old", old, now - dt.timedelta(days=7))):
        for n, rows in enumerate(frames):
            request_id = f"{label}-{n}"
            log.submit(_record(request_id, at, champion.full_name, rows, model_a.predict(rows),
                               2.0 + n))
            log.submit(_record(request_id, at, challenger.full_name, rows,
                               model_b.predict(rows), 1.0, role="shadow"))
    for n, rows in enumerate(only_champion):
        log.submit(_record(f"alone-{n}", now - dt.timedelta(minutes=30), champion.full_name,
                           rows, model_a.predict(rows), 2.0))
    stats = log.close()
    assert stats.written == 2 * 30 + 2 * 10 + 5 and stats.dropped == 0
    both = pd.concat(recent)
    agreeing = int((model_a.predict(both) == model_b.predict(both)).sum())
    return url, {"paired": len(both), "agreeing": agreeing,
                 "alone": sum(len(f) for f in only_champion)}


def test_compare_reports_what_both_logged_for_the_same_requests(settings, models, shadowed):
    instance, fitted = models
    url, expected = shadowed
    champion, challenger = fitted["v1"][0], fitted["v2"][0]
    done = _cli(settings, url, "compare", f"{instance}@champion", f"{instance}@challenger",
                "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["paired"] == expected["paired"]  # the default window (1d) leaves the old out
    assert result["agreeing"] == expected["agreeing"]
    assert result["agreement"] == pytest.approx(expected["agreeing"] / expected["paired"])
    assert 0 < result["agreement"] < 1  # the two models do differ
    a, b = result["a"], result["b"]
    assert (a["model"], b["model"]) == (champion.full_name, challenger.full_name)
    assert (a["unpaired"], b["unpaired"]) == (expected["alone"], 0)
    assert a["roles"] == {"primary": expected["paired"] + expected["alone"]}
    assert b["roles"] == {"shadow": expected["paired"]}
    assert b["latency_p50_ms"] == 1.0 and a["latency_p99_ms"] > a["latency_p50_ms"] > 2.0
    assert "shadow's own scoring time" in b["latency"]
    assert result["kind"] == "categorical" and result["shift"]["test"] == "chi2"
    assert 0 <= result["shift"]["p_value"] <= 1

    everything = _cli(settings, url, "compare", champion.full_name, challenger.full_name,
                      "--since", "30d", "--json")
    assert everything.returncode == 0, everything.stderr
    assert json.loads(everything.stdout)["paired"] > expected["paired"]

    table = _cli(settings, url, "compare", f"{instance}@champion", f"{instance}@challenger")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["A:", champion.full_name, "B:", challenger.full_name]
    rate = expected["agreeing"] / expected["paired"]
    assert (f"paired rows: {expected['paired']}; agreement: {rate:.1%} "
            f"({expected['agreeing']} of {expected['paired']})") in table.stdout
    assert "shift (labels, chi-square)" in table.stdout
    assert "note: latency of" in table.stderr


def test_nothing_to_compare_and_bad_references_exit_2_in_one_line(settings, models, shadowed):
    instance, _ = models
    url, _ = shadowed
    empty = _cli(settings, url, "compare", f"{instance}@champion", f"{instance}@challenger",
                 "--since", "2000-01-01", "--until", "2000-01-31")
    assert empty.returncode == 2, empty.stderr
    errors = _error_lines(empty)
    assert len(errors) == 1 and "nothing to compare" in errors[0]
    assert "--shadow" in errors[0] and "monitor replay" in errors[0]
    assert "Traceback" not in empty.stderr and empty.stdout == ""

    for args, message in (((f"{instance}@champion", "nosuchmodel_v1_20240131"),
                           "no registered model 'nosuchmodel'"),
                          ((f"{instance}@champion", f"{instance}_v1_20240131"),
                           "both references name")):
        done = _cli(settings, url, "compare", *args)
        assert done.returncode == 2, done.stderr
        errors = _error_lines(done)
        assert len(errors) == 1 and message in errors[0], done.stderr


def _fingerprint(url: str) -> tuple:
    path = Path(url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT count(*), max(id) FROM predictions").fetchone()
    return rows, hashlib.sha256(path.read_bytes()).hexdigest()


def test_replay_scores_the_logged_inputs_offline_and_writes_nothing(settings, models,
                                                                     tmp_path):
    instance, fitted = models
    (champion, model_a), (challenger, model_b) = fitted["v1"], fitted["v2"]
    url = sqlite_url(tmp_path / "p.db")
    now = dt.datetime.now(UTC)
    log = PredictionLog(url, flush_interval=0.05)
    log.start()
    frames = _requests(11, 40)
    for n, rows in enumerate(frames):
        log.submit(_record(f"r-{n}", now - dt.timedelta(hours=2), champion.full_name, rows,
                           model_a.predict(rows), 3.0))
    # The champion as someone's shadow: not what it answered, so not replayed.
    for n, rows in enumerate(_requests(12, 3)):
        log.submit(_record(f"s-{n}", now - dt.timedelta(hours=2), champion.full_name, rows,
                           model_a.predict(rows), 3.0, role="shadow"))
    assert log.close().written == 43
    before = _fingerprint(url)
    logged = pd.concat(frames)
    agreeing = int((model_a.predict(logged) == model_b.predict(logged)).sum())

    # Against the champion by default (REF's instance@champion).
    done = _cli(settings, url, "replay", f"{instance}@challenger", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "replay"
    assert result["a"]["model"] == champion.full_name
    assert result["b"]["model"] == challenger.full_name
    assert result["paired"] == len(logged) and result["agreeing"] == agreeing
    assert result["a"]["roles"] == {"primary": len(logged)}
    assert (result["a"]["unpaired"], result["b"]["unpaired"]) == (0, 0)
    assert "offline scoring time per row" in result["b"]["latency"]
    assert result["b"]["latency_p50_ms"] > 0
    assert "replaying" in done.stderr  # progress lines
    assert _fingerprint(url) == before

    # Through the champion itself: it reproduces what it logged.
    same = replay_model(champion.full_name, settings, against=f"{instance}@champion",
                        url=url, chunk_rows=25, progress=lambda _line: None)
    assert same.paired == len(logged) and same.agreement == 1.0
    assert _fingerprint(url) == before

    table = _cli(settings, url, "replay", challenger.full_name, "--against",
                 champion.full_name)
    assert table.returncode == 0, table.stderr
    assert "(replayed)" in table.stdout.splitlines()[0]
    assert "offline scoring time per row" in table.stderr

    nothing = _cli(settings, url, "replay", challenger.full_name, "--since", "2000-01-01",
                   "--until", "2000-01-02")
    assert nothing.returncode == 2
    errors = _error_lines(nothing)
    assert len(errors) == 1 and "no primary predictions" in errors[0], nothing.stderr
    assert _fingerprint(url) == before


def test_replay_through_a_model_that_cannot_score_the_inputs_is_one_error(settings, registry,
                                                                         models, tmp_path):
    instance, fitted = models
    champion, model_a = fitted["v1"]
    url = sqlite_url(tmp_path / "p.db")
    log = PredictionLog(url, flush_interval=0.05)
    log.start()
    rows = _requests(21, 1)[0]
    log.submit(_record("r-0", dt.datetime.now(UTC), champion.full_name, rows,
                       model_a.predict(rows), 1.0))
    assert log.close().written == 1
    # Another registered model, trained on a column the champion never logged.
    other = f"cmpc{uuid.uuid4().hex[:8]}"
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "c": [1.0, 0.0, 1.0, 0.0]})
    name = ModelName(other, "v1", "20240131")
    run_id = tracking.start_run(registry.client, other, str(name), {})
    wide = registry.register(LogisticRegression().fit(X, [0, 1, 0, 1]), name, run_id=run_id,
                             input_example=X)
    registry.client.set_terminated(run_id)

    with pytest.raises(MonitoringError, match=r"lacks column\(s\) c ") as info:
        replay_model(wide.full_name, settings, against=f"{instance}@champion", url=url,
                     progress=lambda _line: None)
    assert "\n" not in str(info.value)
    # Its own registered model has no champion: say so rather than guess what to replay.
    with pytest.raises(UnknownMonitoredModel, match="champion"):
        replay_model(wide.full_name, settings, url=url)
