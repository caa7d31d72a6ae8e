"""The magics as the workbench's kernel spec preloads them (``--ext=workbench.preload``).

Loaded under this name rather than ``workbench``, IPython does not count ``workbench`` as
loaded: a notebook's own ``%load_ext workbench`` (there so it runs in any kernel) then finds
the magics registered and says nothing, instead of "The workbench extension is already
loaded".
"""
from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    from workbench.magics import register

    register(ipython)
