"""The compose platform, for real: the shipped compose file with platform/compose.ci.yaml on
top, which swaps each registry image (nothing can be pulled here) for a stand-in built
locally on the sandbox's base image: Postgres from Debian's packages, moto's S3 server for
MinIO. The project's own images (tracking, workbench, model images) are used as they are.

The full cycle runs on it: a containerized train job registers an instance (metadata in
Postgres, artifacts in the S3 store), a packaged model is served by the `serving` profile,
its predictions land in the Postgres prediction store and `workbench monitor drift` reads
them. Fault tests restart Postgres under a logging job and stop the tracking server before
one starts. The platform is closed: MLflow answers 401 without credentials, Lab and job
containers hold no superuser or admin secret, the store's roles can do only their part,
and `init --force` will not write new secrets over data made with the old ones.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import nbformat
import pandas as pd
import pytest
import yaml
from _notebooks import job_notebook
from _standins import build_standins

from workbench import _docker, lineage
from workbench.config import Settings
from workbench.demo.data import write_demo_data
from workbench.errors import DockerError, PlatformError, TrackingError
from workbench.jobs import JobSpec, run_job
from workbench.packaging import images
from workbench.packaging.model_image import package_model
from workbench.platforms.compose import (
    SECRETS,
    TRACKING_CREDENTIALS,
    ComposePlatform,
    compose_command,
    init,
)
from workbench.platforms.embedded import free_port
from workbench.registry import Registry

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "notebooks" / "train.ipynb"
COMPOSE = REPO / "platform" / "compose.yaml"
CI_OVERRIDE = REPO / "platform" / "compose.ci.yaml"


# -- static checks of the real file (no engine needed) ---------------------------------------
def test_no_service_publishes_beyond_loopback() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = {name: spec.get("ports", []) for name, spec in services.items()}
    assert published["mlflow"] and published["pgadmin"] and published["jupyter"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_no_secret_has_a_default() -> None:
    text = COMPOSE.read_text()
    for secret in (*SECRETS, "POSTGRES_USER", "PGADMIN_EMAIL"):
        # $${VAR} is the container's own variable, not compose interpolation.
        uses = re.findall(r"(?<!\$)\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is not used"
        for use in uses:
            assert use.startswith(":?"), f"${{{secret}{use}}} gives a default or is optional"
    example = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in
               (REPO / "platform" / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    assert all(example[secret] == "" for secret in SECRETS)


def test_the_ci_stand_ins_are_pinned_too() -> None:
    services = yaml.safe_load(CI_OVERRIDE.read_text())["services"]
    for name, spec in services.items():
        if "image" in spec:
            tag = spec["image"].rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: {spec['image']} is not pinned"
            assert any(c.isdigit() for c in tag), f"{name}: {spec['image']} names no version"


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    try:
        return compose_command()
    except DockerError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.mark.integration
def test_compose_config_of_the_real_file_passes_and_refuses_missing_secrets(compose_cli, tmp_path):
    env_file = init(tmp_path / "platform")
    ok = subprocess.run([*compose_cli, "--project-directory", str(tmp_path / "platform"),
                         "-f", str(tmp_path / "platform" / "compose.yaml"), "config", "-q"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    assert all(len(values[secret]) >= 16 for secret in SECRETS)
    env_file.write_text("\n".join(f"{k}={'' if k == 'POSTGRES_PASSWORD' else v}"
                                  for k, v in values.items()))
    refused = subprocess.run([*compose_cli, "--project-directory", str(tmp_path / "platform"),
                              "-f", str(tmp_path / "platform" / "compose.yaml"), "config", "-q"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in refused.stderr + refused.stdout


# -- the platform, running --------------------------------------------------------------------
@dataclass
class Running:
    platform: ComposePlatform
    settings: Settings
    project: Path
    up_seconds: float

    def container(self, client: Any, service: str) -> Any:
        found = client.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={self.platform.project}",
            f"com.docker.compose.service={service}"]})
        assert found, f"no container for {service}"
        return found[0]

    def store_url(self, role: str) -> str:
        """The prediction store's URL on the platform's network, as ``role``."""
        password = self.platform.env[f"PREDICTIONS_{role.upper()}_PASSWORD"]
        return f"postgresql+psycopg2://predictions_{role}:{password}@postgres:5432/predictions"

    def psql(self, client: Any, database: str, sql: str) -> str:
        env = self.platform.env
        code, out = self.container(client, "postgres").exec_run(
            ["psql", "-U", env["POSTGRES_USER"], "-d", database, "-tAc", sql], user="postgres",
            environment={"PGPASSWORD": env["POSTGRES_PASSWORD"]})
        assert code == 0, out.decode()
        return out.decode().strip()


@pytest.fixture(scope="module")
def running(docker_client: Any, compose_cli: list[str]) -> Iterator[Running]:
    base_image = os.environ.get("WORKBENCH_BASE_IMAGE", "python:3.11-slim")
    build_standins(docker_client, base_image)
    build_settings = Settings.from_env(environ={}, cwd=REPO, base_image=base_image)
    # This checkout's images (the engine's cache keeps the dependency layers between runs).
    for name in ("tracking", "workbench", "serving"):
        images.build(name, build_settings, client=docker_client)
    project = Path(tempfile.mkdtemp(prefix="workbench-compose-project-"))
    project.chmod(0o755)  # job containers read it as uid 1000
    (project / "setup.cfg").write_text("[workbench]\nexperiment = compose\n")
    write_demo_data(project / "data", months=("20240131", "20240229"), rows=800)
    directory = project / "platform"
    env_file = init(directory)
    suffix = os.urandom(3).hex()
    ports = {key: str(free_port()) for key in ("MLFLOW_PORT", "PGADMIN_PORT", "JUPYTER_PORT",
                                               "SERVING_PORT")}
    text = env_file.read_text()
    for key, value in {"COMPOSE_PROJECT_NAME": f"wbtest{suffix}", "PROJECT_DIR": str(project),
                       **ports}.items():
        text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)
    env_file.write_text(text)
    platform = ComposePlatform(Settings.from_env(environ={}, cwd=project, base_image=base_image),
                               directory, overrides=[CI_OVERRIDE])
    # The host's clients (this test, and the jobs it starts) use the tracking user, as a user
    # who exported them from .env would.
    saved = {key: os.environ.get(key) for key in TRACKING_CREDENTIALS}
    os.environ.update(platform.tracking_credentials())
    started = time.monotonic()
    try:
        images.ensure_platform_images(platform.workbench_images(), build_settings,
                                      client=docker_client, progress=print)
        status = platform.up(print, timeout=600)
        up_seconds = time.monotonic() - started
        print(f"compose platform: cold up to all-healthy in {up_seconds:.1f} s")
        settings = Settings.from_env(
            environ={}, cwd=project, home=str(project / ".workbench"),
            tracking_uri=platform.tracking_uri(), docker_network=status.network,
            container_tracking_uri="http://mlflow:5000", base_image=base_image,
            tracking_username=platform.env["MLFLOW_TRACKING_USERNAME"],
            tracking_password=platform.env["MLFLOW_TRACKING_PASSWORD"],
            # What Lab has: the read-only role.
            prediction_store=(f"postgresql+psycopg2://predictions_reader:"
                              f"{platform.env['PREDICTIONS_READER_PASSWORD']}"
                              "@postgres:5432/predictions"))
        yield Running(platform, settings, project, up_seconds)
    finally:
        try:
            platform.compose("--profile", "serving", "down", "--volumes", progress=print)
        finally:
            shutil.rmtree(project, ignore_errors=True)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s")



@pytest.mark.integration
@pytest.mark.docker
def test_every_service_is_healthy_and_each_ui_answers(docker_client, running):
    status = running.platform.status(docker_client)
    assert status.healthy, status.services
    names = {s.name for s in status.services}
    assert {"postgres", "minio", "minio-init", "mlflow", "mlflow-users", "predictions-prepare",
            "jupyter"} <= names
    _wait_http(f"{running.platform.tracking_uri()}/health", 10)
    env = running.platform.env
    with urllib.request.urlopen(
            f"http://127.0.0.1:{env['JUPYTER_PORT']}/api/status?token={env['JUPYTER_TOKEN']}",
            timeout=10) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{env['JUPYTER_PORT']}/api/contents", timeout=10)
    assert refused.value.code == 403
    for container in docker_client.containers.list(filters={
            "label": f"com.docker.compose.project={running.platform.project}"}):
        for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings or [])


@pytest.mark.integration
@pytest.mark.docker
def test_the_full_cycle_runs_on_the_composed_platform(docker_client, running):
    settings = running.settings
    data = running.project / "data" / "churn_20240131.csv"
    result = run_job(JobSpec(TRAIN, {"instance": "churn", "version": "v1", "data_date": "20240131",
                                     "data_path": str(data)}, executor="docker"), settings)
    assert result.status == "FINISHED"

    # Metadata in Postgres, artifacts in the S3 store: read where they live.
    registry = Registry(settings)
    instance = registry.resolve("churn_v1_20240131")
    assert instance.tags[lineage.EXECUTOR] == "docker"
    assert running.psql(docker_client, "mlflow",
                        "select count(*) from model_versions where name = 'churn'") == "1"
    assert running.psql(docker_client, "mlflow",
                        f"select status from runs where run_uuid = '{result.run_id}'") == "FINISHED"
    env = running.platform.env
    keys = _docker.run_output(docker_client, running.container(docker_client, "mlflow").image.id, [
        "python", "-c",
        "import boto3; s3 = boto3.client('s3', endpoint_url='http://minio:9000', "
        f"aws_access_key_id='{env['MINIO_ROOT_USER']}', aws_secret_access_key='{env['MINIO_ROOT_PASSWORD']}', "
        f"region_name='us-east-1'); print('\\n'.join(o['Key'] for o in "
        f"s3.list_objects_v2(Bucket='{env['ARTIFACT_BUCKET']}').get('Contents', [])))"],
        network=settings.docker_network).split()
    assert any(key.endswith("MLmodel") for key in keys)
    assert any(key.endswith(result.output_notebook.name) for key in keys)

    # A packaged model, served by the `serving` profile, logging into Postgres.
    packaged = package_model("churn_v1_20240131", settings, client=docker_client)
    os.environ["MODEL_IMAGE"] = packaged.tag
    try:
        running.platform.compose("--profile", "serving", "up", "-d", "serving")
    finally:
        os.environ.pop("MODEL_IMAGE")
    base = f"http://127.0.0.1:{env['SERVING_PORT']}"
    _wait_http(f"{base}/health")
    frame = pd.read_csv(running.project / "data" / "churn_20240229.csv")  # 800 rows, no drift
    features = frame[[c["name"] for c in _signature_inputs(base)]]
    requests = [features.iloc[start:start + 200] for start in range(0, len(features), 200)]
    for part in requests:
        request = urllib.request.Request(
            f"{base}/invocations", headers={"Content-Type": "application/json"},
            data=json.dumps({"dataframe_split": json.loads(part.to_json(orient="split", index=False))}).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            assert len(json.loads(response.read())["predictions"]) == len(part)
    deadline = time.monotonic() + 30
    while _logged(running, docker_client) != len(requests):  # one record per request, written
        # by a background thread
        assert time.monotonic() < deadline, "the predictions did not reach the Postgres store:\n" + \
            running.container(docker_client, "serving").logs().decode()[-3000:]
        time.sleep(1)

    # `workbench monitor drift` on the platform's network reads them from Postgres.
    output = _docker.run_output(docker_client, images.image_kind("workbench").tag, [
        "workbench", "monitor", "drift", "churn_v1_20240131", "--since", "1d", "--json"],
        network=settings.docker_network,
        environment={**settings.container_env(), **running.platform.tracking_credentials()})
    summary = json.loads(output[output.index("{"):])
    assert summary["current_rows"] == len(frame)
    assert summary["verdict"] in {"ok", "warn", "drift"}


def _logged(running: Running, client: Any) -> int:
    return int(running.psql(client, "predictions", "select count(*) from predictions"))


def _signature_inputs(base: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/metadata", timeout=10) as response:
        return json.loads(response.read())["signature"]["inputs"]


def _status(url: str, *, auth: tuple[str, str] | None = None, data: bytes | None = None) -> int:
    """The HTTP status of a request to ``url`` (basic auth with ``auth``)."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.integration
