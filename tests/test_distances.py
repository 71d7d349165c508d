"""massface.distances: a batch against itself takes the symmetric backward (one matrix product) and gives the
same values and gradients as the plain formula (float64)."""

from __future__ import annotations

import pytest
import torch

from massface.distances import CosineSimilarity, EuclideanDistance, SquaredEuclideanDistance, dissimilarity_matrix


def _plain(name: str, x: torch.Tensor, normalize: bool) -> torch.Tensor:
    if normalize or name == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    dot = x @ x.T
    if name == "cosine":
        return -dot
    sq = (x.pow(2).sum(1, keepdim=True) + x.pow(2).sum(1).unsqueeze(0) - 2 * dot).clamp_min(0)
    return sq if name == "squared_euclidean" else torch.where(sq > 0, sq.clamp_min(1e-300).sqrt(), 0.0)


DISTANCES = {"squared_euclidean": SquaredEuclideanDistance, "euclidean": EuclideanDistance,
             "cosine": CosineSimilarity}


@pytest.mark.parametrize("name", sorted(DISTANCES))
@pytest.mark.parametrize("normalize", [True, False])
def test_self_distance_matrix_value_and_gradient_equal_the_plain_formula(name, normalize):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(17, 5, generator=g, dtype=torch.float64)
    weights = torch.randn(17, 17, generator=g, dtype=torch.float64)  # an asymmetric upstream gradient
    dist = DISTANCES[name]() if name == "cosine" else DISTANCES[name](normalize_embeddings=normalize)
    out = []
    for fn in (lambda x: dissimilarity_matrix(dist, x), lambda x: _plain(name, x, normalize)):
        x = base.clone().requires_grad_()
        D = fn(x)
        D.mul(weights).sum().backward()
        out.append((D.detach(), x.grad))
    (d0, g0), (d1, g1) = out
    mask = ~torch.eye(17, dtype=torch.bool)  # the diagonal of the euclidean distance is the clamp edge
    assert torch.allclose(d0[mask], d1[mask], atol=1e-12, rtol=0)
    if name != "euclidean":
        assert torch.allclose(g0, g1, atol=1e-10, rtol=0)


def test_self_gram_is_twice_differentiable_and_matches_a_copied_reference():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    dist = SquaredEuclideanDistance(normalize_embeddings=False)
    assert torch.autograd.gradgradcheck(lambda t: dissimilarity_matrix(dist, t).pow(2).sum(), (x,))
    ref = x.detach().clone().requires_grad_()  # another tensor: the general two-product path
    (ga,) = torch.autograd.grad(dissimilarity_matrix(dist, x, x).pow(2).sum(), x)
    D = dissimilarity_matrix(dist, x, ref)
    gx, gr = torch.autograd.grad(D.pow(2).sum(), (x, ref))
    assert torch.allclose(ga, gx + gr, atol=1e-10, rtol=0)


def test_self_gram_under_autocast_gives_a_gradient_in_the_input_dtype():
    x = torch.randn(8, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        D = dissimilarity_matrix(CosineSimilarity(), x)
    D.float().sum().backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
