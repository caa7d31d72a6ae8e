"""The ``docker`` executor: papermill inside a container of the workbench image.

The project (and the notebook's folder, when it lies elsewhere) is mounted read-only at the
same path it has on the host, so paths in parameters, lineage tags and error messages mean
the same thing inside and out. The container writes the output notebook into its own home;
whichever way the job ends (exit, failing cell, timeout, Ctrl-C here) the container is
stopped, the notebook is copied out, the log is kept next to it and the container is
removed, in that order.
"""
from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from workbench import _docker
from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.jobs.spec import JobSpec, JobTimeout, PreparedJob
from workbench.progress import Progress

CONTAINER_UID = 1000  # the `workbench` user of images/workbench/Dockerfile
CONTAINER_HOME = "/home/workbench"
OUTPUT_IN_CONTAINER = f"{CONTAINER_HOME}/output.ipynb"
# Seconds a stopped job gets to save its notebook: papermill saves it on SIGINT.
STOP_GRACE_S = 15


class ContainerCellError(Exception):
    """A cell raised inside the container; shaped like papermill's error for the runner."""

    def __init__(self, ename: str, evalue: str, exec_count: int | None) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue, self.exec_count = ename, evalue, exec_count


class DockerExecutor:
    """Runs each job in a fresh container; ``check`` must be called before ``execute``."""

    name = "docker"

    def __init__(self) -> None:
        self._client: Any = None
        self._image: Any = None
        self._image_ref = ""
        self._network: dict[str, str] = {}
        self._tracking_uri = ""

    def check(self, spec: JobSpec, settings: Settings) -> dict[str, str]:
        """Check the engine, the image and the mounts before the job's run exists.

        Returns:
            Run tags that record the image: its tag, id and (when pushed) repo digest.

        Raises:
            DockerError, ImageNotFound: no engine, or the image is not built.
            ConfigError: the container's user cannot read the notebook or the project.
        """
        from workbench.packaging.images import image_kind

        self._client = _docker.get_client()
        self._image_ref = spec.image or image_kind("workbench").tag
        self._image = _docker.get_image(self._client, self._image_ref, hint=(
            "build it with `workbench image build workbench`" if not spec.image
            else "build or load it first"))
        self._network = _docker.network_options(settings.tracking_uri, settings.docker_network)
        self._tracking_uri = settings.container_env()["MLFLOW_TRACKING_URI"]
        for path in (settings.project_root, spec.notebook.resolve()):
            _check_readable(path)
        digests = self._image.attrs.get("RepoDigests") or []
        return {
            "workbench.job.image": self._image_ref,
            "workbench.job.image_id": self._image.id,
            # Locally built images have no registry digest until pushed; the id is the
            # content digest of the image itself.
            "workbench.job.image_digest": digests[0] if digests else self._image.id,
        }

    def execute(self, job: PreparedJob, progress: Progress, show_progress: bool) -> dict[str, str]:
        import yaml

        if self._image is None:
            raise ConfigError("DockerExecutor.check() must run before execute()")
        # papermill's command line with the workbench's job kernels (IPC, see jobs.kernel).
        command = ["python", "-m", "workbench.jobs.kernel", str(job.notebook), OUTPUT_IN_CONTAINER,
                   "--engine", "workbench", "--cwd", str(job.cwd),
                   "--parameters_yaml", yaml.safe_dump(job.parameters, default_flow_style=True),
                   "--log-output", "--progress-bar" if show_progress else "--no-progress-bar"]
        if job.kernel_name:
            command += ["--kernel", job.kernel_name]
        env = {
            **job.env,
            # State the job writes (predictions, reports) stays in the container's home: the
            # project is read-only. The job's results go to MLflow.
            "WORKBENCH_HOME": f"{CONTAINER_HOME}/.workbench",
            "HOME": CONTAINER_HOME,
            # On a compose platform's network the server has a name of its own.
            "MLFLOW_TRACKING_URI": self._tracking_uri,
        }
        log_file = job.output_notebook.with_suffix(".log")
        with _docker.api_errors(f"start a job container from {self._image_ref}"):
            container = self._client.containers.run(
                self._image.id, command, detach=True, environment=env,
                volumes=_mounts(job), working_dir=str(job.cwd),
                labels={"org.mlops-workbench.job.run_id": job.env.get("MLFLOW_RUN_ID", "")},
                **self._network,
            )
        progress(f"container {container.short_id} ({self._image_ref}) started; log: {log_file}")
        lines: list[str] = []
        quiet = threading.Event()
        follower = threading.Thread(target=_follow, args=(container, lines, progress, quiet),
                                    daemon=True)
        follower.start()
        status: int | None = None
        try:
            status = _docker.wait(container, job.timeout or None)
        finally:
            # Also on Ctrl-C (KeyboardInterrupt here) and on engine errors: keep what the job
            # wrote before the container goes.
            try:
                if status is None:
                    # What a stopped kernel says on its way out goes to the log only.
                    quiet.set()
                    _stop(container)
                follower.join(timeout=10)
                _docker.copy_from_container(container, OUTPUT_IN_CONTAINER, job.output_notebook)
            finally:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                log_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
                _docker.remove(container)
        if status is None:
            raise JobTimeout(f"timed out after {job.timeout:g} s (container stopped)")
        if status != 0:
            raise _failure(job.output_notebook, status, lines)
        return {}