@pytest.mark.docker
def test_mlflow_asks_for_credentials_and_the_tracking_user_is_no_admin(docker_client, running):
    env = running.platform.env
    api = f"{running.platform.tracking_uri()}/api/2.0/mlflow"
    search = f"{api}/experiments/search?max_results=1"
    user = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    assert _status(f"{running.platform.tracking_uri()}/health") == 200  # probes need no user
    assert _status(search) == 401
    assert _status(search, auth=(user[0], "wrong-password")) == 401
    assert _status(search, auth=user) == 200
    admin = (env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"])
    assert admin[0] != user[0]
    body = json.dumps({"username": "intruder", "password": "a-long-password-1"}).encode()
    assert _status(f"{api}/users/create", auth=user, data=body) == 403  # admins only
    # The auth store lives in Postgres beside the backend store, not in the container.
    assert running.psql(docker_client, "mlflow_auth",
                        f"select count(*) from users where username in ('{user[0]}', '{admin[0]}')"
                        ) == "2"


def _secret_values(running: Running) -> dict[str, str]:
    """What must never reach Lab or a job container: superuser, admin and storage secrets."""
    env = running.platform.env
    return {key: env[key] for key in (
        "POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "MINIO_ROOT_PASSWORD", "PREDICTIONS_OWNER_PASSWORD", "PREDICTIONS_WRITER_PASSWORD",
        "PGADMIN_PASSWORD")}


def _leaks(environment: list[str], secrets: dict[str, str]) -> list[str]:
    return [key for key, value in secrets.items()
            if any(value in variable for variable in environment)]


@pytest.mark.integration
@pytest.mark.docker
def test_lab_and_job_containers_hold_no_superuser_or_admin_secret(docker_client, running):
    secrets = _secret_values(running)
    lab_env = running.container(docker_client, "jupyter").attrs["Config"]["Env"]
    assert _leaks(lab_env, secrets) == []
    user = running.platform.env["MLFLOW_TRACKING_USERNAME"]
    assert f"MLFLOW_TRACKING_USERNAME={user}" in lab_env

    notebook = job_notebook(running.project / "inspected.ipynb", "seconds = 25",
                            "import time\ntime.sleep(seconds)")
    network = running.settings.docker_network
    job = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", str(notebook), "--executor", "docker"],
        env={**os.environ, **running.settings.as_env(),
             "WORKBENCH_DOCKER_NETWORK": network,
             "WORKBENCH_CONTAINER_TRACKING_URI": running.settings.container_tracking_uri},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job_env: list[str] = []
        deadline = time.monotonic() + 90
        while not job_env and time.monotonic() < deadline and job.poll() is None:
            for container in docker_client.containers.list(filters={
                    "network": network, "label": "org.mlops-workbench.job.run_id"}):
                job_env = container.attrs["Config"]["Env"]
            time.sleep(0.5)
        assert job_env, "no job container was seen running"
        assert _leaks(job_env, secrets) == []
        assert f"MLFLOW_TRACKING_USERNAME={user}" in job_env
        _, err = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 0, err[-2000:]  # the job reached MLflow as the tracking user


_PROBE = """
import json, os
import sqlalchemy as sa
engine = sa.create_engine(os.environ["STORE_URL"])
statements = {
    "insert": "INSERT INTO predictions (request_id, created_at, model_name, n_rows, inputs, "
              "outputs, latency_ms) VALUES ('probe', now(), 'role-probe', 1, '[]', '[]', 1.0)",
    "select": "SELECT count(*) FROM predictions",
    "schema_version": "SELECT value FROM workbench_store_meta",
    "update": "UPDATE predictions SET model_name = 'x' WHERE request_id = 'probe'",
    "delete": "DELETE FROM predictions WHERE request_id = 'probe'",
    "create": "CREATE TABLE role_probe (x int)",
    "drop": "DROP TABLE predictions",
    # What `workbench monitor labels` and `monitor performance` write.
    "loads_insert": "INSERT INTO label_loads (id_column, received_at, source) VALUES "
                    "('role-probe', now(), 'role-probe')",
    "labels_insert": "INSERT INTO labels (load_id, id_value, label) VALUES (-1, 'p', '1')",
    "labels_delete": "DELETE FROM labels WHERE load_id = -1",
    "windows_insert": "INSERT INTO performance_windows (model_name, metric, window_start, "
                      "window_end, evaluated_at, rows, labelled) VALUES ('role-probe', "
                      "'accuracy', now(), now(), now(), 0, 0)",
    "temporary": "CREATE TEMPORARY TABLE role_probe_keys (x int)",
}
results = {}
for name, sql in statements.items():
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
        results[name] = "ok"
    except sa.exc.DBAPIError as exc:
        results[name] = getattr(exc.orig, "pgcode", None) or type(exc.orig).__name__
print(json.dumps(results))
"""
DENIED = "42501"  # SQLSTATE insufficient_privilege


def _probe(docker_client: Any, running: Running, role: str) -> dict[str, str]:
    output = _docker.run_output(
        docker_client, images.image_kind("workbench").tag, ["python", "-c", _PROBE],
        network=running.settings.docker_network, environment={"STORE_URL": running.store_url(role)})
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.integration
@pytest.mark.docker
def test_the_serving_role_only_inserts_and_the_reader_only_reads(docker_client, running):
    writer = _probe(docker_client, running, "writer")
    # The writer reads the store's schema version (its start-up check), no prediction, and
    # touches no label.
    assert writer == {"insert": "ok", "select": DENIED, "schema_version": "ok", "update": DENIED,
                      "delete": DENIED, "create": DENIED, "drop": DENIED,
                      "loads_insert": DENIED, "labels_insert": DENIED,
                      "labels_delete": DENIED, "windows_insert": DENIED, "temporary": DENIED}
    reader = _probe(docker_client, running, "reader")
    # The reader never changes a logged prediction; it loads labels and records performance
    # checks (Lab and jobs run `monitor labels` and `monitor performance`).
    assert reader == {"insert": DENIED, "select": "ok", "schema_version": "ok", "update": DENIED,
                      "delete": DENIED, "create": DENIED, "drop": DENIED,
                      "loads_insert": "ok", "labels_insert": "ok", "labels_delete": "ok",
                      "windows_insert": "ok", "temporary": "ok"}
    # The writer's row is there (read as the superuser), untouched by the refused statements.
    assert running.psql(docker_client, "predictions",
                        "select model_name from predictions where request_id = 'probe'"
                        ) == "role-probe"


@pytest.mark.integration
@pytest.mark.docker
def test_init_force_refuses_while_the_volumes_hold_data(docker_client, running):
    directory = running.platform.directory
    env_file = directory / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    before = env_file.read_bytes()
    with pytest.raises(PlatformError) as refused:
        init(directory, force=True, client=docker_client)
    assert "workbench platform down --compose --volumes" in str(refused.value)
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "platform", "init", str(directory), "--force"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert f"--compose --volumes --dir {directory}" in lines[0]
    assert env_file.read_bytes() == before  # the secrets the data was made with are kept
    assert running.platform.status(docker_client).healthy


@pytest.mark.integration
@pytest.mark.docker
def test_a_job_survives_a_postgres_restart_without_losing_an_acknowledged_write(docker_client, running):
    notebook = job_notebook(
        running.project / "logs_through_restart.ipynb", "steps = 60",
        "import time, mlflow\n"
        "mlflow.set_experiment('compose-faults')\n"
        "run = mlflow.start_run()\n"
        "print('run', run.info.run_id, flush=True)\n"
        "for step in range(steps):\n"
        "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "    print('ack', step, flush=True)\n"
        "    time.sleep(0.5)\n"
        "mlflow.end_run()")
    job = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", str(notebook), "--executor", "docker",
         "--experiment", "compose-faults"],
        env={**os.environ, **running.settings.as_env(),
             "WORKBENCH_DOCKER_NETWORK": running.settings.docker_network,
             "WORKBENCH_CONTAINER_TRACKING_URI": running.settings.container_tracking_uri},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(15)  # the container is up and logging
    running.platform.compose("restart", "postgres")
    out, err = job.communicate(timeout=300)
    running.platform.wait_healthy(timeout=120)

    lines = (out + err).splitlines()
    if job.returncode != 0:
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, err[-2000:]  # a clear failure is allowed, a silent one is not
    notebooks = sorted((running.settings.jobs_dir / notebook.stem).glob("*.ipynb"))
    executed = nbformat.read(notebooks[-1], as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    acked = {int(step) for step in re.findall(r"^ack (\d+)$", text, flags=re.M)}
    run_id = re.search(r"^run (\w+)$", text, flags=re.M).group(1)
    assert acked, "the job logged nothing before the restart"
    history = mlflow.MlflowClient(running.settings.tracking_uri).get_metric_history(run_id, "loss")
    assert acked <= {m.step for m in history}  # no acknowledged write lost


@pytest.mark.integration
@pytest.mark.docker
def test_a_job_started_while_the_tracking_server_is_down_fails_at_once(docker_client, running):
    notebook = job_notebook(running.project / "never_runs.ipynb", "n = 1", "n + 1")
    running.platform.compose("stop", "mlflow")
    try:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "run", str(notebook), "--executor", "docker"],
            env={**os.environ, **running.settings.as_env()}, capture_output=True, text=True,
            timeout=120)
        assert time.monotonic() - started < 60  # no hang on MLflow's retries
        assert done.returncode != 0
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and running.settings.tracking_uri in errors[0], done.stderr
        with pytest.raises(TrackingError):
            run_job(JobSpec(notebook, {}, executor="docker"), running.settings)
    finally:
        running.platform.compose("start", "mlflow")
        running.platform.wait_healthy(timeout=180)


