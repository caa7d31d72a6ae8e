"""``--follow``: watch an alias and swap its new instance in without dropping a request.

A thread polls the registry every ``poll_s`` seconds. When the alias points at another
version, that instance is loaded and warmed up on this thread while the old one keeps
serving, checked against the served signature, then handed to ``swap`` (an attribute
assignment between two batches). An instance that cannot take the requests the served one
takes is refused: the old one keeps serving and the log and ``/metrics`` say why. A registry
that does not answer is a warning, and serving goes on.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from workbench.serving.model import ServedModel

log = logging.getLogger("workbench.serving")


class AliasFollower:
    """Polls ``ref`` and calls ``swap`` with each new instance that fits.

    Args:
        ref: an ``instance@alias`` reference.
        settings: where the registry is.
        current: the served model (its ``mlflow_version`` is the starting point).
        swap: called on this thread with the new, warmed-up model.
        refused: called with a short reason when a new instance is not swapped in.
        poll_s: seconds between two looks at the registry.
        what: names the role in log lines (``model``, ``shadow``).
    """

    def __init__(self, ref: str, settings: Any, current: ServedModel,
                 swap: Callable[[ServedModel], None], refused: Callable[[str], None],
                 *, poll_s: float, what: str = "model") -> None:
        self.ref = ref
        self.settings = settings
        self.current = current
        self._swap = swap
        self._refused = refused
        self.poll_s = poll_s
        self.what = what
        self._refused_versions: set[int] = set()
        self._registry_down = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll_once()

    def poll_once(self) -> bool:
        """Look once; True when a new instance was swapped in."""
        from workbench.errors import WorkbenchError
        from workbench.registry import Registry

        try:
            instance = Registry(self.settings).resolve(self.ref)
        except WorkbenchError as exc:
            if not self._registry_down:
                log.warning("--follow %s: the registry did not answer (%s); still serving %s",
                            self.ref, str(exc).splitlines()[0][:200], self.current.name)
            self._registry_down = True
            return False
        self._registry_down = False
        if instance.number == self.current.metadata.mlflow_version or \
                instance.number in self._refused_versions:
            return False
        log.warning("--follow %s: now %s; loading it beside %s", self.ref, instance.label,
                    self.current.name)
        try:
            new = ServedModel.from_instance(instance, self.settings)
            new.warm_up()
        except Exception as exc:
            first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
            return self._refuse(instance.number, "load", f"{instance.label} failed to load "
                                f"({exc.__class__.__name__}: {first_line})")
        why = self.current.incompatibility(new)
        if why is not None:
            return self._refuse(instance.number, "signature",
                                f"{instance.label} does not take the requests {self.current.name} "
                                f"takes ({why})")
        old, self.current = self.current, new
        self._swap(new)
        log.warning("--follow %s: %s %s swapped in for %s", self.ref, self.what, new.name, old.name)
        return True

    def _refuse(self, number: int, reason: str, message: str) -> bool:
        self._refused_versions.add(number)
        self._refused(reason)
        log.error("--follow %s: not swapped in: %s; still serving %s", self.ref, message,
                  self.current.name)
        return False