def _stop(container: Any) -> None:
    """Interrupt the job's papermill (it saves the notebook and stops its kernel), then kill
    the container if it has not exited within ``STOP_GRACE_S``."""
    try:
        container.kill(signal="SIGINT")
    except Exception:
        return  # already exited
    if _docker.wait(container, STOP_GRACE_S) is None:
        try:
            container.kill()
        except Exception:
            pass


def _mounts(job: PreparedJob) -> dict[str, dict[str, str]]:
    folders = {job.cwd.resolve()}
    notebook_dir = job.notebook.resolve().parent
    if not any(notebook_dir.is_relative_to(f) for f in folders):
        folders.add(notebook_dir)
    data_dir = Path(job.env.get("WORKBENCH_DATA_DIR", "")).resolve()
    if data_dir.is_dir() and not any(data_dir.is_relative_to(f) for f in folders):
        folders.add(data_dir)
    return {str(f): {"bind": str(f), "mode": "ro"} for f in sorted(folders)}


def _check_readable(path: Path) -> None:
    """The container runs as uid 1000: every folder above ``path`` must let it through."""
    if os.geteuid() == CONTAINER_UID:
        return
    path = path.resolve()
    for folder in (path, *path.parents):
        if not folder.exists():
            continue
        info = folder.stat()
        if info.st_uid == CONTAINER_UID:
            continue
        needed = stat.S_IXOTH if folder.is_dir() else stat.S_IROTH
        if not info.st_mode & needed:
            raise ConfigError(
                f"the job container runs as uid {CONTAINER_UID}, which cannot read {folder} "
                f"(mode {stat.filemode(info.st_mode)}); make it readable (chmod o+rx {folder}) "
                "or keep the project in a folder others can read"
            )


def _follow(container: Any, lines: list[str], progress: Progress, quiet: threading.Event) -> None:
    buffer = b""
    try:
        for chunk in container.logs(stream=True, follow=True):
            buffer += chunk
            # tqdm redraws its bar with \r: each redraw is a progress line of its own.
            *complete, buffer = buffer.replace(b"\r", b"\n").split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace").rstrip()
                if not line or (lines and line == lines[-1]):
                    continue
                lines.append(line)
                if not quiet.is_set():
                    progress(f"  | {line}")
    except Exception:
        pass
    if buffer.strip():
        lines.append(buffer.decode("utf-8", "replace").rstrip())


def _failure(output: Path, status: int, lines: list[str]) -> Exception:
    """The cell error the output notebook records, else the log's last line."""
    if output.is_file():
        try:
            notebook = json.loads(output.read_text(encoding="utf-8"))
        except ValueError:
            notebook = {}
        for cell in notebook.get("cells", []):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and out.get("ename") != "PapermillExecutionError":
                    return ContainerCellError(out.get("ename", "Error"), out.get("evalue", ""),
                                              cell.get("execution_count"))
    last = next((line for line in reversed(lines) if line.strip()), "no output")
    return RuntimeError(f"the job container exited with status {status}: {last}")
