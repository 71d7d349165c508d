"""One convention per idea in the core (issue 13): argument order, keyword-only s/m, CombinedMargin ≡ ArcFace,
one default margin, one stats protocol, one validator, and the deprecated names that still import."""

from __future__ import annotations

import importlib
import inspect
import math
import warnings

import numpy as np
import pytest
import torch

import massface.losses as losses
import massface.mining as mining
from massface.losses import ArcFace, CenterLoss, CombinedMargin, JointLoss, TripletLoss
from massface.losses.margin import ClassifierHead, MarginHead
from massface.mining import (
    DEFAULT_MARGIN,
    PRESETS,
    BatchHardestMiner,
    CrossBatchMemory,
    OfflineTripletSearch,
    TripletMiner,
    TripletPoolBuilder,
    embed_dataset,
    pack_triplets,
)
from massface.sampling import PKSampler

HEADS = ["NormFace", "SphereFace", "CosFace", "ArcFace", "CombinedMargin", "CurricularFace", "AdaFace",
         "SubCenterArcFace", "MagFace"]


def batch(n: int = 12, d: int = 6, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.arange(n) % classes


# ---------------------------------------------------------------- (embedding_size, num_classes)
def test_center_loss_takes_embedding_size_then_num_classes_by_keyword() -> None:
    loss = CenterLoss(embedding_size=5, num_classes=3)
    assert loss.centers.shape == (3, 5) and (loss.embedding_size, loss.num_classes) == (5, 3) and loss.dim == 5


def test_center_loss_old_positional_order_still_means_num_classes_dim_with_a_warning() -> None:
    torch.manual_seed(0)
    new = CenterLoss(embedding_size=5, num_classes=3)
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=r"CenterLoss\(num_classes, dim\)"):
        old = CenterLoss(3, 5)  # the old order: never silently read as (embedding_size=3, num_classes=5)
    assert old.centers.shape == (3, 5)
    torch.testing.assert_close(old.centers, new.centers)
    x, y = batch(d=5)
    torch.testing.assert_close(old(x, y), new(x, y))
    with pytest.warns(DeprecationWarning, match="dim"):
        assert CenterLoss(num_classes=3, dim=5).centers.shape == (3, 5)


@pytest.mark.parametrize("call", [lambda: CenterLoss(5), lambda: CenterLoss(5, num_classes=3),
                                  lambda: CenterLoss(1, 2, 3), lambda: CenterLoss(embedding_size=5),
                                  lambda: CenterLoss(embedding_size=5, dim=5, num_classes=3)])
def test_center_loss_ambiguous_calls_raise_type_error(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(TypeError, match="CenterLoss"):
            call()


# ---------------------------------------------------------------- s before m, keyword-only
@pytest.mark.parametrize("name", HEADS)
def test_every_head_takes_sizes_by_position_and_s_before_m_by_keyword_only(name: str) -> None:
    cls = getattr(losses, name)
    params = inspect.signature(cls.__init__).parameters
    positional = [p for p, v in params.items() if v.kind in (v.POSITIONAL_ONLY, v.POSITIONAL_OR_KEYWORD)]
    assert positional == ["self", "embedding_size", "num_classes"]
    assert params["s"].kind is inspect.Parameter.KEYWORD_ONLY
    margins = [p for p in params if p in ("m", "m1", "m2", "m3", "l_m", "u_m")]
    assert margins or name == "NormFace", name
    assert all(list(params).index("s") < list(params).index(m) for m in margins)
    assert all(params[m].kind is inspect.Parameter.KEYWORD_ONLY for m in margins)


@pytest.mark.parametrize("name", HEADS)
def test_positional_s_or_m_raises_a_type_error_naming_the_keywords(name: str) -> None:
    cls = getattr(losses, name)
    with pytest.raises(TypeError, match=rf"{name} takes embedding_size, num_classes by position and s, .*by keyword"):
        cls(4, 3, 4, 30.0)


def test_a_user_subclass_of_a_head_gets_the_same_rule() -> None:
    class Scaled(MarginHead):
        def __init__(self, embedding_size: int, num_classes: int, *, s: float = 8.0) -> None:
            super().__init__(embedding_size, num_classes, s=s)

    assert Scaled(4, 3).s == 8.0 and Scaled(4, 3, s=2.0).s == 2.0
    with pytest.raises(TypeError, match="s=8.0"):
        Scaled(4, 3, 2.0)
    assert issubclass(Scaled, ClassifierHead)


# ---------------------------------------------------------------- CombinedMargin(1, m, 0) ≡ ArcFace(m)
def _target_logits(head: MarginHead, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    head = head.double().train()
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 0] = 1.0
        head.weight[1, 1] = 1.0
    x = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1).requires_grad_()
    logits = head(x, torch.zeros(theta.numel(), dtype=torch.long))
    (grad,) = torch.autograd.grad(logits[:, 0].sum(), x)
    return logits.detach(), grad


