"""evaluation.runner: the old module warns and re-exports the names now in embedding, models and verification_sets."""

from __future__ import annotations

import importlib
import sys

import pytest


def test_runner_shim_warns_and_reexports() -> None:
    sys.modules.pop("massface.evaluation.runner", None)
    with pytest.warns(DeprecationWarning, match="massface.evaluation.runner is deprecated"):
        runner = importlib.import_module("massface.evaluation.runner")
    from massface.evaluation import embedding, models, verification_sets

    assert runner.load_model is models.load_model and runner.is_torchscript is models.is_torchscript
    assert runner.OnnxModel is models.OnnxModel
    assert runner.embed_images is embedding.embed_images and runner.embed_batch is embedding.embed_batch
    for name in ("evaluate_bin", "evaluate_bins", "evaluate_lfw_pairs", "evaluate_images", "find_bins", "KNOWN_SETS"):
        assert getattr(runner, name) is getattr(verification_sets, name)
