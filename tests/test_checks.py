"""massface._checks: every positive-int argument is validated with one message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from massface.mining import (
    BatchHardestMiner,
    TripletPoolBuilder,
    pack_triplets,
)
from massface.sampling import PKSampler


# ---------------------------------------------------------------- one validator
def test_positive_int_arguments_share_one_message() -> None:
    labels = [0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"^k must be a positive int for PKSampler, got 0$"):
        PKSampler(labels, 1, 0)
    with pytest.raises(ValueError, match=r"^seed must be an int >= 0 for PKSampler, got -1$"):
        PKSampler(labels, 1, 2, seed=-1)
    with pytest.raises(ValueError, match=r"^rank must be an int in \[0, 1\] for PKSampler, got 2$"):
        PKSampler(labels, 1, 2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match=r"^triplets_per_batch must be a positive int for pack_triplets"):
        pack_triplets(torch.zeros(1), torch.zeros(1), torch.zeros(1), 0)
    with pytest.raises(ValueError, match=r"^batch_size must be an int >= 3 for TripletPoolBuilder"):
        TripletPoolBuilder(BatchHardestMiner(), batch_size=2)
    assert PKSampler(labels, 1, 2, seed=np.int64(3)).seed == 3  # numpy integers are integers