TICK_POLICY = """\
instance: tick
data: {path: "data/tick_{data_date}.csv", label_column: y}
schedules:
  batch: {cron: "*/5 * * * * *"}
batch: {notebook: notebooks/tick.ipynb}
triggers: {drift: false}
"""


@pytest.mark.integration
@pytest.mark.docker
def test_the_scheduler_service_fires_a_policy_job_on_the_platform_network(docker_client, running):
    from sklearn.linear_model import LogisticRegression

    from workbench import tracking
    from workbench.naming import ModelName

    project = running.project
    for folder in ("notebooks", "policies"):
        (project / folder).mkdir(mode=0o755, exist_ok=True)
    job_notebook(project / "notebooks" / "tick.ipynb",
                 'model_ref = ""\ninput_path = ""\noutput_path = ""',
                 "import os\nprint('tick', model_ref, os.environ['MLFLOW_TRACKING_URI'])")
    registry = Registry(running.settings)
    X = pd.DataFrame({"a": [float(i) for i in range(40)], "b": [float(i % 3) for i in range(40)]})
    name = ModelName("tick", "v1", "20240131")
    run_id = tracking.start_run(registry.client, "tick", str(name), {})
    registry.register(LogisticRegression().fit(X, X.a > 20), name, run_id=run_id, input_example=X)
    registry.client.set_terminated(run_id)
    registry.promote(str(name), "champion", reason="the compose scheduler's test")

    policy = project / "policies" / "tick.yaml"
    policy.write_text(TICK_POLICY)
    policy.chmod(0o644)
    scheduler = running.container(docker_client, "scheduler")
    scheduler.kill(signal="SIGHUP")  # reload the policy files
    try:
        deadline = time.monotonic() + 180
        finished: list[Any] = []
        while not finished:
            assert time.monotonic() < deadline, "no scheduled fire finished within 180 s:\n" + \
                scheduler.logs().decode()[-3000:]
            time.sleep(2)
            finished = registry.client.search_runs(
                [e.experiment_id for e in registry.client.search_experiments()],
                filter_string="tags.`workbench.policy` = 'tick' and attributes.status = 'FINISHED'",
                max_results=5)
        run = finished[0]
        # An ordinary job of the scheduler's container, tracked on the platform's network.
        assert run.data.tags["workbench.policy.job"] == "batch"
        assert run.data.tags["workbench.policy.trigger"] == "schedule"
        assert run.data.tags[lineage.EXECUTOR] == "local"
        notebooks = [a.path for a in registry.client.list_artifacts(run.info.run_id, "job")
                     if a.path.endswith(".ipynb")]
        assert notebooks, "the fire's output notebook is not among the run's artifacts"
        code, out = scheduler.exec_run(["workbench", "schedule", "history", "tick.batch",
                                        "--json"])
        assert code == 0, out.decode()
        entries = json.loads(out.decode()[out.decode().index("["):])
        assert any(e["event"] == "finished" and run.info.run_id in e["run_ids"] for e in entries)
        # The output notebook stays in the scheduler's volume, and says where it tracked.
        code, out = scheduler.exec_run(["sh", "-c", 'ls -t "$WORKBENCH_HOME"/jobs/tick/*.ipynb'])
        assert code == 0 and out.strip(), "no output notebook under the scheduler's WORKBENCH_HOME"
        code, out = scheduler.exec_run(["cat", out.decode().split()[0]])
        assert code == 0 and "http://mlflow:5000" in out.decode()
        mounts = {m["Destination"]: m["Type"] for m in scheduler.attrs["Mounts"]}
        assert mounts.get("/home/workbench/.workbench") == "volume"
    finally:
        policy.unlink()
        scheduler.kill(signal="SIGHUP")  # the schedule goes with its policy
