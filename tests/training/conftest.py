"""Helpers shared by the training tests."""

from __future__ import annotations

import pytest

from massface.training.config import config_from_dict, config_to_dict


def make_tiny_config(out, **train):
    return config_from_dict({
        "seed": 3,
        "output_dir": str(out),
        "data": {"format": "synthetic", "synthetic_identities": 12, "synthetic_images_per_identity": 4,
                 "p": 4, "k": 2, "workers": 0, "transform": "none", "synthetic_image_size": 32},
        "model": {"backbone": "mobilefacenet", "embedding_size": 32, "input_size": 32},
        "loss": {"triplet": {"miner": "min_max", "margin": 0.25},
                 "head": {"name": "cosface", "m": 0.25, "weight": 0.5}},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"kind": "cosine", "warmup_steps": 1},
        "train": {"steps": 5, "log_every": 1, "checkpoint_every": 2, **train},
    })


def make_mode_config(out, mode, steps=3, **mining):
    data = config_to_dict(make_tiny_config(out, steps=steps))
    data["mining"] = {"mode": mode, **mining}
    return config_from_dict(data)


@pytest.fixture
def tiny_config():
    """``tiny_config(out, **train)``: a five-step synthetic run (mobilefacenet 32-d, min_max triplets + half
    CosFace) writing to ``out``; ``train`` overrides keys of the ``train`` section."""
    return make_tiny_config


@pytest.fixture
def mode_config():
    """``mode_config(out, mode, steps=3, **mining)``: ``tiny_config`` with ``mining.mode = mode``."""
    return make_mode_config
