"""``workbench package``: a model instance as a REST serving image, in seconds.

The image is ``workbench-model/{instance}:{version}_{data_date}``: the shared serving runtime
plus the model files, labelled with the model's lineage, serving on port 8080 as a non-root
user with a health check. When the model needs packages the runtime lacks (another
scikit-learn, say), an environment layer is built for it from wheels the host resolves.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import _docker, lineage
from workbench.config import Settings
from workbench.naming import ModelName
from workbench.packaging import images, wheelhouse
from workbench.packaging.dockerfile import ModelImageSpec, render_model_dockerfile
from workbench.progress import Progress

if TYPE_CHECKING:
    from workbench.registry import Instance, Registry

REPOSITORY = "workbench-model"
LABEL = f"{images.LABEL_PREFIX}.model"
# A model saved by plain MLflow asks for `mlflow`; serving needs only its client half,
# which the runtime has as mlflow-skinny at the same version.
_SATISFIED_BY = {"mlflow": "mlflow-skinny"}


@dataclass(frozen=True)
class PackagedModel:
    """A built model image.

    Attributes:
        tag: ``workbench-model/{instance}:{version}_{data_date}``.
        image_id: the image's content id (``sha256:...``).
        model: the instance's label (full name, or ``models:/`` URI outside the convention).
        model_bytes: size of the model files.
        added_bytes: what the image adds to the runtime image (the model layer, plus the
            environment layer when one was needed).
        environment: packages the runtime lacked, installed in an environment layer.
        seconds: wall time, download and build included.
    """

    tag: str
    image_id: str
    model: str
    model_bytes: int
    added_bytes: int
    environment: tuple[str, ...]
    seconds: float


def image_tag(instance: Instance) -> str:
    """``workbench-model/churn:v2_20240131`` (``workbench-model/<model>:<number>`` outside
    the naming convention)."""
    if instance.full_name:
        name = ModelName.parse(instance.full_name)
        return f"{REPOSITORY}/{name.instance}:{name.version}_{name.data_date}"
    repository = re.sub(r"[^a-z0-9._-]+", "-", instance.registered_model.lower()).strip("-._")
    return f"{REPOSITORY}/{repository or 'model'}:{instance.number}"


def unmet_requirements(requirements: Iterable[str], installed: Mapping[str, str]) -> list[str]:
    """The requirement lines ``installed`` (name -> version) does not satisfy."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    unmet = []
    for line in requirements:
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            unmet.append(text)  # pip will say what is wrong with it, in the build log
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        version = installed.get(name) or installed.get(_SATISFIED_BY.get(name, ""))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(text)
    return unmet


def lineage_labels(instance: Instance, settings: Settings, runtime_tag: str) -> dict[str, str]:
    """Image labels that say which model this is and where it came from."""
    import mlflow

    git_commit = instance.tags.get(lineage.GIT_COMMIT, "")
    labels = {
        "org.opencontainers.image.title": instance.label,
        "org.opencontainers.image.version": (f"{instance.model_version}_{instance.data_date}"
                                             if instance.full_name else str(instance.number)),
        "org.opencontainers.image.revision": git_commit,
        f"{LABEL}.full_name": instance.full_name or "",
        f"{LABEL}.instance": instance.registered_model if instance.full_name else "",
        f"{LABEL}.version": instance.model_version or "",
        f"{LABEL}.data_date": instance.data_date or "",
        f"{LABEL}.registered_model": instance.registered_model,
        f"{LABEL}.mlflow_version": str(instance.number),
        f"{LABEL}.run_id": instance.run_id or "",
        f"{LABEL}.git_commit": git_commit,
        f"{LABEL}.notebook": instance.tags.get(lineage.NOTEBOOK_PATH, ""),
        f"{LABEL}.uri": instance.uri,
        f"{LABEL}.tracking_uri": settings.tracking_uri,
        f"{images.LABEL_PREFIX}.runtime": runtime_tag,
        f"{images.LABEL_PREFIX}.mlflow": mlflow.__version__,
    }
    return {key: value for key, value in labels.items() if value}


