"""Files the workbench ships beside the package: the Jupyter configuration (``extension/``),
the job notebooks (``notebooks/``) and the images' Dockerfiles (``images/``). In a source
checkout they sit next to the package; an installed wheel puts them under
``<prefix>/share/mlops-workbench``."""
from __future__ import annotations

import sys
from pathlib import Path

from workbench.errors import WorkbenchError

_CHECKOUT = Path(__file__).resolve().parent.parent
_INSTALLED = Path(sys.prefix) / "share" / "mlops-workbench"


def shipped(folder: str) -> Path:
    """The shipped folder ``extension``, ``notebooks`` or ``images``.

    Raises:
        WorkbenchError: neither location has it (a broken install).
    """
    for base in (_CHECKOUT, _INSTALLED):
        if (base / folder).is_dir():
            return base / folder
    raise WorkbenchError(
        f"cannot find the workbench's {folder}/ folder next to the package or in {_INSTALLED}; "
        "reinstall mlops-workbench"
    )


def notebook(name: str, project_root: Path | None = None) -> Path:
    """A job notebook: the project's own ``notebooks/<name>`` wins over the shipped one."""
    if project_root is not None and (project_root / "notebooks" / name).is_file():
        return project_root / "notebooks" / name
    return shipped("notebooks") / name
