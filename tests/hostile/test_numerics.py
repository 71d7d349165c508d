"""Hostile and careless numerics: empty-set zeros, every float dtype, argument ranges, NaN / Inf embeddings,
scale-safe verification (issue 12)."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch

from massface.evaluation.verification import evaluate_distances, evaluate_pairs, pair_distances
from massface.losses import (
    AdaFace,
    ArcFace,
    CenterLoss,
    CombinedMargin,
    CosFace,
    CurricularFace,
    JointLoss,
    MagFace,
    NormFace,
    PartialFC,
    Softmax,
    SphereFace,
    SubCenterArcFace,
    TripletLoss,
)
from massface.mining import (
    BatchAllMiner,
    BatchHardestMiner,
    CrossBatchMemory,
    OfflineTripletSearch,
    SemiHardMiner,
    TripletMiner,
    TripletPoolBuilder,
)
from massface.mining.miners import PRESETS

D, C = 8, 5
LABELS = torch.arange(4).repeat_interleave(4)  # P = 4 identities × K = 4
LOW = (torch.float16, torch.bfloat16, torch.float64)


def embeddings(n: int = 16, dim: int = D, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * scale


def assert_valid_triplets(out, labels, ref_labels=None, banned=()):
    ref_labels = labels if ref_labels is None else ref_labels
    a, p, n = out
    assert all(t.dtype == torch.int64 for t in out) and a.numel() == p.numel() == n.numel()
    if a.numel():
        assert bool((labels[a] == ref_labels[p]).all()) and bool((labels[a] != ref_labels[n]).all())
    for row in banned:
        assert not bool(((a == row) | (p == row) | (n == row)).any()), f"row {row} was mined"


def triplet_set(out):
    return set(zip(*(t.tolist() for t in out)))


# ============================================================================= 1. exact zeros
NON_FINITE_OR_OVERFLOWING = {
    "fp16 sum overflows": lambda: torch.full((8, 4), 60000.0, dtype=torch.float16),
    "bf16 sum overflows": lambda: torch.full((8, 4), 3e38, dtype=torch.bfloat16),
    "fp32 sum overflows": lambda: torch.full((8, 4), 3e38),
    "fp32 holds inf": lambda: torch.tensor([[math.inf, 0.0, 1.0, 0.0]] * 8),
    "fp32 holds NaN": lambda: torch.tensor([[math.nan, 0.0, 1.0, 0.0]] * 8),
    "fp64 sum overflows": lambda: torch.full((8, 4), 1e308, dtype=torch.float64),
}


@pytest.mark.parametrize("case", list(NON_FINITE_OR_OVERFLOWING))
def test_empty_triplet_loss_is_an_exact_zero_with_exact_zero_gradient(case: str) -> None:
    e = NON_FINITE_OR_OVERFLOWING[case]().requires_grad_()
    ref = NON_FINITE_OR_OVERFLOWING[case]().requires_grad_()
    distinct = torch.arange(8)  # no positive pair: no triplet
    assert not bool(torch.isfinite(e.detach().sum()))  # the old ``emb.sum() * 0`` was NaN on all of these
    for loss in (TripletLoss()(e, distinct), TripletLoss()(e, distinct, None, ref, distinct + 100)):
        assert loss.item() == 0.0 and loss.dtype == (torch.float64 if e.dtype == torch.float64 else torch.float32)
        loss.backward()
    for t in (e, ref):
        assert t.grad is not None and t.grad.dtype == t.dtype and bool((t.grad == 0).all())


def test_empty_parts_of_every_other_loss_are_exact_zeros() -> None:
    x = torch.full((4, D), 60000.0, dtype=torch.float16, requires_grad=True)  # finite, sums overflow fp16
    unlabelled = torch.full((4,), -1)
    losses = [
        CenterLoss(embedding_size=D, num_classes=C)(x, unlabelled),
        CenterLoss(embedding_size=D, num_classes=C, normalize=True, update="gradient")(x, unlabelled),
        CosFace(D, C).loss(x, unlabelled),
        SphereFace(D, C).loss(x, unlabelled),  # logits scaled by ‖x‖ = 1.2e5: their sum overflows too
        Softmax(D, C).loss(x, unlabelled),
        PartialFC(ArcFace(D, C)).loss(x, unlabelled),
        JointLoss(CenterLoss(embedding_size=D, num_classes=C), CosFace(D, C))(x, unlabelled),
        CrossBatchMemory(TripletLoss(), BatchAllMiner(), 16, D)(x, torch.arange(4)),
    ]
    for loss in losses:
        assert loss.item() == 0.0 and loss.dtype == torch.float32
        loss.backward()
    assert bool((x.grad == 0).all())


def test_triplets_touching_non_finite_embeddings_give_a_non_finite_loss() -> None:
    e = embeddings()
    e[0, 0] = math.nan
    idx = (torch.tensor([0, 4]), torch.tensor([1, 5]), torch.tensor([8, 9]))
    assert not torch.isfinite(TripletLoss()(e, LABELS, idx))  # documented: the trainer skips such steps


# ============================================================================= 2. dtypes
HEADS = {
    "Softmax": lambda: Softmax(D, C),
    "NormFace": lambda: NormFace(D, C),
    "SphereFace": lambda: SphereFace(D, C),
    "SphereFace_s": lambda: SphereFace(D, C, s=30.0),
    "CosFace": lambda: CosFace(D, C),
    "ArcFace": lambda: ArcFace(D, C),
    "CombinedMargin": lambda: CombinedMargin(D, C, m1=1.2),
    "SubCenterArcFace": lambda: SubCenterArcFace(D, C),
    "CurricularFace": lambda: CurricularFace(D, C),
    "AdaFace": lambda: AdaFace(D, C),
    "MagFace": lambda: MagFace(D, C),
    "PartialFC": lambda: PartialFC(CosFace(D, C), sample_rate=0.6),
    "CenterLoss": lambda: CenterLoss(embedding_size=D, num_classes=C),
}


def _score(module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logits of a head, the loss of PartialFC / CenterLoss."""
    return module(x, y)


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", list(HEADS))
def test_heads_accept_every_float_dtype_and_match_float32(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    head = HEADS[name]().eval()  # eval: no running state moves between the two calls, PartialFC samples none
    x = (embeddings(12, seed=1) * 100).to(dtype)  # ‖x‖² ≈ 8e4: in float16 the squared norm would overflow
    y = torch.tensor([0, 1, 2, 3, 4, -1] * 2)
    got = _score(copy.deepcopy(head), x, y)
    want = _score(copy.deepcopy(head), x.float(), y)  # float32 on the very same values
    if dtype == torch.float64:
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want.double(), rtol=1e-4, atol=1e-3)
    else:
        assert got.dtype == torch.float32
        assert torch.equal(got, want), "16-bit input must be computed exactly as its float32 upcast"
    xg = x.detach().clone().requires_grad_()
    trained = copy.deepcopy(head).train()
    loss = trained(xg, y) if isinstance(trained, (PartialFC, CenterLoss)) else trained.loss(xg, y)
    loss.backward()
    assert torch.isfinite(loss) and xg.grad.dtype == dtype and bool(torch.isfinite(xg.grad).all())
    weight = getattr(trained, "weight", None)
    if isinstance(weight, torch.nn.Parameter):
        assert weight.grad.dtype == torch.float32 and bool(torch.isfinite(weight.grad).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", ["Softmax", "SphereFace", "ArcFace", "AdaFace", "PartialFC", "CenterLoss"])
def test_heads_under_cpu_bf16_autocast(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    head = HEADS[name]()
    x = (embeddings(12, seed=2) * 5).to(dtype).requires_grad_()
    y = torch.tensor([0, 1, 2, 3, 4, -1] * 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = head(x, y) if isinstance(head, (PartialFC, CenterLoss)) else head.loss(x, y)
    loss.backward()
    assert torch.isfinite(loss) and loss.dtype in (torch.float32, torch.float64)
    assert bool(torch.isfinite(x.grad).all())


def test_float64_head_weight_with_float32_embeddings() -> None:
    torch.manual_seed(0)
    head = ArcFace(D, C).eval()
    x, y = embeddings(6, seed=12), torch.tensor([0, 1, 2, 3, 4, 0])
    want = head(x, y)
    head64 = copy.deepcopy(head).double()
    got = head64(x, y)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want.double(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(head64(x.half(), y), head(x.half().double(), y).double(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("preset", list(PRESETS))
def test_miners_accept_every_float_dtype_and_match_float32(preset: str, dtype: torch.dtype) -> None:
    x = (embeddings(seed=3) * 300).to(dtype)  # |x|² ≈ 7e5: a float16 norm would overflow to inf
    got = PRESETS[preset]()(x, LABELS)
    want = PRESETS[preset]()(x.float(), LABELS)  # same values in float32 (deterministic data: no near-ties)
    assert all(t.dtype == torch.int64 for t in got)
    assert triplet_set(got) == triplet_set(want) and len(got[0]) > 0


MIXED = [(torch.float16, torch.float32), (torch.float32, torch.float16), (torch.float64, torch.float32),
         (torch.bfloat16, torch.float64), (torch.float16, torch.bfloat16)]


@pytest.mark.parametrize("query_dtype, ref_dtype", MIXED, ids=lambda d: str(d).replace("torch.", ""))
def test_miners_and_triplet_loss_mix_query_and_reference_dtypes(query_dtype, ref_dtype) -> None:
    q, r = embeddings(seed=4).to(query_dtype), embeddings(24, seed=5).to(ref_dtype)
    ref_labels = torch.arange(6).repeat_interleave(4)
    wide = torch.promote_types(torch.promote_types(query_dtype, ref_dtype), torch.float32)
    for preset, cls in PRESETS.items():
        got = cls()(q, LABELS, r, ref_labels)
        want = cls()(q.to(wide), LABELS, r.to(wide), ref_labels)
        assert triplet_set(got) == triplet_set(want), preset
        assert_valid_triplets(got, LABELS, ref_labels)
    qg = q.detach().clone().requires_grad_()
    loss = TripletLoss()(qg, LABELS, None, r, ref_labels)
    loss.backward()
    assert loss.dtype == wide and torch.isfinite(loss) and qg.grad.dtype == query_dtype


def test_miners_under_cpu_bf16_autocast_and_memory_modes_with_16_bit_batches() -> None:
    lin = torch.nn.Linear(D, D)
    x = embeddings(seed=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lin(x)
        assert out.dtype == torch.bfloat16
        for cls in PRESETS.values():
            assert_valid_triplets(cls()(out, LABELS), LABELS)
        loss = TripletLoss()(out, LABELS)
    loss.backward()
    assert torch.isfinite(loss) and bool(torch.isfinite(lin.weight.grad).all())
    xbm = CrossBatchMemory(TripletLoss(), BatchHardestMiner(), 32, D)
    for step in range(3):
        value = xbm(embeddings(seed=10 + step).half().requires_grad_(), LABELS)
        assert torch.isfinite(value)
    offline = OfflineTripletSearch(BatchHardestMiner(), neighbours=4)
    for dtype in LOW:
        assert_valid_triplets(offline.mine_triplets(embeddings(seed=7).to(dtype), LABELS).as_tuple(), LABELS)


# ============================================================================= 3. argument ranges
BAD_ARGUMENTS = [
    ("margin", "TripletLoss", lambda: TripletLoss(margin=-1)),
    ("margin", "TripletLoss", lambda: TripletLoss(margin=math.nan)),
    ("margin", "TripletLoss", lambda: TripletLoss(margin=math.inf)),
    ("margin", "TripletLoss", lambda: TripletLoss(margin="0.2")),
    ("margin", "BatchAllMiner", lambda: BatchAllMiner(margin=-1)),
    ("margin", "SemiHardMiner", lambda: SemiHardMiner(margin=-0.01)),
    ("margin", "BatchHardestMiner", lambda: BatchHardestMiner(margin=math.nan)),
    ("max_triplets", "TripletMiner", lambda: TripletMiner(max_triplets=0)),
    ("max_triplets", "TripletMiner", lambda: TripletMiner(max_triplets=True)),
    ("max_triplets", "TripletMiner", lambda: TripletMiner(max_triplets=2.5)),
    ("m", "ArcFace", lambda: ArcFace(D, C, m=1000)),
    ("m", "ArcFace", lambda: ArcFace(D, C, m=math.pi / 2)),
    ("m", "ArcFace", lambda: ArcFace(D, C, m=-0.1)),
    ("m", "CosFace", lambda: CosFace(D, C, m=1000)),
    ("m", "CosFace", lambda: CosFace(D, C, m=-0.35)),
    ("m", "SphereFace", lambda: SphereFace(D, C, m=0)),
    ("m", "SphereFace", lambda: SphereFace(D, C, m=1000)),
    ("m", "CurricularFace", lambda: CurricularFace(D, C, m=2.0)),
    ("m", "AdaFace", lambda: AdaFace(D, C, m=1000)),
    ("h", "AdaFace", lambda: AdaFace(D, C, h=0.0)),
    ("m1", "CombinedMargin", lambda: CombinedMargin(D, C, m1=0.0)),
    ("m2", "CombinedMargin", lambda: CombinedMargin(D, C, m2=2.0)),
    ("m3", "CombinedMargin", lambda: CombinedMargin(D, C, m3=-0.2)),
    ("u_a", "MagFace", lambda: MagFace(D, C, l_a=10.0, u_a=5.0)),
    ("u_m", "MagFace", lambda: MagFace(D, C, l_m=0.45, u_m=0.1)),
    ("k", "SubCenterArcFace", lambda: SubCenterArcFace(D, C, k=0)),
    ("alpha", "CurricularFace", lambda: CurricularFace(D, C, alpha=0.0)),
    ("s", "ArcFace", lambda: ArcFace(D, C, s=0.0)),
    ("s", "CosFace", lambda: CosFace(D, C, s=-64.0)),
    ("s", "NormFace", lambda: NormFace(D, C, s=math.inf)),
    ("num_classes", "ArcFace", lambda: ArcFace(D, 0)),
    ("embedding_size", "CosFace", lambda: CosFace(-1, C)),
    ("num_classes", "Softmax", lambda: Softmax(D, 2.5)),
    ("num_classes", "CenterLoss", lambda: CenterLoss(embedding_size=D, num_classes=0)),
    ("embedding_size", "CenterLoss", lambda: CenterLoss(embedding_size=True, num_classes=C)),
    ("alpha", "CenterLoss", lambda: CenterLoss(embedding_size=D, num_classes=C, alpha=0.0)),
    ("sample_rate", "PartialFC", lambda: PartialFC(CosFace(D, C), sample_rate=1.5)),
    ("metric_weight", "JointLoss", lambda: JointLoss(TripletLoss(), None, metric_weight=-1.0)),
    ("memory_size", "CrossBatchMemory", lambda: CrossBatchMemory(TripletLoss(), BatchAllMiner(), 0, D)),
    ("neighbours", "OfflineTripletSearch", lambda: OfflineTripletSearch(BatchAllMiner(), neighbours=0)),
]


@pytest.mark.parametrize("argument, owner, build", BAD_ARGUMENTS,
                         ids=[f"{o}-{a}-{i}" for i, (a, o, _) in enumerate(BAD_ARGUMENTS)])
def test_out_of_range_arguments_raise_a_value_error_that_starts_with_their_name(argument, owner, build) -> None:
    with pytest.raises(ValueError) as info:
        build()
    message = str(info.value)
    assert re.match(rf"{re.escape(argument)} must ", message), message
    assert owner in message and "got" in message, message


def test_range_message_wording_and_numpy_integers() -> None:
    with pytest.raises(ValueError, match=re.escape("m must be in [0, 1.5708) for ArcFace, got 1000")):
        ArcFace(D, C, m=1000)
    with pytest.raises(ValueError, match=re.escape("m must be in [0, 1] for CosFace, got 1.5")):
        CosFace(D, C, m=1.5)
    with pytest.raises(ValueError, match=re.escape("margin must be in [0, inf) for TripletLoss, got -1")):
        TripletLoss(margin=-1)
    head = ArcFace(np.int64(D), np.int64(C), s=np.float32(32.0), m=np.float64(0.5))  # careless but valid
    assert head.num_classes == C and isinstance(head.num_classes, int) and head.s == 32.0
    assert TripletLoss(margin=0).margin == 0.0 and CosFace(D, C, m=0.0).m == 0.0  # boundaries allowed


# ============================================================================= 4. NaN / Inf embeddings
def _poisoned(kind: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    x = embeddings(seed=8)
    if kind == "nan row":
        x[3] = math.nan
        return x, (3,)
    if kind == "inf entry":
        x[5, 2] = math.inf
        return x, (5,)
    if kind == "fp16 overflow to inf":
        x = x.half()
        x[9] = x[9] * 60000  # entries beyond 65504 become ±inf
        return x, (9,)
    return torch.full((16, D), math.nan), tuple(range(16))  # "all nan"


@pytest.mark.parametrize("kind", ["nan row", "inf entry", "fp16 overflow to inf", "all nan"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_miners_do_not_crash_on_non_finite_embeddings(preset: str, kind: str) -> None:
    x, bad = _poisoned(kind)
    miner = PRESETS[preset]()
    out = miner(x, LABELS)
    assert_valid_triplets(out, LABELS, banned=bad)
    stats = miner.stats
    assert stats["num_triplets"] == len(out[0])
    if len(out[0]):
        assert math.isfinite(stats["mean_d_ap"]) and math.isfinite(stats["mean_d_an"])
    # as a reference set too
    out = miner(embeddings(seed=9), LABELS, x, LABELS)
    assert_valid_triplets(out, LABELS)
    assert not any(bool(((out[1] == r) | (out[2] == r)).any()) for r in bad)


def test_non_finite_embeddings_in_memory_semi_online_and_offline_modes() -> None:
    x, bad = _poisoned("nan row")
    xbm = CrossBatchMemory(TripletLoss(), BatchHardestMiner(), 64, D)
    xbm(x, LABELS)
    assert int(xbm.num_filled) == 15  # the NaN row was not stored
    assert bool(torch.isfinite(xbm.contents()[0]).all())
    assert torch.isfinite(xbm(embeddings(seed=11), LABELS))
    pool = TripletPoolBuilder(BatchHardestMiner(), batch_size=6).mine_pool_from_embeddings(x, LABELS, torch.zeros(16, 1))
    assert_valid_triplets(pool.triplets, LABELS, banned=bad)
    offline = OfflineTripletSearch(BatchHardestMiner(), neighbours=4)
    got = offline.mine_triplets(x, LABELS)
    assert_valid_triplets(got.as_tuple(), LABELS, banned=bad) and len(got) == 15 - 3  # 3 other anchors of id 0
    neighbours = offline.nearest_negatives(x, LABELS)
    assert bool((neighbours[3] == -1).all()) and not bool((neighbours == 3).any())


# ============================================================================= 5. verification
def _pairs(n: int = 600, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.5
    e1 = rng.normal(size=(n, dim))
    e2 = np.where(issame[:, None], e1 + 0.6 * rng.normal(size=(n, dim)), rng.normal(size=(n, dim)))
    return e1, e2, issame


@pytest.mark.parametrize("scale", [1e-200, 1e-30, 1.0, 1e30, 1e160])
def test_verification_accuracy_is_invariant_to_the_embedding_scale_float64(scale: float) -> None:
    e1, e2, issame = _pairs()
    base = evaluate_pairs(e1, e2, issame)
    assert base.accuracy > 0.95
    got = evaluate_pairs(e1 * scale, e2 * scale, issame)
    assert got.accuracy == base.accuracy
    np.testing.assert_array_equal(got.thresholds, base.thresholds)
    np.testing.assert_allclose(got.distances, base.distances, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("scale", [1e-30, 1e-10, 1e30])
def test_verification_accuracy_is_invariant_to_the_embedding_scale_float32(scale: float) -> None:
    e1, e2, issame = _pairs(seed=1)
    e1, e2 = e1.astype(np.float32), e2.astype(np.float32)
    base = evaluate_pairs(e1, e2, issame)
    s1, s2 = (e1 * np.float32(scale)), (e2 * np.float32(scale))
    assert s1.dtype == np.float32 and np.isfinite(s1).all() and (np.abs(s1) > 1e-37).mean() > 0.99
    got = evaluate_pairs(torch.from_numpy(s1), torch.from_numpy(s2), issame)
    assert got.accuracy == base.accuracy
    np.testing.assert_allclose(got.distances, base.distances, rtol=1e-5, atol=1e-6)


def test_verification_with_a_different_scale_on_every_row() -> None:
    e1, e2, issame = _pairs(seed=2)
    rng = np.random.default_rng(3)
    base = evaluate_pairs(e1, e2, issame)
    got = evaluate_pairs(e1 * 10.0 ** rng.uniform(-300, 300, (600, 1)), e2 * 10.0 ** rng.uniform(-300, 300, (600, 1)),
                         issame)
    assert got.accuracy == base.accuracy
    np.testing.assert_allclose(got.distances, base.distances, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("poison, match", [
    (0.0, "emb2 has 2 of 600 rows of zero norm (first: row 5)"),
    (math.nan, "emb2 has 2 of 600 rows with non-finite values (first: row 5"),
    (math.inf, "emb2 has 2 of 600 rows with non-finite values (first: row 5"),
])
def test_zero_and_non_finite_rows_are_rejected_with_their_row(poison: float, match: str) -> None:
    e1, e2, issame = _pairs()
    e2[[5, 77]] = poison
    with pytest.raises(ValueError, match=re.escape(match)):
        evaluate_pairs(e1, e2, issame)


@pytest.mark.parametrize("make, count", [
    (lambda d: 1.0 - d / 2.0, None),                 # cosine similarities in [-1, 1]: most are negative
    (lambda d: np.r_[d[:-3], [-0.5, 4.2, 7.0]], 3),  # three values outside [0, 4]
    (lambda d: np.r_[d[:-2], [np.nan, np.nan]], 2),  # NaN
    (lambda d: np.r_[d[:-1], [np.inf]], 1),          # inf
])
def test_evaluate_distances_rejects_values_outside_the_metric_range(make, count) -> None:
    e1, e2, issame = _pairs()
    d = pair_distances(e1, e2)
    evaluate_distances(np.r_[d[:-2], [-1e-4, 4.0 + 1e-4]], issame)  # rounding within the tolerance is fine
    bad = make(d)
    expected = int((~((bad >= -1e-3) & (bad <= 4.001))).sum()) if count is None else count
    with pytest.raises(ValueError, match=re.escape(f"{expected} of 600 values")) as info:
        evaluate_distances(bad, issame)
    assert "[0, 4]" in str(info.value)


@pytest.mark.parametrize("labels, match", [
    (lambda y: y[:-1], "issame has 599 labels but there are 600 pairs"),
    (lambda y: np.where(y, 2, 0), "of 600 are neither (first: index"),
    (lambda y: y.astype(float) * 0.5, "are neither"),
    (lambda y: np.where(y, "same", "diff"), "dtype <U4"),
    (lambda y: np.stack([y, y], 1), "1-D"),
])
def test_bad_issame_is_rejected(labels, match: str) -> None:
    e1, e2, issame = _pairs()
    with pytest.raises(ValueError, match=re.escape(match)):
        evaluate_pairs(e1, e2, labels(issame))


def test_non_integer_fold_count_is_rejected() -> None:
    e1, e2, issame = _pairs()
    with pytest.raises(ValueError, match="n_folds must be an int"):
        evaluate_pairs(e1, e2, issame, n_folds=2.5)
    assert evaluate_pairs(e1, e2, issame, n_folds=np.int64(5)).n_folds == 5
