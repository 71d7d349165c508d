"""A one-line progress bar on stderr, shared by the long loops (embedding a test set or a training set)."""

from __future__ import annotations

import sys
import time

__all__ = ["print_progress"]


def print_progress(label: str, done: int, total: int, t0: float, unit: str = "img") -> None:
    """Redraw ``label [####....] done/total (rate unit/s, ETA)`` in place on a terminal; ends the line when
    done. When stderr is not a terminal (a log file) only the final line is written."""
    if done < total and not sys.stderr.isatty():
        return
    elapsed = max(time.perf_counter() - t0, 1e-9)
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 else 0.0
    width = 30
    fill = int(width * done / max(total, 1))
    print(f"\r{label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total} ({rate:.0f} {unit}/s, ETA {eta:.0f} s)",
          end="" if done < total else "\n", file=sys.stderr, flush=True)
