"""All-to-all 1:1 verification: the ROC of every unordered pair of N images, streamed into exact counts.

:func:`all_pairs_roc` scores all ``N(N-1)/2`` pairs ``i < j`` (no self-pairs) of a labelled image set by the
cosine ``s_ij = <e_i, e_j> / (||e_i|| ||e_j||)`` and reads TPR (TAR) at FARs down to ``1e-6`` — with
``N = 200 000`` that is ``2·10^10`` pairs, ``~2·10^10`` of them impostors, so ``FAR = 1e-6`` is ``~20 000``
accepted impostors: a resolved operating point. The scores are never stored; they are streamed into two
integer histograms, genuine (same label) and impostor, and the ROC is read off the histograms.

**Scores.** The embeddings are L2-normalised in float64 and stored in float32 (rows sorted by label); the
``N × N`` score matrix is tiled into ``b × b`` blocks and only the upper-triangular blocks ``I <= J`` are
computed, each one float32 ``torch.mm`` on ``device`` (the diagonal blocks keep ``j > i`` only). The score
binned is that float32 product (its row factor is pre-multiplied by ``B/2``, a power of two, which IEEE
arithmetic scales exactly — barring subnormal products).

**Bins.** ``B`` (a power of two, default ``2^16``) bins of width ``w = 2/B`` with edges
``e_k = -1 + k·w``; bin ``k`` holds ``e_k <= s < e_{k+1}``, its bin index is ``floor(s · B/2) + B/2``.
``s · B/2`` is exact (power-of-two scaling) and ``floor`` is exact, so a score *on* an edge goes into the
bin above it — no rounding of ``s + 1`` ever moves a score across an edge (the reason ``torch.histc``, which
computes ``(s - min)·B/(max - min)``, is not used). Bin ``0`` also holds scores below ``-1`` and bin ``B - 1``
scores ``>= 1`` (float32 products of unit vectors can reach ``1 + 1e-7``), so for ``1 <= k <= B - 1`` the
suffix sum of the counts from bin ``k`` on is exactly ``#{s >= e_k}``.

**Genuine vs impostor.** Every block is histogrammed whole (``floor``, int32 cast, ``torch.bincount``: four
passes over the block); the genuine scores are few (``G = Σ_c n_c(n_c - 1)/2``, ``~4.5 N`` with 10 images per
identity) and, with the rows sorted by label, lie only in blocks whose label ranges overlap — the diagonal
band. Only there a label-equality mask picks the genuine entries out of *the same binned block*, so the
genuine bin of a pair is the bin it was counted in and ``impostor = all − genuine`` is exact in every bin
(int64 counts throughout).

**Operating points.** ``G_k``, ``I_k``: genuine / impostor counts with ``s >= e_k`` (``k = 0`` accepts every
pair, threshold ``-inf``; ``k = B`` none, ``+inf``). For a target FAR ``x`` the threshold is the *lowest*
edge ``e_k`` with ``I_k <= floor(x · N_imp)`` (``x`` read as the decimal it prints as), i.e. FAR is never
exceeded, and ``TPR = G_k / N_gen``. The exact ``TPR@FAR`` of all pairs (the largest TPR of sklearn's
``roc_curve`` with FPR ``<= x``) is bracketed by adjacent bins: ``G_k/N_gen <= TPR* <= G_{k-1}/N_gen``, and the
exact threshold lies in ``(e_{k-1}, e_k]`` — off by less than one bin width ``2/B`` (``3.05e-5`` at
``2^16``). The value at ``e_k`` is exactly sklearn's TPR at threshold ``e_k``. Targets with
``x · N_imp < 1`` are unresolvable (no impostor may be accepted, the ROC has no vertex there): their TPR is
NaN and ``resolvable`` is False.

**Cost.** ``N²D`` flops (half of the square) plus ``~N²/2 · 4`` memory passes for the binning, ``O(G)`` for the
genuine masks of the diagonal band (``O(b²)`` per band block), ``O(N log N)`` for the label sort, ``O(B)`` for
the ROC. Memory: the float32 embeddings ``4ND`` bytes (``400 MB`` at ``200 000 × 512``), two ``b × b``
blocks (``4 MB`` each at ``b = 1024``) and ``O(B)`` counts — independent of the number of pairs.

**Shards.** ``shard=(rank, world_size)`` computes every ``world_size``-th block; the :class:`AllPairsROC` of
all shards summed (``a + b``, :meth:`AllPairsROC.merge`) equals the unsharded one count for count — one shard
per process or per GPU (DDP), merged by summing two int64 arrays.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

from massface.evaluation._arrays import as_vector
from massface.evaluation.roc import DEFAULT_FARS, auc, eer_from_roc

__all__ = ["AllPairsROC", "FarPoint", "all_pairs_roc", "DEFAULT_BINS", "DEFAULT_BLOCK_SIZE"]

DEFAULT_BINS: int = 1 << 16
DEFAULT_BLOCK_SIZE: int = 1024
_MAX_BINS = 1 << 22
_MARGIN = 64  # internal slots below -1 and above +1 (scores of unit vectors stray ~1e-7 outside [-1, 1])
_NORM_CHUNK = 8192


@dataclass(frozen=True)
class FarPoint:
    """One operating point of an :class:`AllPairsROC` (see the module docstring for the rule).

    Attributes:
        far_target: the requested FAR ``x``.
        resolvable: ``x · N_imp >= 1``; if False every other field but ``far_target`` is NaN / -1.
        threshold: the bin edge ``e_k`` (accept ``s >= threshold``; ``-inf`` = accept all).
        tpr: ``G_k / N_gen`` — exactly sklearn's TPR at ``threshold``; a lower bound of the exact TPR@FAR.
        tpr_upper: ``G_{k-1} / N_gen`` — an upper bound of the exact TPR@FAR (``= tpr`` when ``k = 0``).
        far: the FAR achieved at ``threshold``, ``I_k / N_imp <= far_target``.
        bin_index: ``k``.
    """

    far_target: float
    resolvable: bool
    threshold: float
    tpr: float
    tpr_upper: float
    far: float
    bin_index: int


@dataclass(frozen=True, eq=False)
class AllPairsROC:
    """Exact genuine / impostor score counts of all pairs and the ROC read off them.

    Attributes:
        genuine_counts, impostor_counts: int64 ``(B,)``; bin ``k`` counts ``e_k <= s < e_{k+1}`` (bin 0 also
            ``s < -1``, bin ``B - 1`` also ``s >= 1``).
        far_targets: the FARs :attr:`points` and :meth:`tpr_at_far` report by default.

    Sum shards with ``a + b`` or :meth:`merge`. ``O(B)`` for every derived quantity.
    """

    genuine_counts: np.ndarray
    impostor_counts: np.ndarray
    far_targets: tuple[float, ...] = DEFAULT_FARS

    def __post_init__(self) -> None:
        g = np.asarray(self.genuine_counts)
        i = np.asarray(self.impostor_counts)
        if g.ndim != 1 or g.shape != i.shape:
            raise ValueError(f"genuine_counts and impostor_counts must be 1-D of equal length, got {g.shape}, {i.shape}")
        _check_bins(g.shape[0])
        if not (np.issubdtype(g.dtype, np.integer) and np.issubdtype(i.dtype, np.integer)):
            raise ValueError("counts must be integers")
        if (g < 0).any() or (i < 0).any():
            raise ValueError("counts must be non-negative")
        g = g.astype(np.int64)
        i = i.astype(np.int64)
        g.setflags(write=False)
        i.setflags(write=False)
        object.__setattr__(self, "genuine_counts", g)
        object.__setattr__(self, "impostor_counts", i)
        object.__setattr__(self, "far_targets", _check_fars(self.far_targets))

    # ---- sizes and edges -------------------------------------------------------------------------------
    @property
    def bins(self) -> int:
        return int(self.genuine_counts.shape[0])

    @property
    def bin_width(self) -> float:
        """``2 / B``: the resolution of every threshold."""
        return 2.0 / self.bins

    @property
    def n_genuine(self) -> int:
        return int(self.genuine_counts.sum())

    @property
    def n_impostor(self) -> int:
        return int(self.impostor_counts.sum())

    @property
    def n_pairs(self) -> int:
        return self.n_genuine + self.n_impostor

    @property
    def edges(self) -> np.ndarray:
        """``e_k = -1 + 2k/B`` for ``k = 0..B`` (float64, exact dyadic numbers)."""
        return -1.0 + np.arange(self.bins + 1, dtype=np.float64) * self.bin_width

    @cached_property
    def _suffix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(G, I)``, int64 ``(B + 1,)``: pairs with ``s >= e_k`` (``k = 0``: all, ``k = B``: none)."""
        zero = np.zeros(1, dtype=np.int64)
        g = np.concatenate([np.cumsum(self.genuine_counts[::-1])[::-1], zero])
        i = np.concatenate([np.cumsum(self.impostor_counts[::-1])[::-1], zero])
        return g, i

    def _threshold(self, k: int) -> float:
        return -math.inf if k == 0 else math.inf if k == self.bins else float(-1.0 + k * self.bin_width)

    # ---- operating points -----------------------------------------------------------------------------
    def operating_points(self, far_targets: Sequence[float] | None = None) -> tuple[FarPoint, ...]:
        """One :class:`FarPoint` per target (default :attr:`far_targets`). ``O(B + T log B)``."""
        fars = self.far_targets if far_targets is None else _check_fars(far_targets)
        n_gen, n_imp = self._require_both()
        g, i = self._suffix
        out = []
        for x in fars:
            allowed = math.floor(Fraction(repr(x)) * n_imp)  # x as the decimal it prints as: 1e-6 is 1/10^6
            if allowed < 1:
                out.append(FarPoint(x, False, math.nan, math.nan, math.nan, math.nan, -1))
                continue
            k = int(np.searchsorted(-i, -allowed, side="left"))  # first k with I_k <= allowed (I descends)
            upper = g[k - 1] if k > 0 else g[0]
            out.append(FarPoint(x, True, self._threshold(k), float(g[k] / n_gen), float(upper / n_gen),
                                float(i[k] / n_imp), k))
        return tuple(out)

    @property
    def points(self) -> tuple[FarPoint, ...]:
        """:meth:`operating_points` at :attr:`far_targets`."""
        return self.operating_points()

    def tpr_at_far(self, far_targets: Sequence[float] | None = None) -> dict[float, float]:
        """FAR target -> TPR at the lowest edge with FAR ``<= x`` (NaN when unresolvable)."""
        return {p.far_target: float(p.tpr) for p in self.operating_points(far_targets)}

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ROC from the counts: ascending ``(fpr, tpr, thresholds)``, one vertex per non-empty bin.

        Vertex 0 is ``(0, 0)`` at ``+inf``; the vertex at ``e_k`` accepts ``s >= e_k`` (the last, bin 0, is
        ``-inf``: everything). These are exactly ``sklearn.metrics.roc_curve(y, snapped,
        drop_intermediate=False)`` of the scores snapped down to their bin's edge. ``O(B)``.
        """
        n_gen, n_imp = self._require_both()
        g, i = self._suffix
        nonempty = np.flatnonzero((self.genuine_counts + self.impostor_counts) > 0)[::-1]
        ks = np.concatenate([[self.bins], nonempty])
        thresholds = -1.0 + ks * self.bin_width
        thresholds[0] = math.inf
        thresholds[ks == 0] = -math.inf
        return i[ks] / n_imp, g[ks] / n_gen, thresholds

    def auc(self) -> float:
        """Trapezoidal area under :meth:`roc` (scores within one bin count as tied)."""
        fpr, tpr, _ = self.roc()
        return auc(fpr, tpr)

    def eer(self) -> float:
        """Equal error rate of :meth:`roc` (:func:`massface.evaluation.roc.eer_from_roc`)."""
        fpr, tpr, _ = self.roc()
        return eer_from_roc(fpr, tpr)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable scalars: pair counts, bins and the operating points (NaN -> None)."""

        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
            "bins": self.bins,
            "bin_width": self.bin_width,
            "points": [
                {"far_target": p.far_target, "resolvable": p.resolvable, "threshold": num(p.threshold),
                 "tpr": num(p.tpr), "tpr_upper": num(p.tpr_upper), "far": num(p.far)}
                for p in self.points
            ],
        }

    # ---- shards ---------------------------------------------------------------------------------------
    def merge(self, *others: AllPairsROC) -> AllPairsROC:
        """Counts of ``self`` and ``others`` summed (same ``bins``); ``far_targets`` of ``self``. ``O(B)``."""
        g = self.genuine_counts.copy()
        i = self.impostor_counts.copy()
        for o in others:
            if not isinstance(o, AllPairsROC):
                raise TypeError(f"can only merge AllPairsROC, got {type(o).__name__}")
            if o.bins != self.bins:
                raise ValueError(f"cannot merge results with {self.bins} and {o.bins} bins")
            g += o.genuine_counts
            i += o.impostor_counts
        return AllPairsROC(g, i, self.far_targets)

    def __add__(self, other: AllPairsROC) -> AllPairsROC:
        if not isinstance(other, AllPairsROC):
            return NotImplemented
        return self.merge(other)

    def _require_both(self) -> tuple[int, int]:
        n_gen, n_imp = self.n_genuine, self.n_impostor
        if n_gen == 0 or n_imp == 0:
            raise ValueError(f"ROC needs genuine and impostor pairs; got {n_gen} genuine, {n_imp} impostor "
                             "(a single shard may hold none: merge the shards first)")
        return n_gen, n_imp


