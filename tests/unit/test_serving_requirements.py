"""The serving runtime installs the package without its dependencies, from SERVING_REQUIREMENTS:
every distribution the serving side imports must be in that list or required by one in it.

A missing one (pydantic-settings once) shows only as a model image that restarts forever."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata

from workbench.packaging.wheelhouse import SERVING_REQUIREMENTS

_SERVING_MODULES = ("workbench.cli", "workbench.serving.server", "workbench.serving.app",
                    "workbench.serving.model", "workbench.store.__main__")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        # Only unconditional requirements: extras and markers need not hold in the image.
        todo += [_name(r) for r in requires if ";" not in r]
    return seen


def test_every_distribution_the_serving_side_imports_is_installed_in_the_runtime():
    code = (
        f"import sys, json; [__import__(m) for m in {list(_SERVING_MODULES)!r}];"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    top_level = json.loads(done.stdout)
    owners = metadata.packages_distributions()
    imported = {_name(d) for m in top_level for d in owners.get(m, ())}
    # Not needed: the package itself, and imports their importers guard (anyio tries sniffio).
    imported -= {"mlops-workbench", "setuptools", "pip", "sniffio"}
    # uvicorn[standard] and mlflow-skinny's own extras are what the Dockerfile installs.
    provided = _closure({_name(r) for r in SERVING_REQUIREMENTS} | {"uvicorn", "mlflow-skinny"})
    assert sorted(imported - provided) == []
