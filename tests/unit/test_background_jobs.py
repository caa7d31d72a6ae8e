"""The background job manager's reading of the CLI's output, without a process."""
from __future__ import annotations

import io
import time
from pathlib import Path

from workbench.jobs.background import LOG_LINES, BackgroundJob, JobManager


def _job() -> BackgroundJob:
    return BackgroundJob(id="abc", notebook=Path("nb.ipynb"), parameters={}, executor="local",
                         timeout=0.0, image=None, started_at=time.time())


def test_progress_bars_update_the_progress_and_stay_out_of_the_log(tmp_path):
    manager = JobManager.__new__(JobManager)
    job = _job()
    stream = io.BufferedReader(io.BytesIO(
        b"job nb.ipynb -> run 0123abcd (local); output: /tmp/out.ipynb\n"
        b"Executing:   0%|          | 0/3 [00:00<?, ?cell/s]\r"
        b"Executing:  33%|###3      | 1/3 [00:01<00:02, 1.0cell/s]\r"
        b"Executing: 100%|##########| 3/3 [00:02<00:00, 1.2cell/s]\n"
        b"error: job nb.ipynb failed: cell [2] raised ValueError: x"))
    manager._read_log(job, stream)
    assert job.run_id == "0123abcd" and job.output_notebook == "/tmp/out.ipynb"
    assert job.status == "RUNNING"
    assert (job.cells_done, job.cells_total) == (3, 3)
    assert list(job.log) == ["job nb.ipynb -> run 0123abcd (local); output: /tmp/out.ipynb",
                             "error: job nb.ipynb failed: cell [2] raised ValueError: x"]


def test_the_log_is_bounded_and_read_from_a_line_number():
    manager = JobManager.__new__(JobManager)
    job = _job()
    for n in range(LOG_LINES + 5):
        manager._line(job, f"line {n}")
    data = job.as_dict(log_from=LOG_LINES + 3)
    assert data["log_lines"] == LOG_LINES + 5
    assert data["log"] == [f"line {LOG_LINES + 3}", f"line {LOG_LINES + 4}"]
    assert job.as_dict(log_from=0)["log_from"] == 5  # the first five are gone
