"""Progress lines: the one-line messages long work sends while it runs.

Every long operation (a job, an image build, a drift check, the platform's start) takes an
optional ``progress`` callable and calls it with a line now and then; the faces decide where
the lines go (the CLI prints them, the magics and widgets show them, jobs log them).
"""
from __future__ import annotations

from collections.abc import Callable

#: Called with one line of progress (no newline).
Progress = Callable[[str], None]

__all__ = ["Progress"]
