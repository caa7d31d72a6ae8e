"""The stand-ins for the compose platform's registry images (platform/ci/), built and run on a
real Docker engine: each keeps the contract of the image it replaces, as far as the platform
relies on it.

Clients run in throwaway containers on the host's network (psql from the Postgres image,
boto3 from the S3 image), so they reach the servers through the ports published on
127.0.0.1, as the host's own tools would, without the host needing a driver installed.
Outside CI a machine without an engine skips these tests; with CI=true they fail instead.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from _standins import build_standins

from workbench import _docker

pytestmark = [pytest.mark.integration, pytest.mark.docker]
BASE_IMAGE = os.environ.get("WORKBENCH_BASE_IMAGE", "workbench-ci/debian-python:bookworm")
S3_HEALTHCHECK = ["python3", "-c", "import urllib.request; "
                  "urllib.request.urlopen('http://127.0.0.1:9000/moto-api/', timeout=2)"]


@pytest.fixture(scope="session")
def standins(docker_client: Any) -> dict[str, str]:
    return build_standins(docker_client, BASE_IMAGE)


@contextmanager
def running(client: Any, image: str, **options: Any) -> Iterator[Any]:
    """A detached container of ``image``, removed (with its anonymous volumes) on the way out."""
    container = client.containers.run(image, detach=True, **options)
    try:
        yield container
    finally:
        # v=True: the Postgres and pgAdmin images declare VOLUMEs, which would otherwise pile up.
        container.remove(force=True, v=True)


def run_once(client: Any, image: str, command: list[str] | None, timeout: float = 60,
             **options: Any) -> tuple[int, str]:
    """Run ``command`` (None: the image's own) in a throwaway container of ``image``; its exit
    status and output."""
    with running(client, image, command=command, **options) as container:
        status = _docker.wait(container, timeout)
        output = container.logs().decode("utf-8", "replace")
    assert status is not None, f"{image} did not finish within {timeout} s: {output}"
    return status, output


def wait_until(container: Any, command: list[str], timeout: float = 90) -> None:
    """Poll ``command`` in ``container`` until it succeeds; fail with the logs if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            pytest.fail(f"{container.image.tags} exited: {container.logs().decode()[-2000:]}")
        if container.status == "running" and container.exec_run(command).exit_code == 0:
            return
        time.sleep(0.5)
    pytest.fail(f"{' '.join(command)} did not succeed within {timeout} s: "
                f"{container.logs().decode()[-2000:]}")


def published_port(container: Any, port: str) -> str:
    container.reload()
    binding = container.ports[port][0]
    assert binding["HostIp"] == "127.0.0.1"
    return binding["HostPort"]


@pytest.fixture
def init_scripts(tmp_path: Path) -> Path:
    """An initdb.d folder like the platform's: a shell script creating the prediction store's
    database in the way the official image documents, and a SQL file."""
    # Bind-mounted as it is: the postgres user must be able to list it (pytest makes it 0700).
    tmp_path.chmod(0o755)
    (tmp_path / "10-prediction-store.sh").write_text(
        "#!/bin/sh\nset -eu\n"
        'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \\\n'
        '    -c "CREATE DATABASE \\"$PREDICTIONS_DB\\" OWNER \\"$POSTGRES_USER\\""\n'
    )
    (tmp_path / "20-runs.sql").write_text("CREATE TABLE init_runs (at timestamptz DEFAULT now());\n"
                                          "INSERT INTO init_runs DEFAULT VALUES;\n")
    for path in tmp_path.iterdir():
        path.chmod(0o755)
    return tmp_path


def test_postgres_keeps_the_official_images_contract(
    docker_client: Any, standins: dict[str, str], init_scripts: Path
) -> None:
    image, password = standins["postgres"], secrets.token_urlsafe(16)
    ready = ["pg_isready", "--host", "127.0.0.1", "--username", "mlflow", "--dbname", "mlflow"]
    with running(docker_client, image,
                 environment={"POSTGRES_USER": "mlflow", "POSTGRES_PASSWORD": password,
                              "POSTGRES_DB": "mlflow", "PREDICTIONS_DB": "predictions"},
                 volumes={str(init_scripts): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"}},
                 ports={"5432/tcp": ("127.0.0.1", None)}) as server:
        wait_until(server, ready)

        def psql(sql: str, secret: str = password) -> tuple[int, str]:
            # Looked up each time: a restarted container gets a new ephemeral host port.
            port = published_port(server, "5432/tcp")
            return run_once(docker_client, image,
                            ["psql", "--host", "127.0.0.1", "--port", port, "--username", "mlflow",
                             "--dbname", "mlflow", "--no-psqlrc", "-Atc", sql],
                            environment={"PGPASSWORD": secret}, network_mode="host")

        status, output = psql("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")
        assert status == 0, output
        assert output.split() == ["mlflow", "postgres", "predictions"]

        status, output = psql("SELECT 1", secret="not-the-password")
        assert status != 0
        assert 'password authentication failed for user "mlflow"' in output

        # The server runs as the postgres user, as PID 1 (so `docker stop` reaches it).
        status_lines = server.exec_run(["cat", "/proc/1/status"]).output.decode()
        assert re.search(r"^Name:\s+postgres$", status_lines, re.M)
        assert re.search(r"^Uid:\s+999\s", status_lines, re.M)

        # A restart keeps the data and does not run the init scripts again.
        assert psql("INSERT INTO init_runs DEFAULT VALUES")[0] == 0
        server.stop(timeout=20)
        server.reload()
        assert server.attrs["State"]["ExitCode"] == 0
        assert "database system is shut down" in server.logs().decode()
        server.start()
        wait_until(server, ready)
        status, output = psql("SELECT count(*) FROM init_runs")
        assert (status, output.strip()) == (0, "2")


def test_postgres_refuses_to_initialise_without_a_password(
    docker_client: Any, standins: dict[str, str]
) -> None:
    status, output = run_once(docker_client, standins["postgres"], ["postgres"],
                              environment={"POSTGRES_USER": "mlflow"})
    assert status != 0
    errors = [line for line in output.splitlines() if "error" in line]
    assert len(errors) == 1 and "POSTGRES_PASSWORD is not set" in errors[0]


def test_s3_standin_stores_objects_through_boto3(
    docker_client: Any, standins: dict[str, str]
) -> None:
    image = standins["s3"]
    # MinIO's own command line and keys, as the compose file passes them.
    with running(docker_client, image, command=["server", "/data"],
                 environment={"MINIO_ROOT_USER": "workbench", "MINIO_ROOT_PASSWORD": "s3cret-key"},
                 ports={"9000/tcp": ("127.0.0.1", None)}) as server:
        wait_until(server, S3_HEALTHCHECK)
        port = published_port(server, "9000/tcp")
        client_code = (
            "import boto3\n"
            f"s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}',"
            " region_name='us-east-1', aws_access_key_id='workbench',"
            " aws_secret_access_key='s3cret-key')\n"
            "s3.create_bucket(Bucket='mlflow')\n"
            "s3.put_object(Bucket='mlflow', Key='1/model/MLmodel', Body=b'flavors: {}')\n"
            "print(s3.get_object(Bucket='mlflow', Key='1/model/MLmodel')['Body'].read().decode())\n"
            "print([o['Key'] for o in s3.list_objects_v2(Bucket='mlflow')['Contents']])\n"
        )
        status, output = run_once(docker_client, image, ["python3", "-c", client_code],
                                  network_mode="host")
    assert status == 0, output
    assert output.splitlines() == ["flavors: {}", "['1/model/MLmodel']"]


def test_pgadmin_serves_with_the_preregistered_server(
    docker_client: Any, standins: dict[str, str], tmp_path: Path
) -> None:
    image, password = standins["pgadmin"], secrets.token_urlsafe(16)
    servers = tmp_path / "servers.json"
    servers.write_text(json.dumps({"Servers": {"1": {
        "Name": "mlops-workbench", "Group": "Servers", "Host": "postgres", "Port": 5432,
        "MaintenanceDB": "mlflow", "Username": "mlflow", "SSLMode": "prefer"}}}))
    servers.chmod(0o644)  # read by the pgadmin user (uid 5050) through the bind mount
    with running(docker_client, image,
                 environment={"PGADMIN_DEFAULT_EMAIL": "admin@example.com",
                              "PGADMIN_DEFAULT_PASSWORD": password,
                              "PGADMIN_CONFIG_SERVER_MODE": "True"},
                 volumes={str(servers): {"bind": "/pgadmin4/servers.json", "mode": "ro"}},
                 ports={"80/tcp": ("127.0.0.1", None)}) as server:
        # The compose file's health check, unchanged: the stand-in has wget, as upstream does.
        wait_until(server, ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:80/misc/ping"])
        base = f"http://127.0.0.1:{published_port(server, '80/tcp')}"
        with urllib.request.urlopen(f"{base}/misc/ping", timeout=10) as response:
            assert response.read() == b"PING"

        def login(secret: str) -> tuple[requests.Session, str, requests.Response]:
            session = requests.Session()
            page = session.get(f"{base}/login", timeout=10)
            token = re.search(r'csrfToken"\s*:\s*"([^"]+)', page.text)
            assert token, "no CSRF token on pgAdmin's login page"
            answer = session.post(f"{base}/authenticate/login", timeout=10, allow_redirects=False,
                                  data={"email": "admin@example.com", "password": secret,
                                        "csrf_token": token.group(1)})
            return session, token.group(1), answer

        _, _, refused = login("not-the-password")
        assert refused.headers.get("Location", "").endswith("/login")
        session, token, accepted = login(password)
        assert accepted.headers.get("Location", "").endswith("/browser/")
        listed = session.get(f"{base}/browser/server/obj/1/", timeout=10,
                             headers={"X-pgA-CSRFToken": token}).json()
        assert [(s["name"], s["host"], s["port"]) for s in listed] == [
            ("mlops-workbench", "postgres", 5432)]


def test_pgadmin_requires_its_login(docker_client: Any, standins: dict[str, str]) -> None:
    status, output = run_once(docker_client, standins["pgadmin"], None,
                              environment={"PGADMIN_DEFAULT_EMAIL": "admin@example.com"})
    assert status != 0
    assert "PGADMIN_DEFAULT_EMAIL and PGADMIN_DEFAULT_PASSWORD" in output


def test_an_unchanged_context_reuses_the_built_images(
    docker_client: Any, standins: dict[str, str]
) -> None:
    before = {name: docker_client.images.get(tag).id for name, tag in standins.items()}
    started = time.monotonic()
    again = build_standins(docker_client, BASE_IMAGE)
    assert again == standins
    assert {name: docker_client.images.get(tag).id for name, tag in again.items()} == before
    # Hashing the contexts (a few hundred MB of wheels) is all a second session pays for.
    assert time.monotonic() - started < 60
