"""Stop a server a test started in its own session, by its pid."""
from __future__ import annotations

import os
import signal
import subprocess


def stop_session(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM ``process``; after ``grace`` seconds, SIGKILL its whole session (kernels too)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
