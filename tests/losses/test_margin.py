"""Margin-softmax heads: closed forms at hand-picked angles, gradients, PML agreement, autocast, labels; sizes by position and keyword-only s before m; CombinedMargin(1, m, 0) equals ArcFace(m)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import massface.losses as losses
from massface.losses import (
    AdaFace,
    ArcFace,
    CombinedMargin,
    CosFace,
    CurricularFace,
    MagFace,
    NormFace,
    Softmax,
    SphereFace,
    SubCenterArcFace,
)
from massface.losses.margin import ClassifierHead, MarginHead, angular_margin

PI = math.pi



# 0 (cos = 1), interior angles, past π − m for every margin used below, and π (cos = −1)
ANGLES = [0.0, 0.3, 1.0, PI / 2, 2.5, 2.9, 3.1, PI]



def at_angles(head: MarginHead, angles: list[float], norm: float = 1.0) -> torch.Tensor:
    """Target logits of class 0 for 2-d embeddings at the given angles from W_0 = e_0 (W_1 = e_1)."""
    head = head.double().eval()
    with torch.no_grad():
        head.weight.zero_()
        head.weight.view(head.num_classes, head.num_subcenters, 2)[0, :, 0] = 1.0  # every sub-centre
        head.weight.view(head.num_classes, head.num_subcenters, 2)[1, :, 1] = 1.0
    theta = torch.tensor(angles, dtype=torch.float64)
    x = norm * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    x[theta == PI] = torch.tensor([-norm, 0.0], dtype=torch.float64)  # exactly cos = -1
    labels = torch.zeros(len(angles), dtype=torch.long)
    logits = head(x, labels)
    assert torch.isfinite(logits).all()
    return logits[:, 0]



def arc(theta: float, m: float) -> float:
    """insightface th/mm ArcFace target."""
    return math.cos(theta + m) if theta + m <= PI else math.cos(theta) - m * math.sin(m)



def expect(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)



def test_normface_cosface_closed_form() -> None:
    torch.testing.assert_close(at_angles(NormFace(2, 2, s=10.0), ANGLES), expect([10 * math.cos(t) for t in ANGLES]))
    cos_face = CosFace(2, 2, s=64.0, m=0.35)
    torch.testing.assert_close(at_angles(cos_face, ANGLES), expect([64 * (math.cos(t) - 0.35) for t in ANGLES]))
    assert cos_face.m == 0.35



@pytest.mark.parametrize("m", [0.5, 0.2])
def test_arcface_closed_form(m: float) -> None:
    torch.testing.assert_close(at_angles(ArcFace(2, 2, s=64.0, m=m), ANGLES), expect([64 * arc(t, m) for t in ANGLES]))
    easy = at_angles(ArcFace(2, 2, s=1.0, m=m, easy_margin=True), ANGLES)
    torch.testing.assert_close(easy, expect([math.cos(t + m) if math.cos(t) > 0 else math.cos(t) for t in ANGLES]))
    # arcface_torch: straight-through, no fallback -> value cos(θ+m) even past π
    st = at_angles(ArcFace(2, 2, s=1.0, m=m, straight_through=True, fallback="none"), ANGLES)
    torch.testing.assert_close(st, expect([math.cos(t + m) for t in ANGLES]))



def test_combined_margin_all_three_margins_effective() -> None:
    m1, m2, m3 = 1.0, 0.3, 0.2
    got = at_angles(CombinedMargin(2, 2, s=64.0, m1=m1, m2=m2, m3=m3, fallback="continuous"), ANGLES)
    want = [math.cos(t + m2) - m3 if t + m2 <= PI else math.cos(t) + math.cos(m2) - 1 - m3 for t in ANGLES]
    torch.testing.assert_close(got, expect([64 * v for v in want]))
    # m1 != 1 (SphereFace-like) with the continuous fallback past θ* = (π − m2)/m1
    m1 = 1.5
    star = (PI - m2) / m1
    got = at_angles(CombinedMargin(2, 2, s=1.0, m1=m1, m2=m2, m3=m3), ANGLES)
    want = [math.cos(m1 * t + m2) - m3 if t <= star else math.cos(t) - math.cos(star) - 1 - m3 for t in ANGLES]
    torch.testing.assert_close(got, expect(want), atol=2e-7, rtol=0)
    # m1 < 1: m1·θ + m2 never reaches π, the plain formula holds everywhere
    got = at_angles(CombinedMargin(2, 2, s=1.0, m1=0.5, m2=m2, m3=m3), ANGLES)
    torch.testing.assert_close(got, expect([math.cos(0.5 * t + m2) - m3 for t in ANGLES]), atol=2e-7, rtol=0)



@pytest.mark.parametrize("fallback, m1", [("continuous", 1.0), ("insightface", 1.0), ("continuous", 1.5)])
def test_fallback_keeps_target_monotone(fallback: str, m1: float) -> None:
    theta = torch.linspace(0, PI, 2001, dtype=torch.float64)
    psi = angular_margin(torch.cos(theta), m1, 0.5, 0.1, fallback=fallback)  # type: ignore[arg-type]
    assert (psi.diff() <= 1e-12).all()
    if fallback == "continuous":
        assert psi.diff().abs().max() < 1e-2  # no jump at θ* = π − m
    bumpy = angular_margin(torch.cos(theta), m1, 0.5, 0.1, fallback="none")
    assert (bumpy.diff() > 0).any()  # what the fallback prevents



def test_sphereface_closed_form_and_annealing() -> None:
    def psi(t: float) -> float:
        k = min(math.floor(4 * t / PI), 3)
        return (-1) ** k * math.cos(4 * t) - 2 * k

    plain = SphereFace(2, 2, m=4, lambda_base=0.0, lambda_min=0.0)
    torch.testing.assert_close(at_angles(plain, ANGLES, norm=3.0), expect([3.0 * psi(t) for t in ANGLES]))
    annealed = SphereFace(2, 2, m=4, s=2.0)
    annealed.set_step(10_000)  # λ = max(5, 1000 / (1 + 1200)) = 5
    assert annealed.lam == 5.0
    got = at_angles(annealed, ANGLES)
    torch.testing.assert_close(got, expect([2.0 * (5 * math.cos(t) + psi(t)) / 6 for t in ANGLES]))



def test_sphereface_step_counter_advances_in_training_only() -> None:
    head = SphereFace(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    assert head.lam == 1000.0
    head(x, y)
    head(x, y)
    assert int(head.step) == 2 and head.lam == pytest.approx(1000 / 1.24)
    head.eval()
    head(x, y)
    assert int(head.step) == 2
    assert "step" in head.state_dict()



def test_curricularface_target_negatives_and_t() -> None:
    torch.testing.assert_close(at_angles(CurricularFace(2, 2, s=64.0, m=0.5), ANGLES),
                               expect([64 * arc(t, 0.5) for t in ANGLES]))
    head = CurricularFace(2, 3, s=1.0, m=0.5).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [math.cos(0.9), math.sin(0.9)], [0.0, -1.0]]))
    x = torch.tensor([[math.cos(0.6), math.sin(0.6)]], dtype=torch.float64)  # θ_0 = 0.6, θ_1 = 0.3, θ_2 = 2.17
    head.t.fill_(0.25)
    head.eval()
    logits = head(x, torch.tensor([0]))[0]
    c1, c2 = math.cos(0.3), math.cos(0.6 + PI / 2)
    assert c1 > math.cos(1.1) > c2  # class 1 is hard, class 2 easy
    torch.testing.assert_close(logits, expect([math.cos(1.1), c1 * (0.25 + c1), c2]))
    head.train()
    head(x, torch.tensor([0]))
    assert float(head.t) == pytest.approx(0.99 * 0.25 + 0.01 * math.cos(0.6))



def test_adaface_closed_form() -> None:
    head = AdaFace(2, 2, s=1.0, m=0.4, h=0.333)
    head.batch_mean.fill_(20.0)
    head.batch_std.fill_(10.0)
    for norm in (5.0, 20.0, 25.0, 80.0):
        z = max(-1.0, min(1.0, 0.333 * (norm - 20.0) / (10.0 + 1e-3)))
        want = []
        for t in ANGLES:
            th = math.acos(max(-1 + 1e-3, min(1 - 1e-3, math.cos(t))))
            th = max(1e-3, min(PI - 1e-3, th - 0.4 * z))
            want.append(math.cos(th) - (0.4 * z + 0.4))
        torch.testing.assert_close(at_angles(head, ANGLES, norm=norm), expect(want))



def test_adaface_batch_statistics() -> None:
    head = AdaFace(3, 2, t_alpha=0.5)
    x = torch.tensor([[3.0, 0, 0], [0, 5.0, 0], [0, 0, 10.0]])
    head(x, torch.tensor([0, 1, 0]))
    norms = torch.tensor([3.0, 5.0, 10.0])
    assert float(head.batch_mean) == pytest.approx(0.5 * 20 + 0.5 * float(norms.mean()))
    assert float(head.batch_std) == pytest.approx(0.5 * 100 + 0.5 * float(norms.std()), rel=1e-6)



def test_subcenter_arcface_max_over_subcentres_and_outliers() -> None:
    head = SubCenterArcFace(2, 2, s=1.0, m=0.5, k=3)
    torch.testing.assert_close(at_angles(head, ANGLES), expect([arc(t, 0.5) for t in ANGLES]))
    with torch.no_grad():  # class 0: sub-centres at 0, 2.0 and 2.4 rad; class 1 at π/2
        rows = [0.0, 2.0, 2.4, PI / 2, PI / 2, PI / 2]
        head.weight.copy_(torch.tensor([[math.cos(a), math.sin(a)] for a in rows], dtype=torch.float64))
    x = torch.tensor([[math.cos(1.9), math.sin(1.9)]], dtype=torch.float64)
    assert head(x, torch.tensor([0]))[0, 0].item() == pytest.approx(math.cos(0.1 + 0.5))
    samples = torch.tensor([[math.cos(a), math.sin(a)] for a in (0.1, -0.1, 0.05, 1.9, 1.8)], dtype=torch.float64)
    outlier, dominant = head.find_outliers(samples, torch.zeros(5, dtype=torch.long))
    assert dominant.tolist() == [0, 0]
    assert outlier.tolist() == [False, False, False, True, True]



def test_magface_margin_and_regulariser() -> None:
    head = MagFace(2, 2, s=1.0)
    assert head.min_lambda_g <= head.lambda_g
    for norm in (5.0, 40.0, 200.0):
        a = min(110.0, max(10.0, norm))
        m = 0.45 + 0.35 * (a - 10) / 100
        want = [math.cos(t + m) if math.cos(t) > 0 else math.cos(t) for t in ANGLES]
        torch.testing.assert_close(at_angles(head, ANGLES, norm=norm), expect(want))
    head.train()
    x = torch.tensor([[40.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    ce = F.cross_entropy(head(x, y), y)
    g = 35.0 * (torch.tensor([40.0, 10.0]) / 110 ** 2 + 1 / torch.tensor([40.0, 10.0])).mean()
    torch.testing.assert_close(head.loss(x, y), ce + g.double())



def test_softmax_is_a_linear_layer() -> None:
    head = Softmax(4, 3)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(head(x, y), x @ head.weight.T + head.bias)
    torch.testing.assert_close(head.loss(x, y), F.cross_entropy(x @ head.weight.T + head.bias, y))



ALL_HEADS = {
    "softmax": lambda: Softmax(5, 4),
    "normface": lambda: NormFace(5, 4, s=8.0),
    "sphereface": lambda: SphereFace(5, 4),
    "cosface": lambda: CosFace(5, 4, s=8.0),
    "arcface": lambda: ArcFace(5, 4, s=8.0),
    "arcface_st": lambda: ArcFace(5, 4, s=8.0, straight_through=True, fallback="none"),
    "combined": lambda: CombinedMargin(5, 4, s=8.0),
    "combined_m1": lambda: CombinedMargin(5, 4, s=8.0, m1=1.3, m2=0.2, m3=0.1),
    "curricular": lambda: CurricularFace(5, 4, s=8.0),
    "adaface": lambda: AdaFace(5, 4, s=8.0),
    "subcenter": lambda: SubCenterArcFace(5, 4, s=8.0, k=2),
    "magface": lambda: MagFace(5, 4, s=8.0),
}



@pytest.mark.parametrize("name", sorted(set(ALL_HEADS) - {"arcface_st"}))  # ST is not a true gradient
def test_gradcheck_float64(name: str) -> None:
    torch.manual_seed(3)
    head = ALL_HEADS[name]().double().eval()
    if isinstance(head, CurricularFace):
        head.t.fill_(0.3)
    if isinstance(head, AdaFace):  # ‖x‖ is detached in AdaFace: saturate ẑ so the numeric Jacobian agrees
        head.batch_std.fill_(0.01)
    params = dict(head.named_parameters())
    x = (torch.randn(3, 5, dtype=torch.float64) * 3).requires_grad_()
    if isinstance(head, (AdaFace, MagFace)):
        x = (torch.randn(3, 5, dtype=torch.float64) * 12).requires_grad_()
    w = params["weight"].detach().clone().requires_grad_()
    y = torch.tensor([0, 3, -1])

    def loss(xx: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
        return functional_call(head, {**params, "weight": ww}, (xx, y))

    assert torch.autograd.gradcheck(loss, (x, w), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda xx, ww: functional_call(head, {**params, "weight": ww}, (xx, y[:2]),
                                                                   strict=False).logsumexp(1).sum(), (x[:2], w))



def test_straight_through_gradient_is_that_of_cosine() -> None:
    torch.manual_seed(0)
    st = ArcFace(6, 5, s=4.0, straight_through=True, fallback="none")
    plain = NormFace(6, 5, s=4.0)
    plain.weight = st.weight
    x, y = torch.randn(4, 6, requires_grad=True), torch.tensor([0, 1, 2, 3])
    up = torch.randn(4, 5)
    g_st, = torch.autograd.grad((st(x, y) * up).sum(), x)
    g_plain, = torch.autograd.grad((plain(x, y) * up).sum(), x)
    torch.testing.assert_close(g_st, g_plain)



@pytest.mark.parametrize("m_rad", [0.5, 0.3])
def test_arcface_and_cosface_agree_with_pml(m_rad: float) -> None:
    from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss

    torch.manual_seed(1)
    x, y = torch.randn(16, 8, dtype=torch.float64), torch.randint(0, 10, (16,))
    x[0] = -x[1]  # a target at ~π from its centre (fallback branch) after copying W below
    y[0] = y[1]
    pairs = [(ArcFace(8, 10, s=64.0, m=m_rad), ArcFaceLoss(10, 8, margin=math.degrees(m_rad), scale=64)),
             (CosFace(8, 10, s=30.0, m=m_rad), CosFaceLoss(10, 8, margin=m_rad, scale=30))]
    for ours, theirs in pairs:
        ours, theirs = ours.double(), theirs.double()
        with torch.no_grad():
            # near x[1], not on it: at cos θ = 1 exactly PML's acos has an infinite gradient (NaN)
            ours.weight[y[1]] = x[1] + 1e-3 * torch.randn(8, dtype=torch.float64)
            theirs.W.copy_(ours.weight.T)
        torch.testing.assert_close(ours.loss(x, y), theirs(x, y))
        ours.loss(x, y).backward()
        theirs(x, y).backward()
        torch.testing.assert_close(ours.weight.grad, theirs.W.grad.T)



def test_sphereface_and_subcenter_agree_with_pml() -> None:
    from pytorch_metric_learning.losses import SphereFaceLoss, SubCenterArcFaceLoss

    torch.manual_seed(2)
    x, y = torch.randn(12, 6, dtype=torch.float64) * 2, torch.randint(0, 7, (12,))
    ours = SphereFace(6, 7, m=4, lambda_base=0.0, lambda_min=0.0).double()
    theirs = SphereFaceLoss(7, 6, margin=4, scale=1).double()
    with torch.no_grad():
        ours.weight.copy_(F.normalize(ours.weight, dim=1))  # PML scales by ‖W‖, we normalise W
        theirs.W.copy_(ours.weight.T)
    torch.testing.assert_close(ours.loss(x, y), theirs(x, y))
    ours = SubCenterArcFace(6, 7, s=64.0, m=0.5, k=3).double()
    theirs = SubCenterArcFaceLoss(num_classes=7, embedding_size=6, margin=math.degrees(0.5), scale=64,
                                  sub_centers=3).double()
    with torch.no_grad():
        theirs.W.copy_(ours.weight.T)
    torch.testing.assert_close(ours.loss(x, y), theirs(x, y))



@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_no_nan_under_cpu_autocast(dtype: torch.dtype) -> None:
    torch.manual_seed(4)
    x = torch.randn(32, 5) * 8
    y = torch.randint(0, 4, (32,))
    x[0] = 0.0  # zero embedding
    for name, make in ALL_HEADS.items():
        head = make()
        with torch.no_grad():
            head.weight[y[1]] = x[1]  # cos = 1 exactly for sample 1
            head.weight[y[2]] = -x[2]  # cos = -1 for sample 2
        try:
            with torch.autocast("cpu", dtype=dtype):
                loss = head.loss(x.requires_grad_(), y)
        except RuntimeError as error:  # pragma: no cover - older CPUs/builds without fp16 autocast
            pytest.skip(f"autocast {dtype} unsupported on this CPU build: {error}")
        loss.backward()
        assert torch.isfinite(loss), name
        assert torch.isfinite(head.weight.grad).all() and torch.isfinite(x.grad).all(), name
        x.grad = None



def test_ignored_labels() -> None:
    torch.manual_seed(5)
    head = ArcFace(6, 5, s=16.0)
    x, y = torch.randn(4, 6), torch.tensor([1, -1, 3, -1])
    logits = head(x, y)
    torch.testing.assert_close(logits[[1, 3]], 16.0 * head.cosine(x)[[1, 3]])
    torch.testing.assert_close(head.loss(x, y), F.cross_entropy(head(x[[0, 2]], y[[0, 2]]), y[[0, 2]]))
    zero = head.loss(x.requires_grad_(), torch.full((4,), -1))
    assert float(zero) == 0.0
    zero.backward()
    assert (x.grad == 0).all()



@pytest.mark.parametrize("labels, error", [
    (torch.tensor([0, 5]), ValueError),      # >= num_classes
    (torch.tensor([0, -2]), ValueError),     # below -1
    (torch.tensor([0.0, 1.0]), TypeError),   # float labels
    (torch.tensor([0, 1, 2]), ValueError),   # wrong length
])
def test_bad_labels_are_rejected(labels: torch.Tensor, error: type) -> None:
    with pytest.raises(error, match="labels"):
        CosFace(3, 5).loss(torch.randn(2, 3), labels)



def test_bad_construction_is_rejected() -> None:
    with pytest.raises(ValueError, match="m1"):
        CombinedMargin(4, 3, m1=1.5, fallback="insightface")
    with pytest.raises(ValueError, match="margins"):
        ArcFace(4, 3, m=-0.1)
    with pytest.raises(ValueError, match="embeddings"):
        ArcFace(4, 3)(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="SphereFace"):
        SphereFace(4, 3, m=2.5)  # type: ignore[arg-type]



HEADS = ["NormFace", "SphereFace", "CosFace", "ArcFace", "CombinedMargin", "CurricularFace", "AdaFace",
         "SubCenterArcFace", "MagFace"]



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


# ------------------------------------------------------------------------------ inter-class filter
@pytest.mark.parametrize("name", ["CosFace", "ArcFace", "CurricularFace", "NormFace"])
def test_interclass_filter_zeroes_close_non_target_cosines(name):
    """arcface_torch's interclass_filtering_threshold: non-target cos > t becomes 0 (target exempt)."""
    torch.manual_seed(0)
    head = getattr(losses, name)(8, 6).eval()  # eval: CurricularFace's running t stays put between the calls
    x, y = torch.randn(10, 8), torch.randint(0, 6, (10,))
    plain = head(x, y)
    head.interclass_filter = 0.1
    filtered = head(x, y)
    cos = F.normalize(x) @ F.normalize(head.weight).t()
    target = F.one_hot(y, 6).bool()
    hit = (cos > 0.1) & ~target
    assert bool(hit.any()) and bool((~hit & ~target).any())
    assert torch.equal(filtered[hit], torch.zeros_like(filtered[hit]))
    torch.testing.assert_close(filtered[~hit], plain[~hit])
    head.weight.grad = None
    F.cross_entropy(filtered, y).backward()
    grad_rows = head.weight.grad.abs().sum(dim=1)
    never = ~(~hit & ~target).any(dim=0) & ~target.any(dim=0)  # classes only ever filtered
    assert bool((grad_rows[never] == 0).all())
    assert "interclass_filter=0.1" in repr(head)


@pytest.mark.parametrize("value", [-1.0, 1.5, float("nan"), True])
def test_interclass_filter_rejects_bad_thresholds(value):
    head = losses.CosFace(8, 6)
    with pytest.raises(ValueError, match="interclass_filter"):
        head.interclass_filter = value
