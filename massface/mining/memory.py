"""Cross-batch memory (XBM): a FIFO queue of recent detached embeddings mined against as extra references.

Wang et al., "Cross-Batch Memory for Embedding Learning" (CVPR 2020): embeddings drift slowly once training
has warmed up, so the embeddings of the last few thousand images are nearly what the current model would
give, and a batch can be mined against all of them — many more negatives than one P×K batch holds — at the
cost of one (B × (B + M)) distance matrix instead of re-embedding anything.

At every call the reference set is the *current batch first* (live, with gradient), then the memory
(detached, oldest to newest is irrelevant for mining):

    ref = [e_1 … e_B ; m_1 … m_M],        triplets mined for anchors e_i against ref, (i, i) excluded,

after which the batch is enqueued (its oldest entries dequeued once the memory is full). The current batch
is never compared with a stale copy of itself in the same step, and an anchor is never its own positive
(PML's ``CrossBatchMemory`` enqueues first and then removes the self comparisons; the result is the same).
Under DDP, give the memory the batch gathered from all ranks (massface's trainer does): every rank then
enqueues the same rows in the same order and the queues stay identical (PML issue #639).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from massface._checks import check_int
from massface._deprecation import warn_renamed
from massface.mining.miners import TripletMiner, check_batch

__all__ = ["CrossBatchMemory"]


class CrossBatchMemory(nn.Module):
    """A triplet loss evaluated against the batch plus a FIFO memory of the last ``memory_size`` embeddings.

    Args:
        loss: a loss with PML's call ``loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)``
            (:class:`massface.losses.TripletLoss`, PML's ``TripletMarginLoss``, ...).
        miner: a :class:`~massface.mining.TripletMiner` (any preset); it mines the batch against
            ``[batch; memory]`` with self-pairs excluded. (For PML miners use PML's ``CrossBatchMemory``,
            which accepts massface miners too.)
        memory_size: M, the number of past embeddings kept.
        embedding_size: D, the width of the stored embeddings.
        start_after: calls during which the memory is filled but not used as reference (XBM's warm-up: the
            paper starts the memory after the embeddings have stabilised, ~1 K iterations).

    Call like a PML loss: ``xbm(embeddings, labels)`` returns the scalar loss and enqueues the batch. The
    memory is held in buffers (``memory_embeddings``, ``memory_labels``, ``write_position``, ``num_filled``,
    ``calls``), so ``state_dict()`` saves and restores it exactly. :meth:`contents` gives the stored rows
    oldest first; :meth:`reset` empties it; :meth:`mine_with_reference` mines without scoring or enqueuing.
    ``stats`` (computed on access) holds ``memory_filled``, ``memory_active`` and the miner's statistics.

    Cost per call for a batch of B: mining over a B × (B + M) matrix (see the miner), O(B·D) to enqueue,
    and M·D floats of memory.
    """

    def __init__(self, loss: Callable[..., Tensor], miner: TripletMiner, memory_size: int, embedding_size: int,
                 *, start_after: int = 0) -> None:
        super().__init__()
        if not isinstance(miner, TripletMiner):
            raise TypeError(f"CrossBatchMemory needs a massface TripletMiner (it excludes self-pairs against the "
                            f"memory), got {type(miner).__name__}")
        memory_size = check_int("memory_size", memory_size, "CrossBatchMemory")
        embedding_size = check_int("embedding_size", embedding_size, "CrossBatchMemory")
        start_after = check_int("start_after", start_after, "CrossBatchMemory", low=0)
        self.loss, self.miner = loss, miner
        self.memory_size, self.embedding_size, self.start_after = memory_size, embedding_size, start_after
        self.register_buffer("memory_embeddings", torch.zeros(memory_size, embedding_size))
        self.register_buffer("memory_labels", torch.full((memory_size,), -1, dtype=torch.long))
        self.register_buffer("write_position", torch.zeros((), dtype=torch.long))
        self.register_buffer("num_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    @property
    def stats(self) -> dict[str, float]:
        """``memory_filled`` (rows stored), ``memory_active`` (1.0 once used as reference) and the miner's
        statistics of the last call, as floats; read on access (one device sync for the counters)."""
        return {"memory_filled": float(self.num_filled), "memory_active": float(self.active), **self.miner.stats}

    def extra_repr(self) -> str:
        return f"memory_size={self.memory_size}, embedding_size={self.embedding_size}, start_after={self.start_after}"

    # ------------------------------------------------------------------ queue
    @property
    def active(self) -> bool:
        """Whether the memory is used as reference on the next call (warm-up over)."""
        return int(self.calls) >= self.start_after

    def contents(self) -> tuple[Tensor, Tensor]:
        """The stored ``(embeddings, labels)``, oldest first (a copy)."""
        filled, pos = int(self.num_filled), int(self.write_position)
        if filled < self.memory_size:
            return self.memory_embeddings[:filled].clone(), self.memory_labels[:filled].clone()
        order = (torch.arange(self.memory_size, device=self.memory_labels.device) + pos) % self.memory_size
        return self.memory_embeddings[order], self.memory_labels[order]

    def reset(self) -> None:
        """Empty the memory (and restart the warm-up count)."""
        self.memory_labels.fill_(-1)
        self.write_position.zero_()
        self.num_filled.zero_()
        self.calls.zero_()

    @torch.no_grad()
    def enqueue(self, embeddings: Tensor, labels: Tensor) -> None:
        """Append detached rows at the write position, overwriting the oldest once full (O(B·D)).

        A batch larger than the memory keeps only its last ``memory_size`` rows. Rows holding NaN / Inf are
        not stored: mined against, they would be no candidate anyway, but a non-finite reference row turns
        the gradient of a whole distance-matrix product into NaN for as long as it stays in the queue.
        Dropping them is deterministic, so queues fed the same gathered batch stay identical across ranks.
        """
        embeddings = embeddings.detach()
        if embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"CrossBatchMemory holds {self.embedding_size}-d embeddings, got {embeddings.shape[1]}-d")
        embeddings = embeddings.to(self.memory_embeddings)  # (an overflow of the cast counts as non-finite)
        finite = torch.isfinite(embeddings).all(dim=1)
        if not bool(finite.all()):
            embeddings, labels = embeddings[finite], labels[finite.to(labels.device)]
        if embeddings.shape[0] > self.memory_size:
            embeddings, labels = embeddings[-self.memory_size:], labels[-self.memory_size:]
        b, pos = embeddings.shape[0], int(self.write_position)
        slots = (torch.arange(b, device=self.memory_labels.device) + pos) % self.memory_size
        self.memory_embeddings[slots] = embeddings
        self.memory_labels[slots] = labels.to(self.memory_labels)
        self.write_position.fill_((pos + b) % self.memory_size)
        self.num_filled.fill_(min(self.memory_size, int(self.num_filled) + b))

    def reference(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``([batch; memory], labels)``: the batch rows first (live), then the filled memory slots (detached);
        just the batch during warm-up. The reference has the wider of the batch's and the memory's dtypes."""
        filled = int(self.num_filled) if self.active else 0
        if filled == 0:
            return embeddings, labels
        memory = self.memory_embeddings[:filled]
        dtype = torch.promote_types(embeddings.dtype, memory.dtype)  # a 16-bit batch does not truncate the memory
        return (torch.cat([embeddings.to(dtype), memory.to(dtype)]),
                torch.cat([labels, self.memory_labels[:filled]]))

    # ------------------------------------------------------------------ loss
    def mine_with_reference(self, embeddings: Tensor,
                            labels: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor, Tensor]:
        """``((a, p, n), ref_emb, ref_labels)``: triplets of the batch against :meth:`reference`, no self-pairs;
        the memory is not changed. Cost: the miner's on a B × (B + M) matrix."""
        labels = check_batch(embeddings, labels)
        ref_emb, ref_labels = self.reference(embeddings, labels)
        self_index = torch.arange(embeddings.shape[0], device=embeddings.device)
        return self.miner(embeddings, labels, ref_emb, ref_labels, self_index=self_index), ref_emb, ref_labels

    def mine(self, embeddings: Tensor, labels: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor, Tensor]:
        """Deprecated name of :meth:`mine_with_reference` (``mine`` is PML's miner hook elsewhere)."""
        warn_renamed("CrossBatchMemory.mine", "CrossBatchMemory.mine_with_reference")
        return self.mine_with_reference(embeddings, labels)

    def forward(self, embeddings: Tensor, labels: Tensor, indices_tuple: Sequence[Tensor] | None = None,
                ref_emb: Tensor | None = None, ref_labels: Tensor | None = None) -> Tensor:
        """Mine against ``[batch; memory]`` (or use ``indices_tuple``, indexing that reference), score with
        the loss, then enqueue the batch; returns the scalar loss."""
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("CrossBatchMemory builds its own reference set; do not pass ref_emb / ref_labels")
        labels = check_batch(embeddings, labels)
        if indices_tuple is None:
            indices_tuple, ref, ref_y = self.mine_with_reference(embeddings, labels)
        else:
            ref, ref_y = self.reference(embeddings, labels)
        value = self.loss(embeddings, labels, indices_tuple, ref, ref_y)
        self.enqueue(embeddings, labels)
        self.calls.add_(1)
        return value
