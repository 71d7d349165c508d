"""Freezing a pretrained backbone's early stages for the first steps of a fine-tuning run.

``model.freeze_stages: k`` freezes the first ``k`` groups of the backbone's :meth:`~massface.backbones.layers.
EmbeddingNet.stages` -- the stem counts as the first, so ``1`` is the stem alone and ``len(stages())`` the whole
body (the embedding head still learns) -- until step ``model.freeze_steps`` (``None``: the whole run).

Frozen means: no gradient reaches them (their last unit's output is detached by a forward hook, so their
backward is not even computed and their parameters keep ``grad=None``, which SGD / Adam / AdamW skip: no
update, no weight decay, no momentum) and their BatchNorm layers run in eval mode (running statistics kept).
``requires_grad`` is left alone, so a DDP reducer built over every parameter stays valid when the stages are
released (the trainer builds DDP with ``find_unused_parameters=True`` for this). Whether a step is frozen
follows from the step number alone, so resumed runs freeze and release exactly where a straight run does.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from massface.training.config import ConfigError

__all__ = ["FrozenStages"]


class FrozenStages:
    """The first ``stages`` stage groups of ``model`` frozen while ``step < until`` (``until=None``: always).

    Call :meth:`apply` with the coming step after every ``model.train()``; it releases the stages (removes
    the hook) the first time the step reaches ``until``. Cost: O(frozen modules) per call.
    """

    def __init__(self, model: nn.Module, stages: int, until: int | None = None) -> None:
        groups = model.stages() if hasattr(model, "stages") else None
        if groups is None:
            raise ConfigError(f"model.freeze_stages: {type(model).__name__} has no stages() view")
        if not 1 <= stages <= len(groups):
            raise ConfigError(f"model.freeze_stages: {stages} is more than the {len(groups)} stage groups of "
                              f"{type(model).__name__} (the stem and {len(groups) - 1} stages)")
        self.stages, self.until = stages, until
        self.modules: list[nn.Module] = [unit for group in groups[:stages] for unit in group]
        self._hook: RemovableHandle | None = self.modules[-1].register_forward_hook(_detach)

    def frozen(self, step: int) -> bool:
        """Whether the stages are frozen at (0-based) ``step``."""
        return self.until is None or step < self.until

    def apply(self, step: int) -> bool:
        """Freeze (eval mode for the stages' modules) or, from ``until`` on, release; returns :meth:`frozen`."""
        if not self.frozen(step):
            if self._hook is not None:
                self._hook.remove()
                self._hook = None
            return False
        for module in self.modules:
            module.eval()
        return True


def _detach(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
    return output.detach()
