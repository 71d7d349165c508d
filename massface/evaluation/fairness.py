"""Demographic fairness of pair verification: per-group accuracy, SER, one global threshold, RFW / BFW readers.

:func:`evaluate_groups` splits the pairs of a verification set by a per-pair group label (race, gender, ...) and
reports, for every group ``g``:

* the 10-fold accuracy ``acc_g`` by the very protocol of :func:`~massface.evaluation.verification.evaluate_pairs`
  (each group's pairs in their given order, contiguous folds, per-fold threshold) with its fold std — the full
  per-group :class:`~massface.evaluation.verification.PairEvaluation` is kept;
* its TPR and FPR at **one global threshold** ``τ`` chosen on all pairs so that the false-match rate of the
  impostor pairs is at most ``far`` (:func:`threshold_at_fmr`). This is the point of BFW (Robinson et al., 2020):
  a single operating point gives unequal error rates across groups.

Across groups: the mean and the sample standard deviation (``ddof=1``, as TFace's ``verification_rfw.py``) of the
``acc_g``, and the skewed error ratio ``SER = max_g(1 - acc_g) / min_g(1 - acc_g)``; when the smallest error is 0
the SER is ``inf`` (``1.0`` when every group is error-free: nothing is skewed).

Distances are massface's: squared L2 of L2-normalised embeddings (``[0, 4]``), a pair accepted iff ``d < τ``.

Group labels are one per pair, any hashable value; ``None`` is the marker of a pair that belongs to no group
(:data:`CROSS_GROUP`): such pairs take part in the global threshold (it is chosen on *all* pairs given) but in no
per-group row. :func:`pair_groups_from_images` derives pair labels from per-image labels by that rule: the pair is
in group ``g`` when both images are in ``g``, otherwise it is a cross-group pair (``None``).

Readers (both return a :class:`GroupedPairs`: the two image paths of each pair, ``issame`` and the pair groups):

* :func:`read_rfw_pairs` — RFW (Racial Faces in-the-Wild, Wang et al. 2019): ``<root>/txts/<Race>/<Race>_pairs.txt``
  for Race in African, Asian, Caucasian, Indian; images ``<root>/data/<Race>/<name>/<name>_%04d.jpg``.
* :func:`read_bfw_pairs` — BFW (Balanced Faces in the Wild): its CSV datatable (``fold, p1, p2, label, id1, id2,
  att1, att2, ...``; header in any column order).

What was verified about the formats (public code, read not copied): the RFW pair files have **no header line**
and are tab-separated ``name n1 n2`` (genuine) / ``name1 n1 name2 n2`` (impostor) lines — bob.bio.face's
``database/rfw.py`` reads every line as a pair and builds ``<Race>/<name>/<name>_000<n>.jpg`` under
``test/data``; a fairness study's loader reads the same files with ``header=None`` and folds of 600 lines.
TFace evaluates RFW from per-race ``.bin`` files (``African_test.bin`` ...) and quotes the mean and the ``ddof=1``
std of the four race accuracies. BFW's datatable columns are those of ``facerec-bias-bfw``'s
``0_prepare_datatable`` notebook: ``fold, p1, p2, label, id1, id2, att1, att2, <model scores>, a1, a2, g1, g2,
e1, e2`` with paths like ``asian_females/n000009/0010_01.jpg`` and ``att`` the first path component.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from massface.evaluation.verification import (
    PairEvaluation,
    ThresholdMode,
    _check_distance_range,
    _labels,
    evaluate_distances,
    pair_distances,
)

__all__ = [
    "CROSS_GROUP",
    "RFW_RACES",
    "GroupEvaluation",
    "GroupedPairs",
    "threshold_at_fmr",
    "evaluate_groups",
    "evaluate_group_distances",
    "pair_groups_from_images",
    "read_pair_groups",
    "read_rfw_pairs",
    "read_bfw_pairs",
    "format_group_table",
]

#: The pair-group marker of a pair outside every group (a cross-group pair): excluded from the per-group rows.
CROSS_GROUP = None
#: RFW's four race subsets, in TFace's order.
RFW_RACES: tuple[str, ...] = ("African", "Asian", "Caucasian", "Indian")

_FMR_SLACK = 1e-9  # floor(fmr · n) is taken with this slack so that 0.29 · 100 counts as 29, not 28


# --------------------------------------------------------------------------------------------------
# the one FMR threshold rule (shared with massface.evaluation.quality)


def threshold_at_fmr(distances: Any, issame: Any, fmr: float) -> float:
    """The largest threshold ``τ`` whose false-match rate ``#{impostor d < τ} / n_impostor`` is ``<= fmr``.

    With the impostor distances sorted ascending, ``τ = neg[m]``, ``m = floor(fmr · n_impostor)`` (``+inf`` when
    ``m = n_impostor``, i.e. ``fmr = 1``). Tie rule: the acceptance is strict (``d < τ``), so impostors tied at
    ``τ`` are all rejected and ties can only bring the achieved FMR *below* ``fmr``; any larger threshold would
    accept ``m + 1 > fmr · n`` impostors. This is the exact-mode rule of ``evaluate_pairs``' ``VAL@FAR``, applied
    to all pairs at once. ``O(N log N)``.

    Raises ``ValueError`` when ``fmr`` is outside ``(0, 1]`` or there is no impostor pair.
    """
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(issame, dtype=bool).ravel()
    if d.shape != y.shape:
        raise ValueError(f"distances ({d.size}) and issame ({y.size}) differ in length")
    if isinstance(fmr, bool) or not isinstance(fmr, numbers.Real) or not 0.0 < float(fmr) <= 1.0:
        raise ValueError(f"the target false-match rate must lie in (0, 1], got {fmr!r}")
    neg = np.sort(d[~y])
    if neg.size == 0:
        raise ValueError("a false-match-rate threshold needs impostor pairs; there are none")
    m = int(math.floor(float(fmr) * neg.size + _FMR_SLACK))
    return float(neg[m]) if m < neg.size else math.inf


# --------------------------------------------------------------------------------------------------
# group labels


def _check_label(label: Any, where: str) -> Hashable:
    if label is None:
        return None
    if isinstance(label, np.generic):  # numpy scalars (np.str_, np.int64, ...) become plain Python values
        label = label.item()
    try:
        hash(label)
    except TypeError:
        raise ValueError(f"{where}: group label {label!r} is not hashable") from None
    if isinstance(label, float) and math.isnan(label):
        raise ValueError(f"{where}: group label is NaN (NaN is not equal to itself and cannot name a group)")
    return label


def _as_labels(groups: Any, n: int | None, name: str = "groups") -> list[Hashable]:
    values = groups.tolist() if isinstance(groups, np.ndarray) else list(groups)
    if n is not None and len(values) != n:
        raise ValueError(f"{name} has {len(values)} labels but there are {n} pairs")
    return [_check_label(v, f"{name}[{i}]") for i, v in enumerate(values)]


def pair_groups_from_images(groups1: Sequence[Any], groups2: Sequence[Any]) -> list[Hashable]:
    """Pair groups from per-image groups: ``g`` when both images are in ``g``, else :data:`CROSS_GROUP` (``None``).

    An image labelled ``None`` makes its pair cross-group. ``O(N)``. ``ValueError`` for unequal lengths.
    """
    a, b = _as_labels(groups1, None, "groups1"), _as_labels(groups2, None, "groups2")
    if len(a) != len(b):
        raise ValueError(f"groups1 has {len(a)} labels, groups2 {len(b)}; one label per image of each pair")
    return [x if (x is not None and x == y) else CROSS_GROUP for x, y in zip(a, b)]


# --------------------------------------------------------------------------------------------------
# result


@dataclass(frozen=True)
class GroupEvaluation:
    """Per-group verification at one global threshold (see the module docstring for the definitions).

    Attributes:
        groups: the group labels, in order of first appearance (cross-group pairs excluded).
        per_group: label -> the group's :class:`PairEvaluation` (10-fold protocol on its own pairs).
        accuracy, accuracy_std: label -> ``acc_g`` and its fold population std (``PairEvaluation.std``).
        mean_accuracy, std_accuracy: over groups; ``std_accuracy`` uses ``ddof=1`` (TFace's RFW tool).
        ser: ``max_g(1 - acc_g) / min_g(1 - acc_g)``; ``inf`` when the smallest error is 0 (``1.0`` when all are).
        far: the target false-match rate of the global threshold.
        threshold: ``τ`` (:func:`threshold_at_fmr` on all pairs); a pair is accepted iff ``d < τ``.
        fmr_achieved: FMR of all impostor pairs at ``τ`` (``<= far``).
        tpr_at_threshold, fpr_at_threshold: label -> the group's TPR / FPR at ``τ``.
        num_pairs, num_genuine: label -> counts.
        num_excluded: pairs labelled :data:`CROSS_GROUP` (used for ``τ`` only).
        distances, issame, pair_groups: the per-pair inputs.
    """

    groups: tuple[Hashable, ...]
    per_group: dict[Hashable, PairEvaluation] = field(repr=False)
    accuracy: dict[Hashable, float]
    accuracy_std: dict[Hashable, float]
    mean_accuracy: float
    std_accuracy: float
    ser: float
    far: float
    threshold: float
    fmr_achieved: float
    tpr_at_threshold: dict[Hashable, float]
    fpr_at_threshold: dict[Hashable, float]
    num_pairs: dict[Hashable, int]
    num_genuine: dict[Hashable, int]
    num_excluded: int
    distances: np.ndarray = field(repr=False)
    issame: np.ndarray = field(repr=False)
    pair_groups: tuple[Hashable, ...] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable scalars and the group table (keys are ``str(label)``; an infinite SER or threshold
        is written as the string ``"inf"``, which strict JSON parsers accept)."""

        def num(x: float) -> float | str:
            return "inf" if math.isinf(x) else float(x)

        return {
            "groups": {
                str(g): {
                    "accuracy": self.accuracy[g],
                    "std": self.accuracy_std[g],
                    "tpr_at_threshold": self.tpr_at_threshold[g],
                    "fpr_at_threshold": self.fpr_at_threshold[g],
                    "num_pairs": self.num_pairs[g],
                    "num_same": self.num_genuine[g],
                    "fold_accuracies": [float(a) for a in self.per_group[g].fold_accuracies],
                    "auc": self.per_group[g].auc,
                    "eer": self.per_group[g].eer,
                }
                for g in self.groups
            },
            "mean_accuracy": self.mean_accuracy,
            "std_accuracy": self.std_accuracy,
            "ser": num(self.ser),
            "far": self.far,
            "threshold": num(self.threshold),
            "fmr_achieved": self.fmr_achieved,
            "num_excluded": self.num_excluded,
            "n_folds": next(iter(self.per_group.values())).n_folds,
        }


def _ser(errors: Sequence[float]) -> float:
    lo, hi = min(errors), max(errors)
    if lo > 0.0:
        return hi / lo
    return 1.0 if hi == 0.0 else math.inf


# --------------------------------------------------------------------------------------------------
# evaluation


def evaluate_group_distances(
    distances: Any,
    issame: Any,
    groups: Any,
    *,
    far: float = 1e-3,
    n_folds: int = 10,
    thresholds: ThresholdMode = "grid",
) -> GroupEvaluation:
    """:func:`evaluate_groups` from precomputed squared-L2 pair distances (e.g. ``PairEvaluation.distances``).

    Raises:
        ValueError: lengths differ; fewer than two groups; a group without genuine or without impostor pairs, or
            with fewer pairs than ``n_folds`` (the message names the group); an unhashable or NaN label; what
            :func:`~massface.evaluation.verification.evaluate_distances` refuses (distances outside ``[0, 4]``).

    Complexity: ``O(N log N)`` for ``τ`` plus ``evaluate_distances`` on each group (``O(N_g log N_g)`` each).
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"distances must be 1-D (one per pair), got shape {d.shape}")
    _check_distance_range(d)
    y = _labels(issame, d.shape[0])
    labels = _as_labels(groups, d.shape[0])
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(labels):
        if g is not None:
            members.setdefault(g, []).append(i)
    if len(members) < 2:
        raise ValueError(f"a group comparison needs at least two groups, got {len(members)} "
                         f"({list(members)!r}; {labels.count(None)} cross-group pairs)")
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral) or n_folds < 2:
        raise ValueError(f"n_folds must be an int >= 2, got {n_folds!r}")
    tau = threshold_at_fmr(d, y, far)
    for g, idx in members.items():
        n_same = int(y[idx].sum())
        if n_same == 0 or n_same == len(idx):
            raise ValueError(f"group {g!r} has {n_same} genuine and {len(idx) - n_same} impostor pairs; "
                             "its accuracy needs both")
        if len(idx) < n_folds:
            raise ValueError(f"group {g!r} has {len(idx)} pairs, fewer than n_folds={n_folds}")
    per_group = {g: evaluate_distances(d[idx], y[idx], n_folds=n_folds, thresholds=thresholds, far_targets=(far,))
                 for g, idx in members.items()}
    accepted = d < tau
    tpr, fpr = {}, {}
    for g, idx in members.items():
        yg, ag = y[idx], accepted[idx]
        tpr[g] = float(ag[yg].mean())
        fpr[g] = float(ag[~yg].mean())
    acc = {g: r.accuracy for g, r in per_group.items()}
    values = list(acc.values())
    return GroupEvaluation(
        groups=tuple(members),
        per_group=per_group,
        accuracy=acc,
        accuracy_std={g: r.std for g, r in per_group.items()},
        mean_accuracy=float(np.mean(values)),
        std_accuracy=float(np.std(values, ddof=1)),
        ser=_ser([1.0 - a for a in values]),
        far=float(far),
        threshold=tau,
        fmr_achieved=float(accepted[~y].mean()),
        tpr_at_threshold=tpr,
        fpr_at_threshold=fpr,
        num_pairs={g: len(idx) for g, idx in members.items()},
        num_genuine={g: int(y[idx].sum()) for g, idx in members.items()},
        num_excluded=labels.count(None),
        distances=d,
        issame=y,
        pair_groups=tuple(labels),
    )


def evaluate_groups(
    emb1: Any,
    emb2: Any,
    issame: Any,
    groups: Any,
    *,
    far: float = 1e-3,
    n_folds: int = 10,
    thresholds: ThresholdMode = "grid",
) -> GroupEvaluation:
    """Per-group 10-fold accuracy, SER and TPR / FPR at one global FMR threshold.

    Args:
        emb1, emb2: ``(N, D)`` embeddings of the two images of each pair (as :func:`evaluate_pairs`; scored by
            :func:`~massface.evaluation.verification.pair_distances`, squared L2 of L2-normalised rows).
        issame: ``(N,)`` booleans (or 0/1).
        groups: ``N`` hashable labels, one per pair; ``None`` (:data:`CROSS_GROUP`) for a pair in no group.
        far: target false-match rate of the global threshold (tie rule: :func:`threshold_at_fmr`).
        n_folds, thresholds: the per-group protocol (:func:`evaluate_pairs`' ``n_folds`` / ``thresholds``).

    Returns:
        :class:`GroupEvaluation`.

    Example::

        r = evaluate_groups(e1, e2, issame, races)      # races[k] = "African", ...
        r.accuracy["African"], r.ser, r.tpr_at_threshold["Asian"]

    Complexity: ``O(N·D)`` for the distances, then :func:`evaluate_group_distances`.
    """
    return evaluate_group_distances(pair_distances(emb1, emb2), issame, groups, far=far, n_folds=n_folds,
                                    thresholds=thresholds)


def format_group_table(result: GroupEvaluation, markdown: bool = True) -> str:
    """One row per group: accuracy ± fold std (%), TPR and FPR at the global ``τ`` (%), pairs; then the
    cross-group line (mean ± std, SER, τ). ``markdown=False`` gives aligned plain text."""
    head = ["group", "acc %", "± std", "TPR@τ %", "FPR@τ %", "pairs"]
    rows = [[str(g), f"{100 * result.accuracy[g]:.2f}", f"{100 * result.accuracy_std[g]:.2f}",
             f"{100 * result.tpr_at_threshold[g]:.2f}", f"{100 * result.fpr_at_threshold[g]:.3f}",
             str(result.num_pairs[g])] for g in result.groups]
    foot = (f"mean {100 * result.mean_accuracy:.2f} % ± {100 * result.std_accuracy:.2f} (ddof=1) over "
            f"{len(result.groups)} groups; SER {result.ser:.3f}; global τ = {result.threshold:.4f} at FMR <= "
            f"{result.far:g} (achieved {result.fmr_achieved:.2e})"
            + (f"; {result.num_excluded} cross-group pairs used for τ only" if result.num_excluded else ""))
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + ["", foot])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), *(fmt.format(*r) for r in rows), foot])


# --------------------------------------------------------------------------------------------------
# readers


@dataclass(frozen=True)
class GroupedPairs:
    """A pair list with groups: ``first[k]``, ``second[k]`` (image paths or keys), ``issame[k]``, ``groups[k]``;
    ``folds[k]`` when the source defines folds (BFW), else None."""

    first: tuple[str, ...]
    second: tuple[str, ...]
    issame: np.ndarray
    groups: tuple[Hashable, ...]
    folds: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.first)


#: Largest image number accepted in an RFW line.
_MAX_IMAGE_NUMBER = 10**7


def read_pair_groups(path: str | os.PathLike[str], n_pairs: int | None = None) -> list[Hashable]:
    """A per-pair group list: one label per line in the set's pair order; ``-`` marks a cross-group pair
    (``None``); whole-line ``#`` comments are skipped; a blank line is refused (it would shift every later pair).

    Strict UTF-8. ``DataFormatError`` naming the file and line for a blank line; naming the file when the count
    differs from ``n_pairs``. ``O(lines)``.
    """
    from massface.data._errors import DataFormatError
    from massface.data._guard import read_lines

    path = os.fspath(path)
    labels: list[Hashable] = []
    for lineno, line in enumerate(read_lines(path), 1):
        text = line.strip()
        if text.startswith("#"):
            continue
        if not text:
            raise DataFormatError(path, "blank line (expected one group label per pair; '-' for none)",
                                  f"line {lineno}")
        labels.append(None if text == "-" else text)
    if not labels:
        raise DataFormatError(path, "no group labels (one label per pair, in the set's pair order)")
    if n_pairs is not None and len(labels) != n_pairs:
        raise DataFormatError(path, f"{len(labels)} group labels for {n_pairs} pairs (one label per pair, in the "
                                    "set's pair order)")
    return labels


def read_rfw_pairs(
    root: str | os.PathLike[str],
    races: Sequence[str] = RFW_RACES,
    *,
    ext: str = "jpg",
    check_files: bool = True,
) -> GroupedPairs:
    """RFW's per-race pair lists -> :class:`GroupedPairs` (races in the order given, each file in line order).

    ``root`` is RFW's ``test`` directory: ``<root>/txts/<Race>/<Race>_pairs.txt`` holds tab- (or space-)
    separated lines ``name n1 n2`` (genuine) and ``name1 n1 name2 n2`` (impostor), no header; image ``n`` of
    ``name`` is ``<root>/data/<Race>/<name>/<name>_%04d.<ext>`` (LFW's numbering; RFW's own tools write
    ``_000<n>``, the same for ``n < 10``). The group of every pair is its race.

    The line syntax is LFW ``pairs.txt``'s, but :func:`massface.data.verification.read_lfw_pairs` is not used: it
    requires LFW's ``sets pairs_per_set`` header and its per-set genuine/impostor order, which RFW's files lack,
    and it decodes the images; its field checks (:func:`~massface.data._guard.parse_int`, single path
    components) are reused. ``check_files`` checks that each image is a regular file.

    Raises ``DataFormatError`` (a ``ValueError``) naming the file and line: a missing pair file, a line of
    neither 3 nor 4 fields, a bad image number, a name that is not one path component, a missing image, an empty
    file.
    """
    from massface.data._errors import DataFormatError
    from massface.data._guard import component_problem, parse_int, read_lines

    root = os.fspath(root)
    if not races:
        raise ValueError("races must name at least one RFW race")
    first: list[str] = []
    second: list[str] = []
    same: list[bool] = []
    groups: list[Hashable] = []
    for race in races:
        problem = component_problem(race)
        if problem is not None:
            raise ValueError(f"race {race!r}: {problem}")
        pairs_path = os.path.join(root, "txts", race, f"{race}_pairs.txt")
        if not os.path.isfile(pairs_path):
            raise DataFormatError(pairs_path, f"RFW pair list not found (expected <root>/txts/{race}/{race}_pairs.txt)")
        n_before = len(first)
        for lineno, line in enumerate(read_lines(pairs_path), 1):
            fields = line.split()
            if not fields:
                continue
            where = f"line {lineno}"
            if len(fields) not in (3, 4):
                raise DataFormatError(pairs_path, f"expected 'name n1 n2' or 'name1 n1 name2 n2', got "
                                                  f"{' '.join(fields)[:120]!r}", where)
            spec = (fields[0], fields[1], fields[0], fields[2]) if len(fields) == 3 else tuple(fields)
            paths = []
            for t in (0, 1):
                name = spec[2 * t]
                problem = component_problem(name)
                if problem is not None:
                    raise DataFormatError(pairs_path, f"name {name[:80]!r}: {problem}; refused", where)
                num = parse_int(spec[2 * t + 1], pairs_path, where, "image number", 0, _MAX_IMAGE_NUMBER)
                p = os.path.join(root, "data", race, name, f"{name}_{num:04d}.{ext}")
                if check_files and not os.path.isfile(p):
                    raise DataFormatError(pairs_path, f"image {p} not found", where)
                paths.append(p)
            first.append(paths[0])
            second.append(paths[1])
            same.append(len(fields) == 3)
            groups.append(race)
        if len(first) == n_before:
            raise DataFormatError(pairs_path, "empty pair list")
    return GroupedPairs(tuple(first), tuple(second), np.array(same, dtype=bool), tuple(groups))


_BFW_REQUIRED = ("p1", "p2", "label")


def read_bfw_pairs(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    group_columns: tuple[str, str] = ("att1", "att2"),
) -> GroupedPairs:
    """BFW's datatable (CSV with a header; columns in any order, extra columns ignored) -> :class:`GroupedPairs`.

    Required columns: ``p1``, ``p2`` (relative image paths ``<att>/<id>/<file>``), ``label`` (1 genuine, 0
    impostor; ``True``/``False`` accepted). The pair group is ``att1`` when ``att1 == att2``, else
    :data:`CROSS_GROUP`; without ``att1``/``att2`` columns the first path component of ``p1``/``p2`` is used
    (BFW's layout). ``fold`` (an integer), when present, is returned in ``folds``. With ``root`` the paths are
    joined to it (and must stay inside it); otherwise they are returned as keys.

    Raises ``DataFormatError`` naming the file and the line: missing file, no header, a missing required column,
    a duplicated column, a row with a different number of fields than the header, a label that is not 0/1, an
    empty path or one climbing out of ``root``, a bad fold, no rows.
    """
    from massface.data._errors import DataFormatError
    from massface.data._guard import parse_int, read_text, relpath_problem

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFormatError(path, "BFW datatable not found")
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataFormatError(path, "empty file (expected a header line 'fold,p1,p2,label,...')") from None
    except csv.Error as err:
        raise DataFormatError(path, f"malformed CSV ({err})", "line 1") from None
    col = {}
    for i, h in enumerate(header):
        if h in col:
            raise DataFormatError(path, f"column {h!r} appears twice in the header", "line 1")
        col[h] = i
    missing = [c for c in _BFW_REQUIRED if c not in col]
    if missing:
        raise DataFormatError(path, f"header lacks column(s) {missing} (has {header[:20]})", "line 1")
    ga, gb = group_columns
    has_att = ga in col and gb in col
    has_fold = "fold" in col
    first: list[str] = []
    second: list[str] = []
    same: list[bool] = []
    groups: list[Hashable] = []
    folds: list[int] = []
    try:
        for row in reader:
            where = f"line {reader.line_num}"
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataFormatError(path, f"{len(row)} fields, the header has {len(header)}", where)
            label = row[col["label"]].strip().lower()
            if label not in ("0", "1", "true", "false", "0.0", "1.0"):
                raise DataFormatError(path, f"label must be 0 or 1, got {row[col['label']][:40]!r}", where)
            pair = []
            for c in ("p1", "p2"):
                rel = row[col[c]].strip()
                problem = relpath_problem(rel)
                if problem is not None:
                    raise DataFormatError(path, f"column {c}: {problem} ({rel[:80]!r})", where)
                pair.append(rel if root is None else os.path.join(os.fspath(root), rel))
            if has_att:
                a, b = row[col[ga]].strip(), row[col[gb]].strip()
            else:
                a, b = (row[col[c]].strip().replace("\\", "/").split("/")[0] for c in ("p1", "p2"))
            if not a or not b:
                raise DataFormatError(path, f"empty group ({ga}={a!r}, {gb}={b!r})", where)
            if has_fold:
                folds.append(parse_int(row[col["fold"]], path, where, "fold", 0, 10**6))
            first.append(pair[0])
            second.append(pair[1])
            same.append(label in ("1", "true", "1.0"))
            groups.append(a if a == b else CROSS_GROUP)
    except csv.Error as err:
        raise DataFormatError(path, f"malformed CSV ({err})", f"line {reader.line_num}") from None
    if not first:
        raise DataFormatError(path, "no pairs after the header")
    return GroupedPairs(tuple(first), tuple(second), np.array(same, dtype=bool), tuple(groups),
                        np.array(folds, dtype=np.int64) if has_fold else None)
