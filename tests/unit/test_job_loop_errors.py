"""What nbclient's event loop reports about abandoned tasks goes to the job's kernel log."""
from __future__ import annotations

import asyncio

from jupyter_core.utils import ensure_event_loop

from workbench.jobs.kernel import _LoopErrorsToLog


class KernelGone(RuntimeError):
    pass


def _abandon_a_failing_task(loop: asyncio.AbstractEventLoop) -> None:
    async def cell() -> None:
        raise KernelGone("Kernel died")

    task = loop.create_task(cell())
    loop.run_until_complete(asyncio.sleep(0.01))  # the task fails; nobody awaits it
    assert task.done()
    del task


def test_an_abandoned_task_error_is_written_to_the_log_not_stderr(tmp_path, capsys):
    log = tmp_path / "job.log"
    with _LoopErrorsToLog(log):
        _abandon_a_failing_task(ensure_event_loop())
    text = log.read_text()
    assert "KernelGone: Kernel died" in text and "Traceback" in text
    assert "KernelGone" not in capsys.readouterr().err


def test_the_previous_handler_is_back_afterwards(tmp_path):
    loop = ensure_event_loop()
    seen: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        with _LoopErrorsToLog(tmp_path / "job.log"):
            pass
        _abandon_a_failing_task(loop)
        import gc

        gc.collect()
        assert seen and isinstance(seen[0].get("exception"), KernelGone)
        assert not (tmp_path / "job.log").exists()
    finally:
        loop.set_exception_handler(None)


def test_after_an_interrupt_the_handler_stays_for_the_task_collected_later(tmp_path, capsys):
    """The propagating exception holds the abandoned task; it is collected after the block."""
    import gc

    loop = ensure_event_loop()
    log = tmp_path / "job.log"
    held: list[asyncio.Task] = []

    async def cell() -> None:
        raise KernelGone("Kernel died")

    try:
        try:
            with _LoopErrorsToLog(log):
                held.append(loop.create_task(cell()))
                loop.run_until_complete(asyncio.sleep(0.01))
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        held.clear()  # the exception is handled: now the task goes
        gc.collect()
        assert "KernelGone: Kernel died" in log.read_text()
        assert "KernelGone" not in capsys.readouterr().err
    finally:
        loop.set_exception_handler(None)
