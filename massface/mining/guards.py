"""False-negative guards: negatives a miner must not use, because on a real identity set they are likely the
anchor's own person filed under another label (a duplicate identity, a mislabelled image).

Hard-negative mining is what finds such pairs: the nearest "negative" of an anchor is very often the same
person. Each guard removes entries from the negatives of the (N, M) dissimilarity matrix ``D`` before the
miner's strategy looks at them (:meth:`massface.mining.TripletMiner.select`, the one mechanism of the online,
cross-batch, semi-online and offline modes), so every strategy and every mode takes them unchanged:

* ``negative_range=(lo, hi)`` -- only negatives with lo <= d(a, n) <= hi, in the miner's distance (for a
  similarity such as cosine: lo <= s(a, n) <= hi, in similarity);
* ``skip_nearest=k`` -- the k nearest negatives of each anchor (among all its negatives, before the other
  guards) are never used; with ``pick="nearest"`` the (k+1)-th nearest is taken (OML's ``NHardTripletsMiner``);
* ``same_identity_pairs`` -- an (S, 2) array of label pairs known or suspected to be one person (a duplicate
  list, ``massface clean``'s output); the two labels are never each other's negatives, in either order;
* ``false_negative_gap=g`` -- the relative guard, which needs no list: n is dropped when it is closer to the
  anchor than the anchor's *nearest* positive by more than g,

      d(a, n) < min_p d(a, p) - g        (similarity: s(a, n) > max_p s(a, p) + g),

  i.e. a negative that beats every genuine match of the anchor by a clear gap is more likely the same person
  than a hard negative. An anchor without positives in the reference keeps all its negatives.

Cost: O(N·M) per guard (``skip_nearest``: O(N·M·log k) for the top-k; ``same_identity_pairs``: O(U² log S)
for the U distinct labels of the batch and reference, then an O(N·M) gather).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from massface._checks import check_int, check_real

__all__ = ["NegativeGuards"]


@dataclass(frozen=True)
class NegativeGuards:
    """The false-negative guards of one miner (all off by default). See the module docstring."""

    negative_range: tuple[float, float] | None = None
    skip_nearest: int = 0
    same_identity_pairs: torch.Tensor | None = None  # (S,) sorted int64 codes of ordered label pairs
    false_negative_gap: float | None = None

    @classmethod
    def build(cls, owner: str, *, negative_range: Sequence[float] | None = None, skip_nearest: int = 0,
              same_identity_pairs: object = None, false_negative_gap: float | None = None) -> NegativeGuards:
        """Validated guards; ``same_identity_pairs`` as any (S, 2) integer array-like."""
        rng = None
        if negative_range is not None:
            try:
                lo, hi = (float(v) for v in negative_range)
            except (TypeError, ValueError):
                raise ValueError(f"{owner}: negative_range must be a pair (lo, hi); got {negative_range!r}") from None
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise ValueError(f"{owner}: negative_range must have lo <= hi (no NaN); got ({lo}, {hi})")
            rng = (lo, hi)
        skip = check_int("skip_nearest", skip_nearest, owner, low=0)
        gap = None
        if false_negative_gap is not None:
            gap = check_real("false_negative_gap", false_negative_gap, owner, low=0.0,
                             note="in units of the distance (similarity for cosine)")
        codes = None if same_identity_pairs is None else _pair_codes(same_identity_pairs, owner)
        return cls(rng, skip, codes, gap)

    @property
    def active(self) -> bool:
        return (self.negative_range is not None or self.skip_nearest > 0 or self.same_identity_pairs is not None
                or self.false_negative_gap is not None)

    @property
    def needs_labels(self) -> bool:
        return self.same_identity_pairs is not None

    def describe(self) -> list[str]:
        """``key=value`` strings of the guards that are on (for ``extra_repr``)."""
        out = []
        if self.negative_range is not None:
            out.append(f"negative_range={self.negative_range}")
        if self.skip_nearest:
            out.append(f"skip_nearest={self.skip_nearest}")
        if self.same_identity_pairs is not None:
            out.append(f"same_identity_pairs={self.same_identity_pairs.numel() // 2}")
        if self.false_negative_gap is not None:
            out.append(f"false_negative_gap={self.false_negative_gap}")
        return out

    def excluded(self, D_neg: torch.Tensor, nearest_positive: torch.Tensor | None, inverted: bool,
                 labels: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor | None:
        """The (N, M) boolean mask of negatives (finite entries of ``D_neg``, same-label entries already +inf)
        that the guards remove; ``None`` when no guard is on.

        ``nearest_positive[i]``: min over row i's positives of D (+inf without positives) -- for the gap guard.
        ``inverted``: ``D`` is a negated similarity (ranges and the gap are then read in similarity).
        ``labels``: (row labels (N,), column labels (M,) or (N, M), -1 for padding) -- for ``same_identity_pairs``.
        """
        if not self.active:
            return None
        negative = torch.isfinite(D_neg)
        out = torch.zeros_like(negative)
        if self.skip_nearest:
            k = min(self.skip_nearest, D_neg.shape[1])
            nearest = torch.topk(D_neg, k, dim=1, largest=False).indices
            out.scatter_(1, nearest, True)
        if self.negative_range is not None:
            lo, hi = self.negative_range
            if inverted:  # D = -s: lo <= s <= hi  <=>  -hi <= D <= -lo
                lo, hi = -hi, -lo
            out |= (D_neg < lo) | (D_neg > hi)
        if self.false_negative_gap is not None and nearest_positive is not None:
            out |= D_neg < (nearest_positive - self.false_negative_gap).unsqueeze(1)
        if self.same_identity_pairs is not None:
            if labels is None:
                raise ValueError("same_identity_pairs needs the labels of the rows and columns")
            out |= _suspected_same(self.same_identity_pairs, labels[0], labels[1])
        return out & negative


def _pair_codes(pairs: object, owner: str) -> torch.Tensor:
    array = np.asarray(pairs)
    if array.size == 0:
        array = array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{owner}: same_identity_pairs must be an (S, 2) integer array of label pairs; got "
                         f"shape {array.shape}, dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= 2**31):
        raise ValueError(f"{owner}: same_identity_pairs labels must lie in [0, 2**31); got "
                         f"[{array.min()}, {array.max()}]")
    both = np.concatenate([array, array[:, ::-1]]).astype(np.int64)
    return torch.from_numpy(np.unique(both[:, 0] << 32 | both[:, 1]))


def _suspected_same(codes: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(N, M): whether (rows[i], cols[j]) -- or, for (N, M) ``cols`` (columns that differ per row, as in offline
    mining's candidate lists), (rows[i], cols[i, j]) -- is a listed pair; labels < 0 (padding) never are."""
    codes = codes.to(rows.device)
    if cols.dim() == 2:
        grid = (rows.clamp_min(0).unsqueeze(1) << 32) | cols.clamp_min(0)
        if codes.numel() == 0:
            return torch.zeros(grid.shape, dtype=torch.bool, device=rows.device)
        pos = torch.searchsorted(codes, grid.reshape(-1)).clamp_max(codes.numel() - 1)
        hit = (codes[pos] == grid.reshape(-1)).view(grid.shape)
        return hit & (rows >= 0).unsqueeze(1) & (cols >= 0)
    values, inverse = torch.unique(torch.cat([rows, cols]), return_inverse=True)
    u = values.numel()
    grid = (values.clamp_min(0).unsqueeze(1) << 32) | values.clamp_min(0).unsqueeze(0)
    pos = torch.searchsorted(codes, grid.reshape(-1)).clamp_max(max(codes.numel() - 1, 0))
    hit = (codes[pos] == grid.reshape(-1)) if codes.numel() else torch.zeros(u * u, dtype=torch.bool,
                                                                              device=rows.device)
    valid = values >= 0
    table = hit.view(u, u) & valid.unsqueeze(1) & valid.unsqueeze(0)
    r, c = inverse[: rows.numel()], inverse[rows.numel():]
    return table[r][:, c]

