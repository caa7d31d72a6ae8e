"""The serving side runs in lean images: it must not pull in the notebook side."""
from __future__ import annotations

import subprocess
import sys


def test_the_server_imports_no_notebook_or_cli_libraries():
    code = (
        "import sys, workbench.serving.app, workbench.serving.server,"
        " workbench.store, workbench.store.__main__;"
        "print(sorted(m for m in ('IPython', 'ipywidgets', 'click', 'papermill', 'jupyterlab') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
