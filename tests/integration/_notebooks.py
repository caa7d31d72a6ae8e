"""Write small job notebooks for tests: a tagged ``parameters`` cell, then code cells."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook


def job_notebook(path: Path, parameters: str, *cells: str) -> Path:
    first = new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[first, *map(new_code_cell, cells)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    path.chmod(0o644)  # container jobs read it as another user
    return path
