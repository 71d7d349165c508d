"""Training batches made of mined triplets (semi-online and offline modes).

Mining over a pool or a whole dataset gives T triplets ``(a, p, n)`` of *source* indices (rows of a pool,
items of a dataset). :func:`pack_triplets` shuffles them and cuts them into batches of
``triplets_per_batch`` triplets; a batch holds each of its images once (:class:`TripletBatch`), so it has at
most ``3 · triplets_per_batch`` images and fewer when triplets share an anchor, positive or negative. The
triplets always stay whole — MassFace cut a flat index list into chunks of B indices, which broke triplets
apart unless B was a multiple of 3.

:class:`TripletBatchDataset` loads such batches from a map-style dataset, one batch per item, so a
``DataLoader(..., batch_size=None)`` with workers decodes them in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from massface._checks import check_int

__all__ = ["TripletBatch", "pack_triplets", "TripletBatchDataset", "collate_images"]


@dataclass(frozen=True)
class TripletBatch:
    """One training batch: the distinct source ``indices`` it needs, and its triplets as positions in them.

    The triplets of the batch are ``(indices[a], indices[p], indices[n])``.
    """

    indices: Tensor
    a: Tensor
    p: Tensor
    n: Tensor

    @property
    def num_triplets(self) -> int:
        """Triplets in the batch."""
        return int(self.a.numel())

    def triplets(self) -> tuple[Tensor, Tensor, Tensor]:
        """The triplets as source indices."""
        return self.indices[self.a], self.indices[self.p], self.indices[self.n]


def pack_triplets(
    a: Tensor,
    p: Tensor,
    n: Tensor,
    triplets_per_batch: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> list[TripletBatch]:
    """Shuffle the triplets and cut them into :class:`TripletBatch` es of ``triplets_per_batch`` each.

    Every triplet lands in exactly one batch (the last one may be short unless ``drop_last``). Each batch is
    de-duplicated with one ``torch.unique`` over its 3·t indices: O(T log t) in all.
    """
    t = check_int("triplets_per_batch", triplets_per_batch, "pack_triplets")
    a, p, n = (torch.as_tensor(x).long().reshape(-1) for x in (a, p, n))
    if not (a.numel() == p.numel() == n.numel()):
        raise ValueError(f"triplet index lengths differ: {a.numel()}, {p.numel()}, {n.numel()}")
    total = a.numel()
    if shuffle and total:
        if generator is None:
            raise ValueError("pack_triplets(shuffle=True) needs a torch.Generator (no global RNG is used)")
        order = torch.randperm(total, generator=generator, device=generator.device).to(a.device)
        a, p, n = a[order], p[order], n[order]
    stop = total - total % t if drop_last else total
    batches = []
    for s in range(0, stop, t):
        chunk = torch.cat([a[s : s + t], p[s : s + t], n[s : s + t]])
        indices, inverse = torch.unique(chunk, return_inverse=True)
        k = inverse.numel() // 3
        batches.append(TripletBatch(indices, inverse[:k], inverse[k : 2 * k], inverse[2 * k :]))
    return batches


def collate_images(items: Sequence[tuple[Any, Any]]) -> tuple[Tensor, Tensor]:
    """Stack ``(image, label)`` items into an image tensor and an int64 label tensor."""
    images = [torch.as_tensor(x) for x, _ in items]
    labels = torch.as_tensor([int(y) for _, y in items], dtype=torch.long)
    return torch.stack(images), labels


class TripletBatchDataset(Dataset):
    """Item i is batch i of ``batches`` read from ``source``: ``(images, labels, (a, p, n))`` with the triplets
    as row positions in ``images``.

    ``source`` is any map-style dataset of ``(image, label)`` (images already transformed to tensors).
    Use with ``DataLoader(TripletBatchDataset(...), batch_size=None, num_workers=w)``.
    """

    def __init__(self, source: Any, batches: Sequence[TripletBatch]) -> None:
        self.source, self.batches = source, list(batches)

    def __len__(self) -> int:
        """Batches (items)."""
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
        batch = self.batches[i]
        images, labels = collate_images([self.source[int(j)] for j in batch.indices.tolist()])
        return images, labels, (batch.a, batch.p, batch.n)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]]:
        for i in range(len(self)):
            yield self[i]
