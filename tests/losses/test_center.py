"""CenterLoss: (embedding_size, num_classes) order, the old order with a warning, the value and the paper's update."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from massface.losses import CenterLoss, JointLoss, Softmax


def test_center_loss_value_and_paper_update(batch) -> None:
    x, y = batch(3, n=6, d=3, classes=3)
    y[5] = -1
    loss = CenterLoss(embedding_size=3, num_classes=3, alpha=0.5)
    centers = loss.centers.clone()
    value = loss(x, y)
    keep = y >= 0
    torch.testing.assert_close(value, 0.5 * (x[keep] - centers[y[keep]]).pow(2).sum(1).mean())
    for j in range(3):  # c_j <- c_j - α Σ (c_j - x_i) / (1 + n_j)
        members = x[y == j]
        step = (centers[j] - members).sum(0) / (1 + len(members))
        torch.testing.assert_close(loss.centers[j], centers[j] - 0.5 * step)
    loss.eval()
    before = loss.centers.clone()
    loss(x, y)
    torch.testing.assert_close(loss.centers, before)



def test_center_loss_gradient_mode_and_softmax_joint(batch) -> None:
    x, y = batch(4, n=8, d=5, classes=4)
    center = CenterLoss(embedding_size=5, num_classes=4, update="gradient")
    joint = JointLoss(center, Softmax(5, 4), metric_weight=0.01)
    x.requires_grad_()
    total = joint(x, y)
    total.backward()
    assert center.centers.grad is not None and center.centers.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad, torch.autograd.grad(
        0.01 * center(x, y) + F.cross_entropy(x @ joint.head.weight.T + joint.head.bias, y), x)[0])



def test_center_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="labels"):
        CenterLoss(embedding_size=2, num_classes=3)(torch.randn(2, 2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="embeddings"):
        CenterLoss(embedding_size=2, num_classes=3)(torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="update"):
        CenterLoss(embedding_size=2, num_classes=3, update="ema")  # type: ignore[arg-type]



# ---------------------------------------------------------------- (embedding_size, num_classes)
def test_center_loss_takes_embedding_size_then_num_classes_by_keyword() -> None:
    loss = CenterLoss(embedding_size=5, num_classes=3)
    assert loss.centers.shape == (3, 5) and (loss.embedding_size, loss.num_classes) == (5, 3) and loss.dim == 5



def test_center_loss_old_positional_order_still_means_num_classes_dim_with_a_warning(batch) -> None:
    torch.manual_seed(0)
    new = CenterLoss(embedding_size=5, num_classes=3)
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=r"CenterLoss\(num_classes, dim\)"):
        old = CenterLoss(3, 5)  # the old order: never silently read as (embedding_size=3, num_classes=5)
    assert old.centers.shape == (3, 5)
    torch.testing.assert_close(old.centers, new.centers)
    x, y = batch(n=12, d=5, classes=3)
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
