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


def _plain_ijb_1n(p, ps, g, gs, far):
    """The older ijb_1n.py rule written out: joined gallery, tau from every non-mate similarity."""
    sim = p @ g.T
    nonmate = np.sort(sim[ps[:, None] != gs[None, :]])[::-1]
    k = int(np.ceil(len(p) * far))
    th = nonmate[k - 1]
    mated = np.isin(ps, gs)
    mate = np.array([sim[i, gs == ps[i]].max() if mated[i] else -np.inf for i in range(len(p))])
    return (mated & (mate > th)).sum() / mated.sum()


def test_identify_older_ijb_1n_definition_joins_galleries_and_drops_the_rank_condition():
    g = np.eye(3, dtype=np.float32)
    probes = np.array([[0.9, 0.1, 0.0], [0.5, 0.6, 0.0], [0.0, 0.0, 0.7], [0.0, 0.8, 0.0]], dtype=np.float32)
    templates = np.array([1, 2, 3, 11, 12, 13, 14])
    galleries = {"G1": (np.array([1, 2]), np.array([10, 20])), "G2": (np.array([3]), np.array([30]))}
    probe_ids = (np.array([11, 12, 13, 14]), np.array([10, 10, 30, 99]))
    out = identify(templates, np.vstack([g, probes]), galleries, probe_ids, fpir_targets=(0.25, 0.5),
                   ranks=(1,), definition="ijb_1n")
    assert out["definition"] == "ijb_1n" and list(out["galleries"]) == ["G1+G2"]
    # non-mate similarities, largest first: .8 (p3-20), .6 (p1-20), .1, ... ; far .25 -> tau .8: only p0 (.9)
    assert out["tpir"][0.25] == pytest.approx(1 / 3)
    # far .5 -> 2nd largest, tau .6: p0 (.9) and p2 (.7) pass; p1's mate .5 fails -- no rank condition either way
    assert out["tpir"][0.5] == pytest.approx(2 / 3)
    assert identify(templates, np.vstack([g, probes]), galleries, probe_ids)["definition"] == "fpir"
    with pytest.raises(ValueError, match="definition must be"):
        identify(templates, np.vstack([g, probes]), galleries, probe_ids, definition="nist")


def test_identify_ijb_1n_matches_a_plain_implementation_across_chunks():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(12, 8)).astype(np.float32)
    p = rng.normal(size=(40, 8)).astype(np.float32)
    gs, ps = np.arange(12) % 6, rng.integers(0, 8, 40)
    templates = np.arange(52)
    galleries = {"A": (templates[:6], gs[:6]), "B": (templates[6:12], gs[6:12])}
    for far in (0.01, 0.1, 0.3):
        out = identify(templates, np.vstack([g, p]), galleries, (templates[12:], ps), fpir_targets=(far,),
                       chunk=7, definition="ijb_1n")
        assert out["tpir"][far] == pytest.approx(_plain_ijb_1n(p, ps, g, gs, far))
