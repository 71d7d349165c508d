"""Reading an insightface ``IJB_release`` set: ``<root>/meta`` lists (tid/mid, 5 points + faceness, template
pairs, 1:N galleries and probes) with every line checked; nothing here decodes an image."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from massface.data._errors import DataFormatError

__all__ = ["IJBMeta", "read_ijb"]

_MAX_ID = 2**63 - 1


@dataclass
class IJBMeta:
    """Metadata of an insightface ``IJB_release`` set (``<root>/meta``, ``<root>/loose_crop``)."""

    root: Path
    name: str
    image_names: list[str]
    template_ids: np.ndarray
    media_ids: np.ndarray
    landmarks: np.ndarray  # (N, 5, 2) float32: left eye, right eye, nose, left mouth, right mouth
    scores: np.ndarray  # (N,) float32 faceness
    pair_t1: np.ndarray
    pair_t2: np.ndarray
    pair_labels: np.ndarray
    galleries: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    probes: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def num_images(self) -> int:
        return len(self.image_names)


@dataclass
class _Table:
    """The non-blank lines of an IJB list split into fields, with the 1-based line number of each row."""

    path: Path
    rows: list[list[str]]
    lines: np.ndarray

    def where(self, i: int) -> str:
        return f"line {int(self.lines[i])}"


def _read_columns(path: Path, n_cols: int, sep: str | None = None, skip_header: bool = False) -> _Table:
    """Rows of at least ``n_cols`` fields of a regular, strict-UTF-8 list file (DataFormatError naming the line)."""
    from massface.data._guard import read_lines

    if not os.path.lexists(path):
        raise FileNotFoundError(f"IJB file not found: {path}")
    lines = read_lines(path)  # regular files only (a FIFO is an error, not a hang); UTF-8 errors name the line
    first = 1 if skip_header else 0
    rows: list[list[str]] = []
    numbers: list[int] = []
    for n in range(first, len(lines)):
        line = lines[n]
        if not line.strip():
            continue
        r = line.split(sep) if sep else line.split()
        if len(r) < n_cols:
            raise DataFormatError(path, f"has {len(r)} fields, expected {n_cols}: {' '.join(r)[:120]!r}",
                                  f"line {n + 1}")
        rows.append(r)
        numbers.append(n + 1)
    return _Table(path, rows, np.asarray(numbers, dtype=np.int64))


def _int_column(table: _Table, col: int) -> np.ndarray:
    """Column ``col`` as int64 ids, each a non-negative integer below 2**63 (DataFormatError naming the line)."""
    from massface.data._guard import parse_int

    values = [r[col] for r in table.rows]
    try:
        out = np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):  # find and name the culprit
        for i, v in enumerate(values):
            parse_int(v, table.path, table.where(i), f"column {col + 1}", 0, _MAX_ID)
        raise DataFormatError(table.path, f"column {col + 1} must hold integers") from None
    bad = np.flatnonzero(out < 0)
    if bad.size:
        raise DataFormatError(table.path, f"column {col + 1} holds {out[bad[0]]}; ids must be non-negative "
                                          "integers", table.where(int(bad[0])))
    return out


def _float_columns(table: _Table, cols: slice) -> np.ndarray:
    """Columns ``cols`` as finite float32 (DataFormatError naming the line of a non-number or inf / nan)."""
    try:
        out = np.array([r[cols] for r in table.rows], dtype=np.float32)
    except ValueError:
        for i, r in enumerate(table.rows):
            try:
                [float(v) for v in r[cols]]
            except ValueError:
                raise DataFormatError(table.path, f"landmark and score columns must be numbers, got "
                                                  f"{' '.join(r[cols])[:120]!r}", table.where(i)) from None
        raise DataFormatError(table.path, "landmark and score columns must be numbers") from None
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1)) if out.size else np.zeros(0, dtype=np.int64)
    if bad.size:
        raise DataFormatError(table.path, "landmark and score columns must be finite numbers (inf, nan or a value "
                                          "beyond float32 found)", table.where(int(bad[0])))
    return out


def _find_meta(meta: Path, suffix: str, prefix: str) -> Path:
    exact = meta / f"{prefix}{suffix}"
    if exact.is_file():
        return exact
    found = sorted(meta.glob(f"*{suffix}"))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(f"{meta}: expected {exact.name} (found {[p.name for p in found]})")


def read_ijb(root: str | Path, name: str | None = None, read_1n: bool = True) -> IJBMeta:
    """Read the IJB release metadata under ``root`` (``root/meta/<name>_face_tid_mid.txt`` etc.).

    ``name`` is ``"ijbb"`` / ``"ijbc"`` (default: the directory name, lower-cased). Checks that the
    tid/mid and landmark files agree line by line, that pair labels are 0/1, and reads the 1:N gallery
    (``*_1N_gallery_G1.csv``/``G2``, IJB-B ``S1``/``S2``) and probe CSVs when present.

    Every list must be a regular, strict-UTF-8 text file; ids are non-negative integers below 2**63, landmarks
    and scores finite numbers, and image names relative paths that stay inside ``loose_crop/`` (no absolute
    path, no ``..`` climbing out). Bad input raises :class:`~massface.data.DataFormatError` (a ValueError) naming
    the file and line.
    """
    root = Path(root)
    meta = root / "meta"
    if not meta.is_dir():
        raise FileNotFoundError(f"{root}: no meta/ directory (expected the insightface IJB_release layout)")
    prefix = (name or root.name).lower()
    p_tid = _find_meta(meta, "_face_tid_mid.txt", prefix)
    p_lmk = _find_meta(meta, "_name_5pts_score.txt", prefix)
    p_pair = _find_meta(meta, "_template_pair_label.txt", prefix)
    from massface.data._guard import relpath_problem

    tid = _read_columns(p_tid, 3)
    lmk = _read_columns(p_lmk, 12)
    if len(tid.rows) != len(lmk.rows):
        raise DataFormatError(
            p_tid, f"has {len(tid.rows)} lines but {p_lmk.name} has {len(lmk.rows)}; they must list the "
            f"same images in the same order"
        )
    names = [r[0] for r in tid.rows]
    for i, name in enumerate(names):
        problem = relpath_problem(name)
        if problem is not None:
            raise DataFormatError(p_tid, f"image name {name[:80]!r}: {problem}; refused", tid.where(i))
    for i, r in enumerate(lmk.rows):
        if r[0] != names[i]:
            raise DataFormatError(p_lmk, f"lists {r[0][:80]!r} but {p_tid.name} {tid.where(i)} lists "
                                         f"{names[i][:80]!r}", lmk.where(i))
    nums = _float_columns(lmk, slice(1, 12))
    pair = _read_columns(p_pair, 3)
    labels = _int_column(pair, 2)
    bad = np.flatnonzero(~np.isin(labels, (0, 1)))
    if bad.size:
        raise DataFormatError(p_pair, f"labels (3rd column) must be 0 or 1, got {labels[bad[0]]}",
                              pair.where(int(bad[0])))
    out = IJBMeta(
        root=root,
        name=prefix,
        image_names=names,
        template_ids=_int_column(tid, 1),
        media_ids=_int_column(tid, 2),
        landmarks=nums[:, :10].reshape(-1, 5, 2),
        scores=nums[:, 10].copy(),
        pair_t1=_int_column(pair, 0),
        pair_t2=_int_column(pair, 1),
        pair_labels=labels,
    )
    if read_1n:
        for g in ("G1", "G2", "S1", "S2"):
            hits = sorted(meta.glob(f"*_1N_gallery_{g}.csv"))
            if hits:
                out.galleries[g] = _read_1n_csv(hits[0])
        probe = sorted(meta.glob("*_1N_probe_mixed.csv"))
        if probe:
            out.probes = _read_1n_csv(probe[0])
    return out


def _read_1n_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(template_ids, subject_ids)`` of a 1:N CSV (header row; TEMPLATE_ID, SUBJECT_ID first)."""
    table = _read_columns(path, 2, sep=",", skip_header=True)
    t = _int_column(table, 0)
    s = _int_column(table, 1)
    tu, first = np.unique(t, return_index=True)
    su = s[first]
    t_sorted = np.argsort(t, kind="stable")
    grp = np.searchsorted(tu, t[t_sorted])
    if np.any(s[t_sorted] != su[grp]):
        raise DataFormatError(path, "a template is listed with more than one SUBJECT_ID")
    return tu, su
