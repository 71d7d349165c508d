"""Suite-wide settings: one intra-op thread (the suite runs on 2 shared cores, where OpenMP spinning
between two busy threads costs more than it gains) and a headless matplotlib backend."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
