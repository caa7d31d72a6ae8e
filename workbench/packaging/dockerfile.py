"""Model image Dockerfiles, rendered by a pure function (testable without Docker).

A model image is the shared serving runtime plus one layer: the model files. Only when the
model's requirements are not met by the runtime does an environment stage install them (from
wheels the host resolved) and the image copy the runtime's environment back, changed.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

SERVE_PORT = 8080
MODEL_DIR = "/opt/model"
VENV = "/opt/workbench"
METADATA_ENV = "WORKBENCH_SERVE_METADATA"
# Python is in every runtime image; curl is not in python:3.11-slim.
_HEALTHCHECK = (
    "import sys, urllib.request; "
    f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{SERVE_PORT}/health', "
    "timeout=2).status == 200 else 1)"
)


@dataclass(frozen=True)
class ModelImageSpec:
    """What a model image is made of.

    Attributes:
        runtime_image: the serving runtime to build FROM (``mlops-workbench/serving:<v>``).
        labels: lineage labels (full name, MLflow version, run id, git commit, ...).
        metadata: what the server's ``/metadata`` says (see ``serving.model.ModelMetadata``).
        environment: build an environment stage from ``env/`` in the context.
    """

    runtime_image: str
    labels: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, object] = field(default_factory=dict)
    environment: bool = False


def render_model_dockerfile(spec: ModelImageSpec) -> str:
    """The Dockerfile of a model image; its context holds ``model/`` (and ``env/``)."""
    lines = ["# Rendered by mlops-workbench (workbench package): a model on the serving runtime."]
    if spec.environment:
        lines += [
            f"FROM {spec.runtime_image} AS environment",
            "USER root",
            "COPY env/ /tmp/env/",
            f"RUN {VENV}/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \\",
            "        --find-links /tmp/env --requirement /tmp/env/requirements.txt",
            "",
        ]
    lines.append(f"FROM {spec.runtime_image}")
    if spec.environment:
        lines.append(f"COPY --from=environment {VENV} {VENV}")
    if spec.labels:
        pairs = [f"{key}={_quote(value)}" for key, value in sorted(spec.labels.items())]
        lines.append("LABEL " + " \\\n      ".join(pairs))
    metadata = json.dumps(dict(spec.metadata), sort_keys=True, separators=(",", ":"))
    lines += [
        f"ENV {METADATA_ENV}={_quote(metadata)}",
        f"COPY model/ {MODEL_DIR}/",
        f"EXPOSE {SERVE_PORT}",
        "HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\",
        f"    CMD {json.dumps(['python', '-c', _HEALTHCHECK])}",
        # USER comes from the runtime image: the non-root `workbench` user.
        "CMD " + json.dumps(["workbench", "serve", MODEL_DIR, "--host", "0.0.0.0",
                             "--port", str(SERVE_PORT)]),
    ]
    return "\n".join(lines) + "\n"


def _quote(value: object) -> str:
    """A Dockerfile double-quoted word: JSON escaping for quotes and backslashes, ``$``
    escaped so the builder does not substitute variables, one line."""
    text = " ".join(str(value).splitlines())
    return json.dumps(text, ensure_ascii=False).replace("$", "\\$")
