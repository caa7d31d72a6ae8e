"""`workbench serve`: a real server process, real HTTP, a real prediction store."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
from _serving import Server
from _serving import register as _register
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from workbench.demo.data import FEATURES, TARGET
from workbench.demo.training import build_pipeline
from workbench.naming import ModelName
from workbench.pytest_plugin import free_port
from workbench.store.reader import read_predictions

pytestmark = pytest.mark.integration
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class Picky(mlflow.pyfunc.PythonModel):
    """Raises on x > 100 (a model bug on good input); sleeps `x` seconds when 0 < x < 5."""

    def predict(self, context, model_input, params=None):
        x = float(model_input["x"].iloc[0])
        if x > 100:
            raise ValueError("x is too large for this model")
        if 0 < x < 5:
            time.sleep(x)
        return [x * 2 for x in model_input["x"]]


cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def models(registry, demo_data):
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = IRIS_COLUMNS
    iris = _register(registry, ModelName("irisserve", "v1", "20240101"),
                     LogisticRegression(max_iter=500).fit(X, y), X)
    churn_frame = pd.read_csv(demo_data / "churn_20240131.csv")
    churn = _register(registry, ModelName("churnserve", "v1", "20240131"),
                      build_pipeline("logistic_regression", list(FEATURES)).fit(
                          churn_frame[list(FEATURES)], churn_frame[TARGET]), churn_frame[list(FEATURES)])
    picky = _register(registry, ModelName("picky", "v1", "20240101"), Picky(),
                      pd.DataFrame({"x": [1.0, 2.0]}))
    mlflow.set_tracking_uri(registry.settings.tracking_uri)
    mlflow.set_registry_uri(registry.settings.tracking_uri)
    mlflow.set_experiment("plain-serving")
    with mlflow.start_run():  # registered the plain MLflow way, outside the naming convention
        mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(X, y), name="model",
                                 registered_model_name="PlainServe", input_example=X.head(3))
    return {"iris": (iris, X), "churn": (churn, churn_frame), "picky": (picky, None)}


@pytest.fixture(scope="module")
def churn_server(settings, models, tmp_path_factory):
    server = Server(settings, "churnserve_v1_20240131",
                    tmp_path_factory.mktemp("churn"), "--max-rows", "50", "--max-body-bytes", "65536")
    yield server
    server.stop()


def _split(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def test_endpoints_describe_the_model(churn_server, models):
    assert churn_server.get("/health")[0] == 200
    _, body, _ = churn_server.get("/metadata")
    meta = json.loads(body)
    assert (meta["full_name"], meta["instance"], meta["version"], meta["data_date"]) == \
        ("churnserve_v1_20240131", "churnserve", "v1", "20240131")
    assert meta["mlflow_version"] == models["churn"][0].number and meta["run_id"] == models["churn"][0].run_id
    assert [c["name"] for c in meta["signature"]["inputs"]] == list(FEATURES)
    openapi = json.loads(churn_server.get("/openapi.json")[1])
    assert "/invocations" in openapi["paths"] and "text/csv" in json.dumps(openapi["paths"]["/invocations"])
    assert churn_server.get("/docs")[0] == 200


def test_good_requests_in_every_format(churn_server, models, settings):
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    _, frame = models["churn"]
    rows = frame[list(FEATURES)].head(5)
    expected = models["churn"][0]
    local = mlflow.pyfunc.load_model(expected.uri).predict(rows).tolist()
    records = json.loads(rows.to_json(orient="records"))
    for payload in (_split(rows), {"dataframe_records": records}, {"instances": records},
                    {"inputs": {c: json.loads(rows[c].to_json(orient="values")) for c in rows}}):
        status, body, headers = churn_server.post(payload)
        assert status == 200, body
        assert body == {"predictions": local}
        assert len(headers["x-request-id"]) == 32
    status, body, _ = churn_server.post(rows.to_csv(index=False).encode(), "text/csv")
    assert status == 200 and body == {"predictions": local}
    status, _, headers = churn_server.post(_split(rows), headers={"X-Request-ID": "my-req-1"})
    assert status == 200 and headers["x-request-id"] == "my-req-1"


SECRET = "payload-marker-4f7c"
ERROR_CODES = {400: "BAD_REQUEST", 413: "REQUEST_LIMIT_EXCEEDED", 415: "UNSUPPORTED_MEDIA_TYPE"}


def _bad_cases(rows: pd.DataFrame) -> list[tuple[str, bytes | dict, str, int, str | None]]:
    split = _split(rows.head(2))
    records = json.loads(rows.head(2).to_json(orient="records"))
    wrong_type = json.loads(json.dumps(records))
    wrong_type[1]["monthly_charges"] = SECRET
    null_int = json.loads(json.dumps(records))
    null_int[0]["tenure_months"] = None
    missing = [{k: v for k, v in r.items() if k != "contract"} for r in records]
    unknown = [{**r, "zip_code": SECRET} for r in records]
    big = json.loads(json.dumps(records)) * 40
    return [
        ("malformed JSON", b'{"dataframe_split": {"columns": [', "application/json", 400, "not valid JSON"),
        # Which check stops 5,000 levels (the JSON parser's depth limit or the records check)
        # is the parser's business: the workbench's part is a 400 BAD_REQUEST.
        ("deeply nested JSON", b'{"dataframe_records": ' + b"[" * 5000 + b"]" * 5000 + b"}",
         "application/json", 400, None),
        ("not a known format", {"rows": records, "note": SECRET}, "application/json", 400, "exactly one of the keys"),
        ("missing column", {"dataframe_records": missing}, "application/json", 400, "missing column(s) 'contract'"),
        ("unknown column", {"dataframe_records": unknown}, "application/json", 400, "unknown column(s) 'zip_code'"),
        ("wrong type", {"dataframe_records": wrong_type}, "application/json", 400, "'monthly_charges' expects float"),
        ("null in an int column", {"dataframe_records": null_int}, "application/json", 400, "'tenure_months' (int) is null at row 0"),
        ("empty batch", {"dataframe_records": []}, "application/json", 400, "the batch is empty"),
        ("too many rows", {"dataframe_records": big}, "application/json", 413, "the limit is 50"),
        ("body over the limit", b'{"dataframe_records": [' + b" " * 70000 + b"]}", "application/json", 413, "over the limit"),
        ("wrong content type", json.dumps(split).encode(), "text/plain", 415, "not supported"),
        ("ragged split", {"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "application/json", 400, "row 0 must be a list of 2 values"),
        ("bad CSV row", b"tenure_months,contract\n1,2,3\n", "text/csv", 400, "CSV row 0 has 3 fields"),
    ]


def test_bad_input_is_a_clear_4xx_and_the_server_keeps_serving(churn_server, models):
    rows = models["churn"][1][list(FEATURES)]
    for name, payload, content_type, status, message in _bad_cases(rows):
        got_status, body, _ = churn_server.post(payload, content_type)
        assert got_status == status, (name, body)
        assert set(body) == {"error_code", "message"}, name
        assert body["error_code"] == ERROR_CODES[status], (name, body)
        assert message is None or message in body["message"], (name, body)
        assert SECRET not in body["message"] and len(body["message"]) < 300, name
        assert churn_server.post(_split(rows.head(1)))[0] == 200, f"not serving after: {name}"
    metrics = churn_server.get("/metrics")[1].decode()
    assert 'workbench_requests_total{status="400"}' in metrics
    assert 'workbench_requests_total{status="413"} 2.0' in metrics
    assert 'workbench_requests_total{status="415"} 1.0' in metrics


def test_nulls_in_float_columns_are_missing_values(churn_server, models):
    rows = models["churn"][1][list(FEATURES)].head(3).copy()
    rows.loc[rows.index[0], "total_charges"] = np.nan
    status, body, _ = churn_server.post(_split(rows))
    assert status == 200 and len(body["predictions"]) == 3


def test_a_plain_mlflow_model_is_served_with_null_metadata(settings, models, tmp_path):
    server = Server(settings, "models:/PlainServe/1", tmp_path)
    try:
        meta = json.loads(server.get("/metadata")[1])
        assert meta["registered_model"] == "PlainServe" and meta["mlflow_version"] == 1
        assert meta["full_name"] is None and meta["version"] is None and meta["data_date"] is None
        status, body, _ = server.post({"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}})
        assert status == 200 and body == {"predictions": [0]}
    finally:
        server.stop()


def test_a_model_that_raises_is_a_500_with_the_request_id(settings, models, tmp_path):
    server = Server(settings, "picky_v1_20240101", tmp_path)
    try:
        status, body, headers = server.post({"dataframe_records": [{"x": 500.0}]})
        assert status == 500 and body["error_code"] == "INTERNAL_ERROR"
        assert headers["x-request-id"] in body["message"] and "ValueError" in body["message"]
        assert server.post({"dataframe_records": [{"x": 10.0}]})[1] == {"predictions": [20.0]}
    finally:
        assert server.stop() in (0, -signal.SIGTERM)


def test_sigterm_drains_in_flight_requests_and_flushes_the_log(settings, models, tmp_path):
    server = Server(settings, "picky_v1_20240101", tmp_path)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(server.post({"dataframe_records": [{"x": 1.5}]})))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the first request is inside the model, the others are queued
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=30)
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert [r[0] for r in results] == [200, 200, 200]
    logged = read_predictions(server.log_url, "picky_v1_20240101")
    assert len(logged) == 3 and set(logged["prediction"]) == {3.0}


def test_the_prediction_store_going_away_costs_no_prediction(settings, models, tmp_path):
    server = Server(settings, "irisserve_v1_20240101", tmp_path,
                    env={"WORKBENCH_SERVE_LOG_MAX_BACKLOG": "200"})
    one = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
    try:
        for _ in range(20):
            assert server.post(one)[0] == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(read_predictions(server.log_url)) < 20:
            time.sleep(0.2)
        assert len(read_predictions(server.log_url)) == 20

        moved = tmp_path / "store-away"
        server.store_dir.rename(moved)
        server.store_dir.write_text("the store is gone")  # a file where the folder was: no DB
        statuses = [server.post(one)[0] for _ in range(400)]
        assert statuses == [200] * 400
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _metrics(server)["workbench_prediction_log_write_errors_total"] < 1:
            time.sleep(0.2)
        metrics = _metrics(server)
        assert metrics["workbench_prediction_log_write_errors_total"] >= 1
        assert metrics["workbench_prediction_log_backlog"] <= 200
        assert metrics["workbench_prediction_log_dropped_total"] >= 200

        server.store_dir.unlink()
        moved.rename(server.store_dir)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _metrics(server)["workbench_prediction_log_backlog"] > 0:
            time.sleep(0.2)
        metrics = _metrics(server)
        assert metrics["workbench_prediction_log_backlog"] == 0
        assert (metrics["workbench_prediction_log_written_total"]
                + metrics["workbench_prediction_log_dropped_total"]) == 420
    finally:
        assert server.stop() in (0, -signal.SIGTERM)


def _metrics(server) -> dict[str, float]:
    out = {}
    for line in server.get("/metrics")[1].decode().splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_parity_with_mlflows_scoring_server(settings, models, tmp_path):
    """Same predictions as `mlflow models serve` for the four JSON formats and CSV."""
    iris, X = models["iris"]
    ours = Server(settings, "irisserve_v1_20240101", tmp_path, "--no-log")
    port = free_port()
    env = {**os.environ, **settings.as_env(),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    theirs = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", iris.uri, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert theirs.poll() is None, theirs.stderr.read()[-2000:]
                time.sleep(0.5)
        rows = X.sample(20, random_state=1)
        records = json.loads(rows.to_json(orient="records"))
        cases = [(_split(rows), "application/json"), ({"dataframe_records": records}, "application/json"),
                 ({"instances": records}, "application/json"),
                 ({"inputs": {c: rows[c].tolist() for c in rows}}, "application/json"),
                 (rows.to_csv(index=False).encode(), "text/csv")]
        for payload, content_type in cases:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                             headers={"Content-Type": content_type})
            with urllib.request.urlopen(request, timeout=30) as response:
                expected = json.loads(response.read())
            status, got, _ = ours.post(body, content_type)
            assert status == 200 and got == expected, (content_type, list(payload)[:1])
    finally:
        theirs.terminate()
        theirs.wait(timeout=30)
        ours.stop()
