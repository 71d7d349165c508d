"""Two small torch idioms every layer needs, written once.

* :func:`eval_mode` — a context manager that puts modules in ``eval()`` mode (and, by default, disables
  autograd) and restores each module's own ``training`` flag afterwards, even on error.
* :func:`freeze_batchnorm` — put every BatchNorm layer of a module in eval mode (running statistics frozen)
  while the rest trains; their affine weights still receive gradients.
* :func:`to_numpy` — a tensor (any device, any dtype, with or without grad), array or sequence as a numpy array.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["eval_mode", "freeze_batchnorm", "to_numpy"]


@contextlib.contextmanager
def eval_mode(*modules: Any, no_grad: bool = True) -> Iterator[None]:
    """Run the block with every ``nn.Module`` in ``modules`` in eval mode (others, e.g. an ONNX session, are
    ignored) and, with ``no_grad``, under ``torch.inference_mode``; each module's ``training`` flag is restored.
    """
    nets = [m for m in modules if isinstance(m, nn.Module)]
    flags = [m.training for m in nets]
    for m in nets:
        m.eval()
    try:
        with torch.inference_mode() if no_grad else contextlib.nullcontext():
            yield
    finally:
        for m, flag in zip(nets, flags):
            m.train(flag)


def freeze_batchnorm(module: nn.Module) -> int:
    """Put every ``BatchNorm1d/2d/3d`` (and SyncBatchNorm) inside ``module`` in eval mode; returns how many.
    Call it after each ``module.train()``, which would switch them back."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)


def to_numpy(x: Any, dtype: np.dtype | type | None = None) -> np.ndarray:
    """``x`` as a numpy array: tensors are detached and moved to the CPU (bfloat16 goes through float32, which
    numpy lacks); ``dtype`` converts the result. O(size)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.float()
        x = x.cpu().numpy()
    arr = np.asarray(x)
    return arr if dtype is None or arr.dtype == dtype else arr.astype(dtype)
