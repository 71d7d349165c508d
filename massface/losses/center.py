"""Center loss (Wen et al., "A Discriminative Feature Learning Approach for Deep Face Recognition", ECCV 2016)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from massface._checks import check_int, check_real
from massface._deprecation import warn_renamed
from massface._stats import LazyStats
from massface.distances import compute_dtype
from massface.losses._numerics import connected_zero

__all__ = ["CenterLoss"]

CenterUpdate = Literal["paper", "gradient"]


def _sizes_from_old_call(args: tuple[int, ...], embedding_size: int | None, num_classes: int | None,
                         dim: int | None) -> tuple[object, object]:
    """``(embedding_size, num_classes)`` from a call in either convention (see :class:`CenterLoss`)."""
    if dim is not None:
        if embedding_size is not None:
            raise TypeError("CenterLoss: give embedding_size or its old name dim, not both")
        warn_renamed("CenterLoss(dim=...)", "CenterLoss(embedding_size=...)", stacklevel=4)
        embedding_size = dim
    if args:
        if len(args) > 2 or embedding_size is not None or num_classes is not None:
            raise TypeError(f"CenterLoss takes embedding_size and num_classes by keyword; got {len(args)} "
                            "positional argument(s) besides keywords")
        if len(args) == 1:
            raise TypeError("CenterLoss: pass embedding_size= and num_classes= by keyword (one positional "
                            "argument cannot be read in either order)")
        warn_renamed("CenterLoss(num_classes, dim) by position",
                     "CenterLoss(embedding_size=..., num_classes=...) (positional arguments are read in the old "
                     "order for this release only; the next release takes (embedding_size, num_classes) like "
                     "every head)", stacklevel=4)
        num_classes, embedding_size = args
    if embedding_size is None or num_classes is None:
        raise TypeError("CenterLoss needs embedding_size= and num_classes=")
    return embedding_size, num_classes


class CenterLoss(LazyStats, nn.Module):
    """L_C = mean_i ½‖x_i − c_{y_i}‖² over the samples with label ≥ 0 (label -1 = ignored).

    Two ways to move the centres:

    - ``update="paper"`` (default): centres are a buffer, updated after each training forward with the paper's
      rule c_j ← c_j − α·Σ_{i: y_i = j}(c_j − x_i) / (1 + n_j); the loss has no gradient w.r.t. the centres.
    - ``update="gradient"``: centres are a Parameter learned by the optimizer (the common PyTorch port).

    Follows PML's call, ``loss(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None)``, so it
    fits ``JointLoss`` / ``MultipleLosses`` as the metric part (it is usually joined with a softmax head,
    weight λ ≈ 0.003–0.01). ``indices_tuple`` is ignored (every labelled sample is pulled to its centre).
    ``normalize=True`` works on L2-normalised embeddings. Time and memory O(B·d).

    Embeddings of any float dtype are scored in float32 or wider (float64 stays float64), and so is the loss.
    A batch without a labelled sample gives an exact 0 connected to the graph (zero gradient), whatever the
    embeddings hold; NaN / Inf embeddings of labelled samples give a non-finite loss.

    Construction: ``CenterLoss(embedding_size=512, num_classes=10_000)``, the order of every owner of class
    centres. For this release the sizes are keyword-only: the old positional call ``CenterLoss(num_classes,
    dim)`` is still read in its *old* order, with a DeprecationWarning (a positional call cannot be told apart,
    so it never silently swaps), and ``dim=`` is the deprecated name of ``embedding_size=``. The next release
    takes ``(embedding_size, num_classes)`` by position. ``centers`` has shape (num_classes, embedding_size).
    After a call, ``stats`` holds ``{"loss": float}`` (read lazily).
    """

    def __init__(self, *args: int, embedding_size: int | None = None, num_classes: int | None = None,
                 alpha: float = 0.5, update: CenterUpdate = "paper", normalize: bool = False,
                 dim: int | None = None) -> None:
        super().__init__()
        sizes = _sizes_from_old_call(args, embedding_size, num_classes, dim)
        size = check_int("embedding_size", sizes[0], "CenterLoss")
        num_classes = check_int("num_classes", sizes[1], "CenterLoss")
        if update not in ("paper", "gradient"):
            raise ValueError(f"update={update!r} is not allowed for CenterLoss; allowed: 'paper', 'gradient'")
        if update == "paper":
            alpha = check_real("alpha", alpha, "CenterLoss", low=0.0, high=1.0, low_open=True,
                               note="the centre learning rate")
        self.num_classes, self.embedding_size, self.alpha = num_classes, size, float(alpha)
        self.update, self.normalize = update, bool(normalize)
        centers = torch.randn(num_classes, size) * 0.01
        if update == "gradient":
            self.centers = nn.Parameter(centers)
        else:
            self.register_buffer("centers", centers)

    @property
    def dim(self) -> int:
        """Old name of ``embedding_size``."""
        return self.embedding_size

    def extra_repr(self) -> str:
        return (f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, update={self.update}, "
                f"alpha={self.alpha}")

    def forward(self, embeddings: Tensor, labels: Tensor, indices_tuple: object = None,
                ref_emb: Tensor | None = None, ref_labels: Tensor | None = None) -> Tensor:
        """½‖x − c_y‖² averaged over the labelled samples; O(B·d)."""
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("CenterLoss: ref_emb / ref_labels are not supported (the centres are the reference)")
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"CenterLoss: embeddings must have shape (batch, {self.embedding_size}); got "
                             f"{tuple(embeddings.shape)}")
        if (not isinstance(labels, Tensor) or labels.shape != embeddings.shape[:1]
                or labels.is_floating_point() or labels.dtype == torch.bool):
            raise ValueError(f"CenterLoss: labels must be an integer tensor of shape ({embeddings.shape[0]},)")
        if labels.numel() and (int(labels.min()) < -1 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"CenterLoss: labels must lie in [-1, {self.num_classes}) (-1 = ignored); got "
                             f"min {int(labels.min())}, max {int(labels.max())}")
        labels = labels.to(device=embeddings.device, dtype=torch.long)
        keep = labels >= 0
        if not bool(keep.any()):
            self._record_stats(loss=0.0)
            return connected_zero(embeddings)
        x = embeddings.to(compute_dtype(embeddings.dtype, self.centers.dtype))
        x = F.normalize(x, dim=1) if self.normalize else x
        x, y = x[keep], labels[keep]
        centers = self.centers.to(x.dtype)
        loss = 0.5 * (x - centers[y]).pow(2).sum(dim=1).mean()
        if self.update == "paper" and self.training:
            self._paper_update(x.detach(), y)
        self._record_stats(loss=loss.detach())
        return loss

    @torch.no_grad()
    def _paper_update(self, x: Tensor, y: Tensor) -> None:
        """c_j ← c_j − α·Σ_{i: y_i=j}(c_j − x_i)/(1 + n_j), vectorised with index_add."""
        diff = self.centers[y] - x.to(self.centers.dtype)
        total = torch.zeros_like(self.centers).index_add_(0, y, diff)
        count = torch.zeros(self.num_classes, dtype=self.centers.dtype, device=y.device)
        count.index_add_(0, y, torch.ones_like(y, dtype=self.centers.dtype))
        self.centers.sub_(self.alpha * total / (1.0 + count).unsqueeze(1))
