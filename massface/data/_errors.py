"""Errors and the ``on_error`` policy shared by massface's dataset readers.

Every reader reports bad input as a :class:`DataFormatError` that names the file, the record (index,
key or line) and what was expected. With ``on_error="skip"`` a reader drops the record instead, adds a
:class:`SkippedRecord` to its report and emits one summary warning; it never substitutes a wrong label.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Union

PathLike = Union[str, "os.PathLike[str]"]
OnError = Literal["raise", "skip"]
_ON_ERROR_CHOICES = ("raise", "skip")


class DataFormatError(ValueError):
    """A data file is malformed: ``path`` and ``record`` say where, the message says what is allowed."""

    def __init__(self, path: PathLike, message: str, record: object = None) -> None:
        self.path = os.fspath(path)
        self.record = str(record) if record is not None else None
        self.reason = message
        where = self.path if record is None else f"{self.path}: {record}"
        super().__init__(f"{where}: {message}")


class LazyText:
    """A record description formatted only when an error message needs it (keeps hot read paths cheap)."""

    __slots__ = ("_fn", "_args")

    def __init__(self, fn: Callable[..., str], *args: Any) -> None:
        self._fn, self._args = fn, args

    def __str__(self) -> str:
        return self._fn(*self._args)

    __repr__ = __str__


@dataclass(frozen=True)
class SkippedRecord:
    """One record that a reader skipped under ``on_error="skip"``."""

    path: str
    record: object
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.record}: {self.reason}"


@dataclass
class SkipReport:
    """The records skipped by one reader (per process: DataLoader workers keep their own report)."""

    records: list[SkippedRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def add(self, error: DataFormatError) -> None:
        self.records.append(SkippedRecord(error.path, error.record, error.reason))

    def warn(self, what: str, stacklevel: int = 3) -> None:
        """Emit one warning summarising the skipped records (no-op when nothing was skipped)."""
        if not self.records:
            return
        shown = "; ".join(str(r) for r in self.records[:3])
        more = f" (and {len(self.records) - 3} more)" if len(self.records) > 3 else ""
        warnings.warn(f"{what}: skipped {len(self.records)} bad record(s): {shown}{more}", stacklevel=stacklevel)


def raise_or_record(error: DataFormatError, on_error: OnError, report: SkipReport) -> None:
    """The ``on_error`` policy in one place: raise ``error`` (``"raise"``) or add it to ``report`` (``"skip"``)."""
    if on_error == "raise":
        raise error
    report.add(error)


def check_on_error(on_error: str) -> OnError:
    """Validate an ``on_error`` argument (``"raise"`` or ``"skip"``)."""
    if on_error not in _ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {_ON_ERROR_CHOICES}, got {on_error!r}")
    return on_error  # type: ignore[return-value]
