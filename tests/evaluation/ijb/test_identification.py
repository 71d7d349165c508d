"""evaluation.ijb.identification: open-set 1:N identification and CMC."""

from __future__ import annotations

import numpy as np
import pytest

from massface.evaluation.ijb import (
    identify,
)

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



def test_identify_open_set_and_cmc():
    # gallery subjects 10, 20, 30 with one template each; probe feats chosen by hand
    templates = np.array([1, 2, 3, 11, 12, 13, 14])
    g = np.eye(3, dtype=np.float32)
    probes = np.array(
        [
            [0.9, 0.1, 0.0],  # subj 10: rank 1, score .9
            [0.5, 0.6, 0.0],  # subj 10: rank 2 (20 beats it)
            [0.0, 0.0, 0.7],  # subj 30: rank 1, score .7
            [0.0, 0.8, 0.0],  # subj 99 (non-mated), top-1 score .8
        ],
        dtype=np.float32,
    )
    feats = np.vstack([g, probes])
    out = identify(
        templates,
        feats,
        {"G": (np.array([1, 2, 3]), np.array([10, 20, 30]))},
        (np.array([11, 12, 13, 14]), np.array([10, 10, 30, 99])),
        fpir_targets=(1.0,),
        ranks=(1, 2),
    )
    assert out["cmc"] == {1: pytest.approx(2 / 3), 2: pytest.approx(1.0)}
    # one non-mated search: th = 0.8; only probe 0 (0.9 > 0.8, rank 1) passes
    assert out["tpir"][1.0] == pytest.approx(1 / 3)
    assert out["galleries"]["G"]["non_mated"] == 1



def test_identify_two_galleries_mean_tpir_and_pooled_cmc():
    # G1 enrols subjects 1, 2; G2 enrols 3, 4; probes of subjects 1 and 3 are mated in one gallery each
    g = np.eye(4, dtype=np.float32)
    probes = np.array([[0.9, 0.2, 0, 0], [0, 0, 0.3, 0.6]], dtype=np.float32)  # p0 -> subj 1, p1 -> subj 3
    templates = np.arange(6)
    feats = np.vstack([g, probes])
    out = identify(
        templates, feats,
        {"G1": (np.array([0, 1]), np.array([1, 2])), "G2": (np.array([2, 3]), np.array([3, 4]))},
        (np.array([4, 5]), np.array([1, 3])),
        fpir_targets=(1.0,), ranks=(1, 2),
    )
    # G1: p0 mated, rank 1, score .9; non-mated p1 top-1 = 0 -> tpir 1.  G2: p1 rank 2 -> tpir 0
    assert out["galleries"]["G1"]["tpir"][1.0] == 1.0 and out["galleries"]["G2"]["tpir"][1.0] == 0.0
    assert out["tpir"][1.0] == 0.5
    assert out["cmc"] == {1: 0.5, 2: 1.0}