@pytest.mark.parametrize("m", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("options", [{}, {"fallback": "continuous"}, {"fallback": "none"}, {"easy_margin": True},
                                     {"straight_through": True, "fallback": "none"}])
def test_combined_margin_with_arcface_margins_equals_arcface_beyond_theta_star(m: float, options: dict) -> None:
    theta = torch.linspace(0.0, math.pi, 721, dtype=torch.float64)
    assert (theta > math.pi - m).sum() > 10  # the region past θ* = π − m is covered
    arc = _target_logits(ArcFace(2, 2, s=16.0, m=m, **options), theta)
    combined = _target_logits(CombinedMargin(2, 2, s=16.0, m1=1.0, m2=m, m3=0.0, **options), theta)
    torch.testing.assert_close(combined[0], arc[0], rtol=0, atol=0)
    torch.testing.assert_close(combined[1], arc[1], rtol=0, atol=0)


def test_combined_margin_default_fallback_is_insightface_where_defined() -> None:
    assert CombinedMargin(4, 3).fallback == ArcFace(4, 3).fallback == "insightface"
    assert CombinedMargin(4, 3, m1=1.3).fallback == "continuous"  # th/mm needs m1 = 1


# ---------------------------------------------------------------- one default margin
def test_one_default_margin_for_every_miner_and_the_triplet_loss() -> None:
    assert DEFAULT_MARGIN == 0.25
    assert TripletMiner().margin == DEFAULT_MARGIN and TripletLoss().margin == DEFAULT_MARGIN
    for cls in PRESETS.values():
        assert cls().margin == DEFAULT_MARGIN, cls.__name__
        assert inspect.signature(cls.__init__).parameters["margin"].default == DEFAULT_MARGIN


# ---------------------------------------------------------------- one stats protocol
def _is_float_dict(stats: object) -> bool:
    return isinstance(stats, dict) and all(isinstance(v, float) for v in stats.values())


def test_losses_record_tensors_in_the_hot_path_and_give_floats_on_access() -> None:
    x, y = batch()
    triplet = TripletLoss()
    triplet(x, y)
    assert all(isinstance(v, (torch.Tensor, int, float)) for v in triplet._recorded_stats.values())
    assert isinstance(triplet._recorded_stats["loss"], torch.Tensor)  # not converted: no device sync per step
    assert _is_float_dict(triplet.stats) and triplet.parts == triplet.stats
    assert set(triplet.stats) == {"loss", "num_triplets", "active_fraction"}
    joint = JointLoss(TripletLoss(), ArcFace(6, 3))
    total = joint(x, y)
    assert _is_float_dict(joint.stats) and joint.parts == joint.stats
    assert joint.stats["total"] == pytest.approx(float(total.detach()))
    center = CenterLoss(embedding_size=6, num_classes=3)
    assert center.stats == {}
    value = center(x, y)
    assert center.stats == {"loss": pytest.approx(float(value))}


def test_miners_memory_and_mode_classes_have_a_stats_property_of_floats() -> None:
    x, y = batch()
    miner = BatchHardestMiner()
    miner(x, y)
    xbm = CrossBatchMemory(TripletLoss(), BatchHardestMiner(), 32, 6)
    xbm(x, y)
    search = OfflineTripletSearch(BatchHardestMiner(), neighbours=4, index="flat")
    search.mine_triplets(x, y)
    builder = TripletPoolBuilder(BatchHardestMiner(), batch_size=6)
    pool = builder.mine_pool_from_embeddings(x, y, torch.zeros(12, 1))
    for component in (miner, xbm, search, builder, pool):
        assert _is_float_dict(component.stats), type(component).__name__
    for cls in (TripletMiner, CrossBatchMemory, OfflineTripletSearch, TripletPoolBuilder, TripletLoss, JointLoss,
                CenterLoss):
        assert isinstance(inspect.getattr_static(cls, "stats"), property), cls.__name__
    assert xbm.stats["memory_filled"] == 12.0 and builder.stats == pool.stats


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


# ---------------------------------------------------------------- deprecated names
@pytest.mark.parametrize("module, old, new", [
    ("massface.mining", "SemiOnlineMiner", "TripletPoolBuilder"),
    ("massface.mining", "OfflineMiner", "OfflineTripletSearch"),
    ("massface.mining.semi_online", "SemiOnlineMiner", "TripletPoolBuilder"),
    ("massface.mining.offline", "OfflineMiner", "OfflineTripletSearch"),
    ("massface.losses.margin", "Fallback", "MarginFallback"),
    ("massface.mining.strategies", "Fallback", "NegativeFallback"),
    ("massface.mining.strategies", "FALLBACKS", "NEGATIVE_FALLBACKS"),
])
def test_old_names_import_with_a_deprecation_warning(module: str, old: str, new: str) -> None:
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*use {module}\.{new}"):
        value = getattr(mod, old)
    assert value is getattr(mod, new)
    with pytest.raises(AttributeError):
        mod.NoSuchName  # noqa: B018


def test_old_method_names_warn_and_return_the_same() -> None:
    x, y = batch()
    xbm = CrossBatchMemory(TripletLoss(), BatchHardestMiner(), 32, 6)
    with pytest.warns(DeprecationWarning, match="mine_with_reference"):
        old = xbm.mine(x, y)
    new = xbm.mine_with_reference(x, y)
    assert all(torch.equal(a, b) for a, b in zip(old[0], new[0]))
    search = OfflineTripletSearch(BatchHardestMiner(), neighbours=4, index="flat")
    with pytest.warns(DeprecationWarning, match="mine_triplets"):
        old_t = search.mine(x, y)
    assert torch.equal(old_t.a, search.mine_triplets(x, y).a)
    builder = TripletPoolBuilder(BatchHardestMiner(), batch_size=6)
    with pytest.warns(DeprecationWarning, match="mine_pool_from_embeddings"):
        pool = builder.mine_embeddings(x, y, torch.zeros(12, 1))
    assert len(pool) >= 1
    with pytest.warns(DeprecationWarning, match=r"progress=True"):
        emb, labels = embed_dataset(torch.nn.Linear(6, 4), list(zip(x, y.tolist())), progress="embedding")
    assert emb.shape == (12, 4) and torch.equal(labels, y)
    assert isinstance(mining.TripletPoolBuilder(BatchHardestMiner(), batch_size=6), TripletPoolBuilder)
