"""The one progress bar of massface: ``tqdm`` (installed with pytorch-metric-learning) on stderr.

On a terminal the bar redraws in place; when stderr is not a terminal (a log file, CI) it writes one line per
update, at most every ``mininterval_log`` seconds, so a log shows progress without carriage-return noise.
Every long loop takes ``progress: bool`` and, when it is true, wraps its work in :func:`progress_bar`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, Optional

from tqdm.auto import tqdm

__all__ = ["progress_bar", "print_progress"]


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


def progress_bar(iterable: Optional[Iterable[Any]] = None, *, total: Optional[int] = None, desc: str = "",
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


def print_progress(label: str, done: int, total: int, t0: float, unit: str = "img") -> None:
    """Transitional: the hand-written in-place line the long loops used before :func:`progress_bar`; its
    callers are moving to :func:`progress_bar` (issue 13) and it goes when the last one has."""
    import time

    if done < total and not sys.stderr.isatty():
        return
    rate = done / max(time.perf_counter() - t0, 1e-9)
    eta = (total - done) / rate if rate > 0 else 0.0
    fill = int(30 * done / max(total, 1))
    print(f"\r{label} [{'#' * fill}{'.' * (30 - fill)}] {done}/{total} ({rate:.0f} {unit}/s, ETA {eta:.0f} s)",
          end="" if done < total else "\n", file=sys.stderr, flush=True)
