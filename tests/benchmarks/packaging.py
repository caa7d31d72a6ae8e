"""Packaging and container-job benchmark: `workbench package` with the serving runtime warm,
the size of the layer a model adds, and a container job's overhead over a local job.

Run by hand (needs a Docker engine; on this machine `eval "$(../shared/ci/docker-sandbox up)"`):

    python tests/benchmarks/packaging.py [--repeat 3] [--no-anchor]

The anchor is `mlflow models build-docker`, which reinstalls MLflow and the model's
requirements for every model. It cannot build here (its FROM image cannot be pulled and pip
in a container cannot reach the index), so the script (1) renders MLflow's own Dockerfile with
`mlflow models generate-dockerfile` and reports its steps, and (2) builds the same steps
hermetically (`pip install mlflow==<version>` plus the model's requirements, from a host
wheelhouse, on the same base image, without cache, as a per-model build is) and times that.
Progress goes to stderr, the tables to stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This script's name (the issue's) shadows the `packaging` library that MLflow imports: take
# its folder off the path and load the shared helpers by file instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _helpers() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_proc", _HERE / "_proc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_proc = _helpers()
say, wait_until_quiet = _proc.say, _proc.wait_until_quiet


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def register_models(settings: Any, data: Path, count: int) -> list[tuple[str, str]]:
    """Register ``count`` churn instances of each kind; (label, full name) pairs."""
    import pandas as pd

    from workbench import tracking
    from workbench.demo import data as demo
    from workbench.demo.training import build_pipeline, select_features
    from workbench.naming import ModelName
    from workbench.registry import Registry

    registry = Registry(settings)
    frame = pd.read_csv(data)
    X, y = frame[select_features("all")], frame[demo.TARGET]
    made = []
    for n in range(1, count + 1):
        for kind, model in (
            ("logistic pipeline", build_pipeline("logistic_regression", list(X.columns))),
            ("random forest pipeline, 200 trees",
             build_pipeline("random_forest", list(X.columns), seed=n)),
        ):
            name = ModelName("bench" if kind.startswith("logistic") else "benchrf", f"v{n}", "20240131")
            run_id = tracking.start_run(registry.client, name.instance, str(name), {}, {})
            model.fit(X, y)
            registry.register(model, name, run_id=run_id, input_example=X)
            registry.client.set_terminated(run_id)
            made.append((kind, str(name)))
    return made


def bench_packaging(settings: Any, client: Any, models: list[tuple[str, str]]) -> list[dict]:
    from workbench.packaging.model_image import package_model

    rows = []
    for kind, name in models:
        say(f"packaging {name} ({kind})")
        packaged = package_model(name, settings, client=client)
        rows.append({"kind": kind, "name": name, "seconds": packaged.seconds,
                     "model": packaged.model_bytes, "added": packaged.added_bytes,
                     "layers": _added_layers(client, packaged.tag)})
    return rows


def _added_layers(client: Any, tag: str) -> int:
    """Layers with content the model image adds to the runtime (metadata steps have none)."""
    from workbench.packaging.images import image_kind

    runtime = {layer for layer in client.images.get(image_kind("serving").tag).attrs["RootFS"]["Layers"]}
    return len([layer for layer in client.images.get(tag).attrs["RootFS"]["Layers"]
                if layer not in runtime])


def bench_jobs(settings: Any, folder: Path, repeat: int) -> dict[str, list[float]]:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from workbench.jobs import JobSpec, run_job

    notebook = folder / "tiny.ipynb"
    first = new_code_cell("n = 1")
    first.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(cells=[first, new_code_cell("print(n + 1)")], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), notebook)
    notebook.chmod(0o644)
    times: dict[str, list[float]] = {"local": [], "docker": []}
    for round_ in range(repeat + 1):  # the first round warms up both
        for executor in ("local", "docker"):
            started = time.perf_counter()
            run_job(JobSpec(notebook, {"n": round_}, executor=executor, experiment="bench-jobs"), settings)
            if round_:
                times[executor].append(time.perf_counter() - started)
        say(f"job round {round_}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v))
    return times


def mlflow_dockerfile(settings: Any, name: str, folder: Path) -> tuple[str, Path]:
    """MLflow's own Dockerfile for the model, and the downloaded model folder."""
    import mlflow

    from workbench.registry import Registry

    instance = Registry(settings).resolve(name)
    mlflow.set_tracking_uri(settings.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=instance.uri,
                                                     dst_path=str(folder / "model-download")))
    out = folder / "mlflow-dockerfile"
    subprocess.run([sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "-m", str(local),
                    "-d", str(out), "--env-manager", "local"], check=True, capture_output=True,
                   env={**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri})
    return (out / "Dockerfile").read_text(), local