def _check_bins(bins: Any) -> int:
    if not isinstance(bins, numbers.Integral) or isinstance(bins, bool):
        raise ValueError(f"bins must be an int, got {bins!r}")
    b = int(bins)
    if b < 2 or b > _MAX_BINS or b & (b - 1):
        raise ValueError(f"bins must be a power of two in [2, 2^22] (exact edges), got {b}")
    return b


def _check_fars(far_targets: Sequence[float]) -> tuple[float, ...]:
    try:
        fars = tuple(float(x) for x in far_targets)
    except TypeError as exc:
        raise ValueError(f"far_targets must be a sequence of numbers, got {far_targets!r}") from exc
    for x in fars:
        if not (0.0 < x <= 1.0):
            raise ValueError(f"far_targets must lie in (0, 1], got {x!r}")
    return fars


def _label_codes(labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, counts)``: identity index ``0..C-1`` of each image and the images per identity."""
    lab = as_vector(labels, "labels", n)
    if lab.dtype.kind == "f" and np.isnan(lab).any():
        raise ValueError(f"labels[{int(np.flatnonzero(np.isnan(lab))[0])}] is NaN")
    try:
        _, codes, counts = np.unique(lab, return_inverse=True, return_counts=True)
    except TypeError as exc:
        raise ValueError(f"labels must be comparable (ints or strings), got dtype {lab.dtype}") from exc
    return codes.reshape(-1).astype(np.int64), counts.astype(np.int64)


def _normalised_sorted(embeddings: Any, order: np.ndarray, device: Any) -> Any:
    """Rows ``embeddings[order]`` L2-normalised (float64 arithmetic) as a float32 tensor on ``device``.

    ``ValueError`` naming the first row (in the caller's order) that is non-finite or zero. ``O(ND)`` time,
    ``O(ND)`` float32 output plus one ``8192 × D`` float64 chunk.
    """
    import torch

    is_tensor = isinstance(embeddings, torch.Tensor)
    dev = torch.device(device) if device is not None else (embeddings.device if is_tensor else torch.device("cpu"))
    n, d = embeddings.shape
    wide = torch.float32 if dev.type == "mps" else torch.float64
    out = torch.empty((n, d), dtype=torch.float32, device=dev)
    src = embeddings.detach() if is_tensor else embeddings
    for s in range(0, n, _NORM_CHUNK):
        idx = order[s : s + _NORM_CHUNK]
        if is_tensor:
            x = src.index_select(0, torch.as_tensor(idx, device=src.device)).to(dev, wide)
        else:
            x = torch.from_numpy(np.asarray(src[idx], dtype=np.float64)).to(dev, wide)
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)  # NaN / inf iff a NaN / inf entry (or overflow)
        odd = ~torch.isfinite(norm[:, 0])
        if bool(odd.any()):
            for r in torch.nonzero(odd)[:, 0].tolist():
                if not bool(torch.isfinite(x[r]).all()):
                    raise ValueError(f"embeddings row {int(idx[r])} has a non-finite value (NaN or inf)")
                x[r] /= x[r].abs().max()  # finite but |x|^2 overflows: rescale first (the cosine is unchanged)
            norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        zero = norm[:, 0] == 0
        if bool(zero.any()):
            row = int(idx[int(torch.nonzero(zero)[0, 0])])
            raise ValueError(f"embeddings row {row} is all zeros: its cosine similarity is undefined")
        out[s : s + idx.shape[0]] = (x / norm).to(torch.float32)
    return out


def _bin_block(scaled: Any, index: Any) -> Any:
    """Internal bin index of every score of a block, written into the int32 tensor ``index`` (same shape).

    ``scaled`` holds ``s · B/2`` (float32) and is overwritten by its floor; the internal index is
    ``floor(s·B/2) + B/2 + _MARGIN``, exact for every float32 ``s`` (power-of-two scale, exact floor).
    """
    scaled.floor_()
    index.copy_(scaled)  # integral floats of magnitude <= 2^22: exact conversion
    return index


def _count(index: Any, offset: int, length: int) -> Any:
    """int64 histogram of ``index + offset`` of length ``length``: values below 0 counted in slot 0, values
    ``>= length - 1`` in the last slot. ``O(size)`` (``torch.bincount``)."""
    import torch

    flat = index.reshape(-1)
    flat.add_(offset)
    try:
        c = torch.bincount(flat, minlength=length)
    except RuntimeError:  # a negative index: a score below -1 - _MARGIN·w (not seen with unit vectors)
        c = torch.bincount(flat.clamp_(min=0), minlength=length)
    if c.shape[0] > length:
        c = torch.cat([c[: length - 1], c[length - 1 :].sum(0, keepdim=True)])
    return c


def all_pairs_roc(
    embeddings: Any,
    labels: Any,
    *,
    far_targets: Sequence[float] = DEFAULT_FARS,
    bins: int = DEFAULT_BINS,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: Any = None,
    shard: tuple[int, int] = (0, 1),
    progress: bool = False,
) -> AllPairsROC:
    """Exact-count ROC of all ``N(N-1)/2`` pairs ``i < j`` of ``embeddings`` (cosine, ``s >= t`` accepts).

    Args:
        embeddings: ``(N, D)`` numpy array or torch tensor (any float dtype, any device); rows are
            L2-normalised here (float64 arithmetic, stored float32).
        labels: ``(N,)`` identity of each image (ints or strings); same label = genuine pair.
        far_targets: FARs the result reports by default (each in ``(0, 1]``).
        bins: ``B``, a power of two ``<= 2^22``: threshold resolution ``2/B`` (``2^16``: ``3.05e-5``).
        block_size: ``b``, rows / columns per score block (memory ``~9 b²`` bytes; ``1024``: 9 MB — the
            fastest on CPU, the block stays in cache; larger blocks suit a GPU).
        device: where the blocks are computed (default: the tensor's device, CPU for numpy). On CUDA keep
            ``torch.backends.cuda.matmul.allow_tf32`` False for float32-accurate scores.
        shard: ``(rank, world_size)``: compute blocks ``t`` with ``t % world_size == rank`` only; the
            results of all ranks summed are the full result.
        progress: draw a progress bar over the blocks on stderr.

    Returns:
        :class:`AllPairsROC` with the int64 genuine / impostor counts.

    Raises:
        ValueError: embeddings not 2-D / empty / non-numeric, ``N < 2``, a row non-finite or zero, labels of
            another length or NaN, no genuine pair (every identity has one image), no impostor pair (one
            identity), bad ``bins`` / ``block_size`` / ``far_targets`` / ``shard``.

    Time ``O(N² D)`` (half the square, matmul) + ``O(N²)`` binning; memory ``O(N D + b² + B)`` — see the
    module docstring for the method and why the counts are exact.
    """
    import torch

    from massface._progress import progress_bar

    nbins = _check_bins(bins)
    fars = _check_fars(far_targets)
    if not isinstance(block_size, numbers.Integral) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    rank, world = _check_shard(shard)
    if not isinstance(embeddings, torch.Tensor):
        embeddings = np.asarray(embeddings)
        if embeddings.dtype.kind not in "biuf":
            raise ValueError(f"embeddings must be numeric, got dtype {embeddings.dtype}")
    elif embeddings.is_complex():
        raise ValueError("embeddings must be real")
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, D), got shape {tuple(embeddings.shape)}")
    n, d = (int(v) for v in embeddings.shape)
    if n < 2:
        raise ValueError(f"all-pairs verification needs at least 2 images, got {n}")
    if d < 1:
        raise ValueError("embeddings have 0 dimensions")
    codes, counts = _label_codes(labels, n)
    if int((counts * (counts - 1) // 2).sum()) == 0:
        raise ValueError(f"no genuine pairs: each of the {counts.size} identities has a single image")
    if counts.size < 2:
        raise ValueError("no impostor pairs: every image has the same label")

    order = np.argsort(codes, kind="stable")
    emb = _normalised_sorted(embeddings, order, device)
    dev = emb.device
    codes_sorted = codes[order]
    codes_t = torch.as_tensor(codes_sorted, device=dev)

    b = int(min(block_size, n))
    half = nbins // 2
    length = nbins + 2 * _MARGIN
    offset = half + _MARGIN
    n_blocks = -(-n // b)
    starts = [k * b for k in range(n_blocks)]
    mine = [(bi, bj) for t, (bi, bj) in enumerate((i, j) for i in range(n_blocks) for j in range(i, n_blocks))
            if t % world == rank]

    all_counts = torch.zeros(length, dtype=torch.int64, device=dev)
    gen_counts = torch.zeros(length, dtype=torch.int64, device=dev)
    score_buf = torch.empty(b * b, dtype=torch.float32, device=dev)
    index_buf = torch.empty(b * b, dtype=torch.int32, device=dev)
    lower = None  # (b, b) bool: j <= i, built on the first diagonal block
    sentinels = 0
    rows_scaled, rows_for = None, -1
    with torch.inference_mode(), progress_bar(total=len(mine), desc="all pairs", unit="block",
                                              enabled=progress) as bar:
        for bi, bj in mine:
            r0, r1 = starts[bi], min(starts[bi] + b, n)
            c0, c1 = starts[bj], min(starts[bj] + b, n)
            m, k = r1 - r0, c1 - c0
            if rows_for != bi:
                rows_scaled, rows_for = emb[r0:r1] * float(half), bi  # exact: power-of-two scale
            scores = score_buf[: m * k].view(m, k)
            torch.mm(rows_scaled, emb[c0:c1].T, out=scores)
            index = _bin_block(scores, index_buf[: m * k].view(m, k))
            if bi == bj:
                if lower is None:
                    lower = ~torch.ones(b, b, dtype=torch.bool, device=dev).triu_(1)
                index.masked_fill_(lower[:m, :m], -offset)  # i >= j: counted in slot 0, subtracted below
                sentinels += m * (m + 1) // 2
            if bi == bj:  # the identities' squares along the diagonal: a label-equality mask
                same = (codes_t[r0:r1, None] == codes_t[None, c0:c1]).triu_(1)
                genuine = index[same]
                if genuine.numel():
                    gen_counts += _count(genuine, offset, length)
                    index[same] = -offset  # ... and removed from the all-pairs count
                    sentinels += int(genuine.numel())
            elif codes_sorted[c0] == codes_sorted[r1 - 1]:
                # one identity v straddles the blocks (sorted codes): its rows at the end of I times its
                # columns at the start of J — a rectangle of genuine pairs, nothing else in the block is
                v = codes_sorted[c0]
                ra = int(np.searchsorted(codes_sorted, v, side="left"))
                cb = int(np.searchsorted(codes_sorted, v, side="right"))
                corner = index[max(ra, r0) - r0 :, : min(cb, c1) - c0]
                gen_counts += _count(corner.clone(), offset, length)
                sentinels += corner.numel()
                corner.fill_(-offset)
            all_counts += _count(index, offset, length)
            bar.update(1)

    all_np = all_counts.cpu().numpy()
    gen_np = gen_counts.cpu().numpy()
    all_np[0] -= sentinels
    imp_np = all_np
    if all_np[0] < 0 or (gen_np < 0).any():  # pragma: no cover - a bug, never a silent wrong answer
        raise RuntimeError("all_pairs_roc: inconsistent counts")
    return AllPairsROC(_fold(gen_np, nbins), _fold(imp_np, nbins), fars)


def _fold(internal: np.ndarray, nbins: int) -> np.ndarray:
    """Internal counts (``_MARGIN`` slots each side) -> public ``(B,)``: the margins join bins 0 and B-1."""
    out = internal[_MARGIN : _MARGIN + nbins].copy()
    out[0] += internal[:_MARGIN].sum()
    out[-1] += internal[_MARGIN + nbins :].sum()
    return out


def _check_shard(shard: Any) -> tuple[int, int]:
    try:
        rank, world = (int(v) for v in shard)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shard must be (rank, world_size), got {shard!r}") from exc
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard must satisfy 0 <= rank < world_size, got {shard!r}")
    return rank, world
