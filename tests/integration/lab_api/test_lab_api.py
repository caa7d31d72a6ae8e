"""The server extension's routes through a real jupyter_server, on a real tracking server."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from _notebooks import job_notebook
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from workbench import lineage

pytestmark = pytest.mark.integration


async def _json(jp_fetch, *path: str, method: str = "GET", body: Any = None,
                params: dict | None = None) -> tuple[int, Any]:
    """Status and JSON body of a request to /workbench/api/..., errors included."""
    kwargs: dict[str, Any] = {"method": method, "params": params or {}}
    if body is not None or method == "POST":
        kwargs["body"] = json.dumps(body if body is not None else {})
    try:
        response = await jp_fetch("workbench", "api", *path, **kwargs)
    except HTTPClientError as error:
        assert error.response is not None
        return error.code, json.loads(error.response.body)
    return response.code, json.loads(response.body)


async def test_every_route_needs_authentication(jp_fetch, jp_http_port, jp_base_url):
    client = AsyncHTTPClient()
    base = f"http://localhost:{jp_http_port}{jp_base_url}workbench/api"
    for method, path, body in [("GET", "status", None), ("GET", "runs", None),
                               ("GET", "models", None), ("GET", "jobs", None),
                               ("POST", "jobs", "{}"), ("POST", "promote", "{}"),
                               ("GET", "schedules", None), ("GET", "proposals", None),
                               ("POST", "schedules/tick.batch/run-now", "{}"),
                               ("POST", "schedules/tick.batch/pause", "{}")]:
        with pytest.raises(HTTPClientError) as refused:
            await client.fetch(f"{base}/{path}", method=method, body=body)
        assert refused.value.code == 403, (method, path)
    # With the token the same route answers.
    code, status = await _json(jp_fetch, "status")
    assert code == 200 and status["healthy"] is True


async def test_status_names_the_settings_tracking_server(jp_fetch, settings):
    code, status = await _json(jp_fetch, "status", params={"tracking_uri": "http://evil:1"})
    assert code == 200
    assert status["tracking_uri"] == settings.tracking_uri  # never the client's


async def test_paths_outside_the_root_are_refused(jp_fetch, jp_root_dir, tmp_path):
    outside = job_notebook(tmp_path / "outside.ipynb", "x = 1", "print(x)")
    for path in ("../outside.ipynb", str(outside), "sub/../../outside.ipynb"):
        code, body = await _json(jp_fetch, "notebooks", "parameters", params={"path": path})
        assert code == 403 and body["field"] == "path", path
        code, body = await _json(jp_fetch, "jobs", method="POST", body={"path": path})
        assert code == 403 and body["error"] == "outside_root", path
    (jp_root_dir / "link.ipynb").symlink_to(outside)
    code, _ = await _json(jp_fetch, "notebooks", "parameters", params={"path": "link.ipynb"})
    assert code == 403


async def test_notebook_parameters_with_types(jp_fetch, jp_root_dir):
    job_notebook(jp_root_dir / "train.ipynb",
                 'version = "v1"\nepochs = 3\nrate = 0.5\nfull = False\ncols = ["a"]', "pass")
    code, body = await _json(jp_fetch, "notebooks", "parameters", params={"path": "train.ipynb"})
    assert code == 200
    fields = {f["name"]: (f["type"], f["default"]) for f in body["parameters"]}
    assert fields == {"version": ("str", "v1"), "epochs": ("int", 3), "rate": ("float", 0.5),
                      "full": ("bool", False), "cols": ("list", ["a"])}
    assert "local" in body["executors"]


@pytest.mark.parametrize("body, field", [
    ({"path": "job.ipynb", "parameters": {"seconds": "soon"}}, "seconds"),
    ({"path": "job.ipynb", "parameters": {"nope": 1}}, "nope"),
    ({"path": "job.ipynb", "parameters": [1]}, "parameters"),
    ({"path": "job.ipynb", "timeout": -1}, "timeout"),
    ({"path": "job.ipynb", "timeout": "long"}, "timeout"),
    ({"path": "job.ipynb", "executor": 3}, "executor"),
    ({"parameters": {}}, "path"),
])
async def test_bad_job_requests_are_a_400_naming_the_field(jp_fetch, jp_root_dir, body, field):
    job_notebook(jp_root_dir / "job.ipynb", "seconds = 1", "pass")
    code, answer = await _json(jp_fetch, "jobs", method="POST", body=body)
    assert code == 400 and answer["field"] == field
    assert "\n" not in answer["message"] and field in answer["message"]
    code, jobs = await _json(jp_fetch, "jobs")
    assert jobs == []  # nothing was started


async def _until_done(jp_fetch, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, job = await _json(jp_fetch, "jobs", job_id, params={"log_from": "0"})
        assert code == 200
        if job["status"] in ("FINISHED", "FAILED", "KILLED"):
            return job
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job['log']}")


async def test_a_submitted_job_runs_and_its_run_is_listed(jp_fetch, jp_root_dir, settings):
    job_notebook(jp_root_dir / "square.ipynb", "n = 2",
                 "import mlflow\nmlflow.log_metric('square', n * n)")
    code, job = await _json(jp_fetch, "jobs", method="POST",
                            body={"path": "square.ipynb", "parameters": {"n": 7}, "timeout": 120})
    assert code == 202 and job["status"] in ("STARTING", "RUNNING")
    job = await _until_done(jp_fetch, job["id"])
    assert job["status"] == "FINISHED", job["log"]
    assert job["progress"]["total"] >= 2 and job["progress"]["done"] == job["progress"]["total"]
    assert any("-> run" in line for line in job["log"])
    run = mlflow.MlflowClient(settings.tracking_uri).get_run(job["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["square"] == 49
    assert Path(job["output_notebook"]).is_file()

    code, one = await _json(jp_fetch, "runs", job["run_id"])
    assert code == 200 and one["params"]["n"] == "7" and one["metrics"]["square"] == 49
    assert one["tags"][lineage.NOTEBOOK_PATH] == str(jp_root_dir / "square.ipynb")
    assert any(a["path"].endswith(".ipynb") for a in one["artifacts"])
    code, page = await _json(jp_fetch, "runs", params={
        "experiment": settings.experiment, "notebook": "square.ipynb",
        "filter": "metrics.square > 40", "order": "metrics.square DESC", "max": "1"})
    assert code == 200 and [r["run_id"] for r in page["runs"]] == [job["run_id"]]


async def test_a_failing_job_ends_failed(jp_fetch, jp_root_dir, settings):
    job_notebook(jp_root_dir / "broken.ipynb", "n = 1", "raise ValueError('no data')")
    _, job = await _json(jp_fetch, "jobs", method="POST", body={"path": "broken.ipynb"})
    job = await _until_done(jp_fetch, job["id"])
    assert job["status"] == "FAILED" and "ValueError" in job["error"]
    assert mlflow.MlflowClient(settings.tracking_uri).get_run(job["run_id"]).info.status == "FAILED"
    assert Path(job["output_notebook"]).is_file()


async def test_cancel_ends_the_job_killed_with_its_notebook_kept(jp_fetch, jp_root_dir, settings):
    job_notebook(jp_root_dir / "sleepy.ipynb", "seconds = 120",
                 "print('started', flush=True)", "import time\ntime.sleep(seconds)")
    _, job = await _json(jp_fetch, "jobs", method="POST", body={"path": "sleepy.ipynb"})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # until the kernel sleeps in the last cell
        _, job = await _json(jp_fetch, "jobs", job["id"])
        if job["progress"]["done"] >= 2:
            break
        await asyncio.sleep(0.5)
    assert job["status"] == "RUNNING", job
    code, _ = await _json(jp_fetch, "jobs", job["id"], "cancel", method="POST")
    assert code == 200
    job = await _until_done(jp_fetch, job["id"], timeout=90)
    assert job["status"] == "KILLED", job["log"]
    run = mlflow.MlflowClient(settings.tracking_uri).get_run(job["run_id"])
    assert run.info.status == "KILLED"
    assert Path(run.data.tags[lineage.OUTPUT_NOTEBOOK]).is_file()


async def test_an_unknown_job_or_run_is_a_404(jp_fetch):
    assert (await _json(jp_fetch, "jobs", "0123456789ab"))[0] == 404
    assert (await _json(jp_fetch, "runs", "0123456789abcdef0123456789abcdef"))[0] == 404
    code, body = await _json(jp_fetch, "runs", params={"experiment": "no-such-experiment"})
    assert code == 404 and "no-such-experiment" in body["message"]
    code, body = await _json(jp_fetch, "runs", params={"order": "drop table"})
    assert code == 400 and body["field"] == "order"
    code, body = await _json(jp_fetch, "runs", params={"filter": "metrics.x >>> 1"})
    assert code == 400 and body["field"] == "filter"


async def test_models_lineage_and_promotion_with_gates(jp_fetch, register, unique_instance,
                                                       registry):
    from workbench.naming import ModelName

    v1 = register(ModelName(unique_instance, "v1", "20240131"), 0.90)
    v2 = register(ModelName(unique_instance, "v2", "20240131"), 0.70)
    registry.promote(v1.full_name, "champion", reason="first")

    code, names = await _json(jp_fetch, "models")
    assert code == 200 and unique_instance in names
    code, model = await _json(jp_fetch, "models", unique_instance)
    assert code == 200
    rows = {i["full_name"]: i for i in model["instances"]}
    assert "champion" in rows[v1.full_name]["aliases"]
    assert rows[v2.full_name]["metrics"]["roc_auc"] == 0.70
    assert rows[v2.full_name]["drift_status"] is None
    assert [h["to"] for h in model["history"]] == [v1.full_name]

    # Worse than the champion: refused with the gate named, nothing moved.
    promote = {"ref": v2.full_name, "alias": "champion"}
    code, refused = await _json(jp_fetch, "promote", method="POST", body=promote)
    assert code == 409 and refused["gates"] == ["metric"] and refused["candidate"] == v2.full_name
    assert registry.resolve(f"{unique_instance}@champion").number == v1.number
    code, body = await _json(jp_fetch, "promote", method="POST", body={**promote, "override": True})
    assert code == 400  # an override needs a reason
    code, done = await _json(jp_fetch, "promote", method="POST",
                             body={**promote, "override": True, "reason": "newer data"})
    assert code == 200 and done["overridden"] == ["metric"] and done["previous"] == v1.full_name
    assert registry.resolve(f"{unique_instance}@champion").number == v2.number
    code, body = await _json(jp_fetch, "promote", method="POST", body={**promote, "alias": "boss"})
    assert code == 400 and body["field"] == "alias"

    code, graph = await _json(jp_fetch, "models", unique_instance, str(v2.number), "lineage")
    assert code == 200
    assert graph["run"]["run_id"] == v2.run_id and graph["run"]["url"].startswith("http")
    assert graph["notebook"]["path"] == "/project/notebooks/train.ipynb"
    assert graph["model_version"]["uri"] == v2.uri and graph["aliases"] == ["champion"]
    assert [p["reason"] for p in graph["promotions"]] == ["newer data"]
    assert (await _json(jp_fetch, "models", "no-such-model"))[0] == 404


async def test_the_notebooks_active_run_is_ended_in_one_click(jp_fetch, registry, unique_instance):
    from workbench import tracking

    run_id = tracking.start_run(registry.client, unique_instance, "left-running", {})
    code, body = await _json(jp_fetch, "runs", run_id, "end", method="POST",
                             body={"status": "failed"})
    assert code == 200 and body["ended"] is True
    assert registry.client.get_run(run_id).info.status == "FAILED"
    code, body = await _json(jp_fetch, "runs", run_id, "end", method="POST",
                             body={"status": "DONE"})
    assert code == 400 and body["field"] == "status"


async def test_a_cookie_authenticated_post_needs_the_xsrf_token(jp_fetch, jp_http_port, jp_base_url,
                                                                 jp_serverapp):
    """A browser's session cookie alone cannot POST (Jupyter's XSRF rule): a page on another
    origin that makes the browser send the cookie gets 403."""
    client = AsyncHTTPClient()
    base = f"http://localhost:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token
    # A token-authenticated request leaves the login cookie, as opening Lab's URL does.
    login = await client.fetch(f"{base}workbench/api/status?token={token}")
    cookies = {}
    for header in login.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";")[0]
    session = "; ".join(f"{k}={v}" for k, v in cookies.items() if k != "_xsrf")
    assert session, login.headers
    url = f"{base}workbench/api/promote"
    with pytest.raises(HTTPClientError) as refused:
        await client.fetch(url, method="POST", body="{}", headers={"Cookie": session})
    assert refused.value.code == 403
    # With the XSRF cookie and header, as JupyterLab sends them, the route itself answers.
    xsrf = cookies.get("_xsrf") or "2|01234567|0123456789abcdef0123456789abcdef|1"
    with pytest.raises(HTTPClientError) as answered:
        await client.fetch(url, method="POST", body="{}", headers={
            "Cookie": f"{session}; _xsrf={xsrf}", "X-XSRFToken": xsrf})
    assert answered.value.code == 400  # no ref: the route ran and refused the body
    assert json.loads(answered.value.response.body)["field"] == "ref"