def bench_anchor(settings: Any, client: Any, model_dir: Path, folder: Path) -> dict:
    """MLflow's per-model steps, built hermetically without cache: seconds and size."""
    import mlflow

    from workbench import _docker
    from workbench.packaging import wheelhouse

    requirements = [line.strip() for line in (model_dir / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("mlflow")]
    python_version = _docker.run_output(client, settings.base_image, [
        "python3", "-c", "import platform; print(platform.python_version())"]).strip()
    house = wheelhouse.resolve([f"mlflow=={mlflow.__version__}", *requirements], python_version,
                               progress=say)
    context = folder / "anchor-context"
    shutil.copytree(house.path, context / "wheels", ignore=shutil.ignore_patterns(".complete"))
    shutil.copytree(model_dir, context / "model_dir")
    (context / "Dockerfile").write_text(
        f"FROM {settings.base_image}\n"
        "RUN python3 -m venv /opt/venv\n"
        "COPY wheels/ /tmp/wheels/\n"
        "RUN /opt/venv/bin/pip install --no-index --no-cache-dir --find-links /tmp/wheels "
        "-r /tmp/wheels/requirements.txt\n"
        "COPY model_dir/ /opt/ml/model/\n"
        'ENTRYPOINT ["/opt/venv/bin/python", "-c", "from mlflow.models import container as C; '
        'C._serve()"]\n')
    say("building the MLflow-style per-model image (no cache, as each model's build is)")
    started = time.perf_counter()
    stream = client.api.build(path=str(context), tag="bench/mlflow-style:latest", nocache=True,
                              rm=True, forcerm=True, decode=True)
    for chunk in stream:
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
    seconds = time.perf_counter() - started
    image = client.images.get("bench/mlflow-style:latest")
    base = client.images.get(settings.base_image)
    return {"seconds": seconds, "size": int(image.attrs["Size"]),
            "added": int(image.attrs["Size"]) - int(base.attrs["Size"]),
            "layers": len(image.attrs["RootFS"]["Layers"]) - len(base.attrs["RootFS"]["Layers"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="model versions / job rounds (default 3)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the MLflow-style build")
    args = parser.parse_args(argv)

    from workbench import _docker
    from workbench.config import Settings
    from workbench.demo.data import write_demo_data
    from workbench.packaging import images
    from workbench.platforms import EmbeddedPlatform
    from workbench.platforms.embedded import free_port

    client = _docker.get_client()
    folder = Path(tempfile.mkdtemp(prefix="workbench-bench-pkg-")).resolve()
    folder.chmod(0o755)  # job containers read it as uid 1000
    (folder / "setup.cfg").write_text("[workbench]\n")
    base = os.environ.get("WORKBENCH_BASE_IMAGE", "python:3.11-slim")
    settings = Settings.from_env(environ={}, cwd=folder, home=str(folder / ".workbench"),
                                 port=free_port(), base_image=base)
    platform = EmbeddedPlatform(settings, workers=1)
    try:
        status = platform.up(say)
        data = write_demo_data(folder / "data", months=("20240131",), rows=5000)[0]
        for name in ("serving", "workbench"):  # "with the runtime image warm"
            images.ensure(name, settings, client=client, progress=say)
        wait_until_quiet([status.pid])
        with contextlib.redirect_stdout(sys.stderr):
            models = register_models(settings, data, args.repeat)
            packaged = bench_packaging(settings, client, models)
            jobs = bench_jobs(settings, folder, args.repeat)
            dockerfile, model_dir = mlflow_dockerfile(settings, models[0][1], folder)
            anchor = None if args.no_anchor else bench_anchor(settings, client, model_dir, folder)
    finally:
        platform.down(say)
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\nPackaging on {os.uname().nodename} ({os.cpu_count()} CPUs), base image {base}, "
          "serving runtime warm:\n")
    print("| model | seconds | model files MB | image adds MB | layers with content | "
          "adds <= model + 1 MB |")
    print("|---|---:|---:|---:|---:|---|")
    for row in packaged:
        ok = row["added"] <= row["model"] + 1_000_000
        print(f"| {row['name']} ({row['kind']}) | {row['seconds']:.2f} | {_mb(row['model'])} | "
              f"{_mb(row['added'])} | {row['layers']} | {'yes' if ok else 'NO'} |")
    seconds = [row["seconds"] for row in packaged]
    print(f"\nmedian packaging time {statistics.median(seconds):.2f} s (max {max(seconds):.2f} s): "
          f"{'PASS' if max(seconds) < 10 else 'FAIL'} (target < 10 s)")

    local, docker = statistics.median(jobs["local"]), statistics.median(jobs["docker"])
    print(f"\nTiny notebook, {args.repeat} rounds after a warm-up (medians):\n")
    print("| executor | median s | min s |\n|---|---:|---:|")
    for name, values in jobs.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} |")
    print(f"\ncontainer-job overhead {docker - local:+.2f} s: "
          f"{'PASS' if docker - local < 3 else 'FAIL'} (target < 3 s)")

    steps = [line.split()[0] for line in dockerfile.splitlines()
             if line.strip() and not line.startswith("#") and line.split()[0].isupper()]
    print("\nAnchor: `mlflow models generate-dockerfile --env-manager local` for "
          f"{models[0][1]} renders {len(steps)} instructions "
          f"({', '.join(f'{steps.count(s)} {s}' for s in dict.fromkeys(steps))}):")
    for line in dockerfile.splitlines():
        if line.startswith(("FROM", "RUN", "COPY", "ENTRYPOINT")):
            print(f"    {line[:150]}")
    if anchor:
        print("\n| build | seconds | image MB | adds to base MB | layers added |\n|---|---:|---:|---:|---:|")
        first = packaged[0]
        runtime = client.images.get(images.image_kind("serving").tag)
        print(f"| MLflow-style per-model image (hermetic, no cache) | {anchor['seconds']:.1f} | "
              f"{_mb(anchor['size'])} | {_mb(anchor['added'])} | {anchor['layers']} |")
        print(f"| workbench package ({first['name']}) | {first['seconds']:.1f} | "
              f"{_mb(int(runtime.attrs['Size']) + first['added'])} | {_mb(first['added'])} "
              f"(on the shared runtime) | {first['layers']} |")
        print(f"\nper model: {anchor['seconds'] / first['seconds']:.0f}x faster; each new model adds "
              f"{_mb(first['added'])} MB instead of {_mb(anchor['added'])} MB of image data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
