"""`workbench serve` under real traffic: micro-batching, timeouts, the Host/Origin/token guard,
the 413 a urllib client sees, nulls a model cannot take, alias following and a shadow.

Every test starts a real server process and speaks real HTTP to it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cloudpickle
import mlflow
import pandas as pd
import pytest
from _serving import Server
from _serving import register as _register
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from workbench.demo.data import FEATURES, TARGET
from workbench.demo.training import build_pipeline
from workbench.naming import ModelName
from workbench.store.reader import read_predictions

pytestmark = pytest.mark.integration
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class Doubler(mlflow.pyfunc.PythonModel):
    """2x, row by row. Raises when any row has x > 100 (a model bug on good input); sleeps
    x seconds when the first row has 0 < x < 10 (a slow call that lets requests queue)."""

    def predict(self, context, model_input, params=None):
        xs = [float(x) for x in model_input["x"]]
        if any(x > 100 for x in xs):
            raise ValueError("x is too large for this model")
        if 0 < xs[0] < 10:
            time.sleep(xs[0])
        return [x * 2 for x in xs]


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _iris(columns=IRIS_COLUMNS, rows=slice(None)):
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = IRIS_COLUMNS
    X, y = X.iloc[rows], y.iloc[rows]
    return LogisticRegression(max_iter=500).fit(X[columns], y), X[columns]


@pytest.fixture(scope="module")
def models(registry, demo_data):
    iris_model, X = _iris()
    iris = _register(registry, ModelName("iristraffic", "v1", "20240101"), iris_model, X)
    frame = pd.read_csv(demo_data / "churn_20240131.csv")
    churn = _register(registry, ModelName("churntraffic", "v1", "20240131"),
                      build_pipeline("gradient_boosting", list(FEATURES)).fit(
                          frame[list(FEATURES)], frame[TARGET]), frame[list(FEATURES)])
    doubler = _register(registry, ModelName("doubler", "v1", "20240101"), Doubler(),
                        pd.DataFrame({"x": [20.0, 30.0]}))
    return {"iris": (iris, X), "churn": (churn, frame[list(FEATURES)]), "doubler": doubler}


def _split(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def _x(value: float) -> dict:
    return {"dataframe_split": {"columns": ["x"], "data": [[value]]}}


def _metric(server: Server, name: str, labels: str = "") -> float:
    text = server.get("/metrics")[1].decode()
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _while_busy(server: Server, seconds: float, requests: list[dict]) -> list[tuple]:
    """Start a call that keeps the model busy for ``seconds``, then send ``requests`` at once:
    they wait together, so the server merges them. Returns their (status, body, headers)."""
    with ThreadPoolExecutor(len(requests) + 1) as pool:
        slow = pool.submit(server.post, _x(seconds))
        time.sleep(min(seconds / 3, 0.5))  # the slow call is in the model now
        answers = [pool.submit(server.post, body) for body in requests]
        assert slow.result()[0] == 200
        return [answer.result() for answer in answers]


def test_requests_waiting_together_are_merged_and_one_bad_request_fails_alone(settings, models, tmp_path):
    server = Server(settings, "doubler_v1_20240101", tmp_path)
    try:
        calls_before = _metric(server, "workbench_batch_rows_count")
        answers = _while_busy(server, 1.5, [_x(11.0), _x(500.0), _x(12.5), _x(40.0)])
        statuses = [status for status, _, _ in answers]
        assert statuses == [200, 500, 200, 200]
        assert [body["predictions"] for status, body, _ in answers if status == 200] == \
            [[22.0], [25.0], [80.0]]
        assert answers[1][1]["error_code"] == "INTERNAL_ERROR"
        assert answers[1][2]["x-request-id"] in answers[1][1]["message"]
        # The slow call, then the four waiting requests in one call (which raised), then each
        # of them alone: six calls for five requests would mean nothing was merged.
        calls = _metric(server, "workbench_batch_rows_count") - calls_before
        assert calls == 2, calls
        assert _metric(server, "workbench_batch_rows_sum") >= 5
        assert server.post(_x(21.0))[:2] == (200, {"predictions": [42.0]})
    finally:
        server.stop()
    logged = read_predictions(server.log_url, "doubler_v1_20240101")
    assert sorted(logged["prediction"]) == [3.0, 22.0, 25.0, 42.0, 80.0]  # not the 500


def test_merged_predictions_equal_unbatched_ones_in_every_format(settings, models, tmp_path):
    churn, frame = models["churn"]
    mlflow.set_tracking_uri(settings.tracking_uri)
    rows = frame.head(24)
    local = mlflow.pyfunc.load_model(churn.uri).predict(rows).tolist()
    bodies = []
    for i in range(len(rows)):
        row = rows.iloc[[i]]
        records = json.loads(row.to_json(orient="records"))
        bodies.append([
            (_split(row), "application/json"),
            ({"dataframe_records": records}, "application/json"),
            ({"instances": records}, "application/json"),
            ({"inputs": {c: json.loads(row[c].to_json(orient="values")) for c in row}},
             "application/json"),
            (row.to_csv(index=False).encode(), "text/csv"),
        ][i % 5])
    server = Server(settings, "churntraffic_v1_20240131", tmp_path, "--no-log")
    try:
        calls_before = _metric(server, "workbench_batch_rows_count")
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda b: server.post(b[0], b[1]), bodies))
        assert [status for status, _, _ in answers] == [200] * len(bodies)
        assert [body["predictions"][0] for _, body, _ in answers] == local
        assert all(h["x-model-name"] == "churntraffic_v1_20240131" for _, _, h in answers)
        assert _metric(server, "workbench_batch_rows_sum") - 0 >= len(bodies)
        assert _metric(server, "workbench_batch_rows_count") - calls_before <= len(bodies)
    finally:
        server.stop()


def test_a_slow_prediction_is_a_504_and_the_server_recovers(settings, models, tmp_path):
    server = Server(settings, "doubler_v1_20240101", tmp_path, "--timeout-ms", "700")
    try:
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(server.post, _x(4.0))
            time.sleep(1.5)  # over the timeout, the call still running
            assert server.get("/ready")[0] == 503
            assert server.get("/health")[0] == 200
            status, body, headers = slow.result()
        assert status == 504 and body["error_code"] == "TIMEOUT"
        assert headers["x-request-id"] in body["message"]
        deadline = time.monotonic() + 10
        while server.get("/ready")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.get("/ready")[0] == 200
        assert server.post(_x(30.0))[:2] == (200, {"predictions": [60.0]})
        assert _metric(server, "workbench_request_timeouts_total") == 1
    finally:
        server.stop()


def test_a_null_the_model_cannot_take_is_a_400_naming_the_column(settings, models, tmp_path):
    _, X = models["iris"]
    server = Server(settings, "iristraffic_v1_20240101", tmp_path, "--no-log")
    try:
        record = json.loads(X.head(1).to_json(orient="records"))[0]
        status, body, _ = server.post({"dataframe_records": [{**record, "petal_width": None}]})
        assert status == 400 and body["error_code"] == "BAD_REQUEST"
        assert "petal_width" in body["message"]
        assert server.post({"dataframe_records": [record]})[0] == 200
    finally:
        server.stop()


def test_an_oversized_body_is_a_413_a_urllib_client_reads(settings, models, tmp_path):
    _, X = models["iris"]
    server = Server(settings, "iristraffic_v1_20240101", tmp_path, "--no-log",
                    "--max-body-bytes", "2000")
    try:
        body = json.dumps(_split(pd.concat([X] * 4))).encode()  # ~25 kB, all sent first
        request = urllib.request.Request(server.url + "/invocations", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=30)
        assert answer.value.code == 413
        assert json.loads(answer.value.read())["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert server.post(_split(X.head(2)))[0] == 200
    finally:
        server.stop()


def test_other_hosts_and_sites_are_refused_and_the_token_is_required(settings, models, tmp_path):
    _, X = models["iris"]
    body = _split(X.head(1))
    server = Server(settings, "iristraffic_v1_20240101", tmp_path, "--allowed-hosts", "wb.internal",
                    env={"WORKBENCH_SERVE_TOKEN": "s3cret-token"})
    auth = {"Authorization": "Bearer s3cret-token"}
    try:
        assert server.get("/health")[0] == 200 and server.get("/ready")[0] == 200
        status, raw, headers = server.request("GET", "/metadata", content_type=None)
        assert status == 401 and json.loads(raw)["error_code"] == "UNAUTHORIZED"
        assert server.post(body)[0] == 401
        assert server.post(body, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert server.post(body, headers=auth)[0] == 200
        assert server.request("GET", "/metadata", content_type=None, headers=auth)[0] == 200
        for headers, code in (({"Host": "evil.example"}, "FORBIDDEN_HOST"),
                              ({"Origin": "http://evil.example"}, "FORBIDDEN_ORIGIN"),
                              ({"Origin": "null"}, "FORBIDDEN_ORIGIN")):
            status, answer, _ = server.post(body, headers={**auth, **headers})
            assert (status, answer["error_code"]) == (403, code), headers
        for headers in ({"Origin": "http://localhost:3000"}, {"Host": f"wb.internal:{server.port}"},
                        {"Host": f"[::1]:{server.port}"}):
            assert server.post(body, headers={**auth, **headers})[0] == 200, headers
        assert server.post(body)[0] == 401  # still serving, still guarded
    finally:
        server.stop()
    assert len(read_predictions(server.log_url, "iristraffic_v1_20240101")) == 4


def _hammer(server: Server, body: dict, stop: threading.Event, results: list) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        status, _, headers = server.post(body)
        results.append((status, headers.get("x-model-name"), time.perf_counter() - started))


def test_follow_swaps_a_new_instance_under_load_and_refuses_an_incompatible_one(
        settings, models, registry, tmp_path):
    first, X = _iris(rows=slice(0, 150, 2))
    v1 = _register(registry, ModelName("follower", "v1", "20240101"), first, X)
    registry.client.set_registered_model_alias("follower", "champion", str(v1.number))
    server = Server(settings, "follower@champion", tmp_path, "--follow", "--poll-s", "0.5")
    stop, results = threading.Event(), []
    body = _split(X.head(3))
    threads = [threading.Thread(target=_hammer, args=(server, body, stop, results)) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        second, X2 = _iris(rows=slice(1, 150, 2))
        v2 = _register(registry, ModelName("follower", "v1", "20240201"), second, X2)
        registry.client.set_registered_model_alias("follower", "champion", str(v2.number))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                name == "follower_v1_20240201" for _, name, _ in results[-20:]):
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        assert {status for status, _, _ in results} == {200}, "a request failed during the swap"
        names = [name for _, name, _ in results]
        assert names[0] == "follower_v1_20240101" and names[-1] == "follower_v1_20240201"
        meta = json.loads(server.get("/metadata")[1])
        assert (meta["full_name"], meta["mlflow_version"]) == ("follower_v1_20240201", v2.number)
        assert _metric(server, "workbench_model_swaps_total") == 1

        narrow, X3 = _iris(columns=IRIS_COLUMNS[:3])
        v3 = _register(registry, ModelName("follower", "v1", "20240301"), narrow, X3)
        registry.client.set_registered_model_alias("follower", "champion", str(v3.number))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _metric(
                server, "workbench_model_swaps_refused_total", '{reason="signature"}'):
            time.sleep(0.3)
        assert _metric(server, "workbench_model_swaps_refused_total", '{reason="signature"}') == 1
        status, _, headers = server.post(body)
        assert status == 200 and headers["x-model-name"] == "follower_v1_20240201"
    finally:
        stop.set()
        server.stop()
    logged = read_predictions(server.log_url)
    assert set(logged["model_name"]) == {"follower_v1_20240101", "follower_v1_20240201"}
    assert logged.groupby("model_name")["request_id"].nunique().sum() == len(results) + 1


def test_a_shadow_scores_every_request_off_the_response_path(settings, models, registry, tmp_path):
    champion_model, X = _iris(rows=slice(0, 150, 2))
    challenger_model, _ = _iris(rows=slice(1, 150, 2))
    champion = _register(registry, ModelName("shadowed", "v1", "20240101"), champion_model, X)
    challenger = _register(registry, ModelName("shadowed", "v2", "20240101"), challenger_model, X)
    registry.client.set_registered_model_alias("shadowed", "champion", str(champion.number))
    registry.client.set_registered_model_alias("shadowed", "challenger", str(challenger.number))
    server = Server(settings, "shadowed@champion", tmp_path, "--shadow", "shadowed@challenger")
    rows = X.head(30)
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: server.post(_split(rows.iloc[[i]])), range(len(rows))))
        assert {status for status, _, _ in answers} == {200}
        assert {h["x-model-name"] for _, _, h in answers} == {"shadowed_v1_20240101"}
        meta = json.loads(server.get("/metadata")[1])
        assert meta["shadow"]["full_name"] == "shadowed_v2_20240101"
    finally:
        server.stop()  # SIGTERM: the shadow scores what it holds, then the log is flushed
    logged = read_predictions(server.log_url)
    primary = logged[logged["model_name"] == "shadowed_v1_20240101"]
    shadow = logged[logged["model_name"] == "shadowed_v2_20240101"]
    assert len(primary) == len(shadow) == len(rows)
    assert set(primary["request_id"]) == set(shadow["request_id"]) == \
        {h["x-request-id"] for _, _, h in answers}
    assert set(shadow["role"]) == {"shadow"} and set(primary["role"]) == {"primary"}
    expected = challenger_model.predict(rows)
    by_request = dict(zip(shadow["request_id"], shadow["prediction"]))
    assert [by_request[h["x-request-id"]] for _, _, h in answers] == list(expected)

    # What the shadow logged is what `monitor compare` pairs; `monitor replay` gets the same
    # answer offline from the champion's logged inputs.
    served = champion_model.predict(rows)
    agreeing = int((served == expected).sum())
    for command in (["compare", "shadowed@champion", "shadowed@challenger"],
                    ["replay", "shadowed@challenger", "--against", "shadowed@champion"]):
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "monitor", *command, "--json"],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, **settings.as_env(), "WORKBENCH_PREDICTION_STORE": server.log_url})
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout)
        assert (result["paired"], result["agreeing"]) == (len(rows), agreeing), command


def test_follow_without_an_alias_and_an_incompatible_shadow_are_one_line(settings, models,
                                                                         registry, tmp_path):
    narrow, X3 = _iris(columns=IRIS_COLUMNS[:3])
    _register(registry, ModelName("iristraffic", "v2", "20240101"), narrow, X3)
    env = {**os.environ, **settings.as_env()}
    for extra, says in ((["--follow"], "--follow"), (["--shadow", "iristraffic_v2_20240101"], "shadow")):
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "serve", "iristraffic_v1_20240101", "--no-log",
             "--port", "1", *extra], capture_output=True, text=True, env=env, timeout=180)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode != 0 and len(errors) == 1 and says in errors[0], done.stderr[-2000:]
        assert "Traceback" not in done.stderr
