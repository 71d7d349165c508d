"""The one progress bar of massface: ``tqdm`` (installed with pytorch-metric-learning) on stderr.

On a terminal the bar redraws in place; when stderr is not a terminal (a log file, CI) it writes one line per
update, at most every ``mininterval_log`` seconds, so a log shows progress without carriage-return noise.
Every long loop takes ``progress: bool`` and, when it is true, wraps its work in :func:`progress_bar`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


class _LineStream:
    """A file-like view of ``stream`` for tqdm when it is not a terminal: every redraw becomes one line."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").rstrip("\n")
        if line.strip():
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", enabled: bool = True, mininterval_log: float = 30.0) -> tqdm:
    """A ``tqdm`` bar (use as an iterable wrapper or call ``.update(n)``; close it or use ``with``).

    ``enabled=False`` gives a disabled bar with the same interface, so callers never branch on it.
    """
    stream = sys.stderr
    interactive = bool(getattr(stream, "isatty", lambda: False)())
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled,
                file=stream if interactive else _LineStream(stream),
                dynamic_ncols=interactive, leave=True,
                mininterval=0.1 if interactive else mininterval_log,
                ascii=not interactive)