def package_model(
    ref: str,
    settings: Settings,
    *,
    registry: Registry | None = None,
    client: Any = None,
    progress: Progress = lambda _: None,
) -> PackagedModel:
    """Build the serving image of the model instance ``ref``.

    Raises:
        InvalidModelName, ModelNotFound: bad or unknown reference.
        DockerError, ImageBuildFailed, WheelhouseError: the image cannot be built.
    """
    from workbench.registry import Registry

    started = time.monotonic()
    registry = registry or Registry(settings)
    instance = registry.resolve(ref)
    client = client or _docker.get_client()
    runtime = images.ensure("serving", settings, client=client, progress=progress)
    runtime_tag = images.image_kind("serving").tag
    tag = image_tag(instance)
    with tempfile.TemporaryDirectory(prefix="workbench-model-context-") as tmp:
        context = Path(tmp)
        model_dir = _download(instance, settings, context / "model", progress)
        model_bytes = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
        requirements = _requirements(model_dir)
        runtime_packages = images.installed_packages(runtime)
        unmet = unmet_requirements(requirements, runtime_packages)
        if unmet:
            progress(f"the runtime lacks {', '.join(unmet)}: adding an environment layer")
            _environment_wheels(unmet, runtime_packages,
                                (runtime.labels or {}).get(images.PYTHON_LABEL, ""),
                                context / "env", progress)
        spec = ModelImageSpec(
            runtime_image=runtime_tag,
            labels=lineage_labels(instance, settings, runtime_tag),
            metadata=_metadata(instance),
            environment=bool(unmet),
        )
        (context / "Dockerfile").write_text(render_model_dockerfile(spec), encoding="utf-8")
        progress(f"building {tag} from {instance.label} ({model_bytes / 1e6:.1f} MB of model files)")
        image = _docker.build_image(client, context, tag, network_mode=None, progress=progress)
    added = int(image.attrs.get("Size", 0)) - int(runtime.attrs.get("Size", 0))
    packaged = PackagedModel(tag, image.id, instance.label, model_bytes, added, tuple(unmet),
                             time.monotonic() - started)
    progress(f"packaged {packaged.model} as {packaged.tag} in {packaged.seconds:.1f} s "
             f"(+{added / 1e6:.1f} MB on {runtime_tag}); run it with: docker run --rm "
             f"-p 127.0.0.1:8080:8080 {packaged.tag}")
    return packaged


def _download(instance: Instance, settings: Settings, target: Path, progress: Progress) -> Path:
    import mlflow

    progress(f"downloading {instance.uri} from {settings.tracking_uri}")
    staging = target.parent / "download"
    staging.mkdir()
    # A models:/ URI resolves through the registry URI, which follows the tracking URI only
    # when that is set globally (as predict and serve do).
    mlflow.set_tracking_uri(settings.tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=instance.uri, dst_path=str(staging)))
    if not (local / "MLmodel").is_file():
        found = next(local.rglob("MLmodel"), None)
        local = found.parent if found else local
    shutil.move(str(local), target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _requirements(model_dir: Path) -> list[str]:
    path = model_dir / "requirements.txt"
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def _environment_wheels(unmet: list[str], runtime: Mapping[str, str], python_version: str,
                        target: Path, progress: Progress) -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    changing = {canonicalize_name(Requirement(r).name) for r in unmet}
    # Everything the model does not ask to change stays at the runtime's version.
    pins = {name: version for name, version in runtime.items() if name not in changing}
    house = wheelhouse.resolve(unmet, python_version, pins=pins, progress=progress)
    target.mkdir()
    for wheel in house.wheels:
        shutil.copy2(wheel, target / wheel.name)
    shutil.copy(house.path / wheelhouse.REQUIREMENTS_FILE, target / wheelhouse.REQUIREMENTS_FILE)


def _metadata(instance: Instance) -> dict[str, object]:
    return {
        "full_name": instance.full_name,
        "instance": instance.registered_model if instance.full_name else None,
        "version": instance.model_version,
        "data_date": instance.data_date,
        "registered_model": instance.registered_model,
        "mlflow_version": instance.number,
        "run_id": instance.run_id,
        "source": instance.uri,
    }
