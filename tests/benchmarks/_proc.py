"""CPU accounting shared by the benchmark scripts (run by hand; not collected by pytest)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from workbench.platforms.embedded import group_members


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cpu_ticks(pgid: int) -> int:
    """User + system clock ticks used so far by the live members of process group ``pgid``."""
    total = 0
    for member in group_members(pgid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def wait_until_quiet(pgids: list[int], limit_s: float = 30.0, busy: float = 0.15) -> None:
    """Wait (up to ``limit_s``) until these process groups together use under ``busy`` of a CPU.

    Just after start-up the tracking server (and its job runner) and a fresh model server keep
    a CPU busy for a while; measuring during that would charge it to whatever runs first.
    """
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = sum(cpu_ticks(p) for p in pgids)
        time.sleep(1.0)
        share = (sum(cpu_ticks(p) for p in pgids) - before) / hz
        if share < busy:
            return
        say(f"waiting for the servers to settle (they use {share:.0%} of a CPU)")
