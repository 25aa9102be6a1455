import pytest
import torch
import torch.nn.functional as F

from ufm.losses import get_loss, label_smoothing_cross_entropy, smoothed_targets


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.3, 0.9])
def test_matches_torch_label_smoothing(alpha):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 7, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 7, (50,), generator=g)
    ours = label_smoothing_cross_entropy(z, y, alpha)
    ref = F.cross_entropy(z, y, label_smoothing=alpha)
    assert torch.allclose(ours, ref, rtol=1e-13, atol=0)
    per = label_smoothing_cross_entropy(z, y, alpha, reduction="none")
    assert torch.allclose(per, F.cross_entropy(z, y, label_smoothing=alpha, reduction="none"), rtol=1e-13)


def test_smoothed_targets_values_and_batch():
    y = torch.tensor([0, 2])
    t = smoothed_targets(y, 4, 0.2, dtype=torch.float64)
    assert torch.allclose(t, torch.tensor([[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05]], dtype=torch.float64))
    tb = smoothed_targets(y, 4, torch.tensor([0.0, 0.2], dtype=torch.float64), dtype=torch.float64)
    assert tb.shape == (2, 2, 4)
    assert torch.equal(tb[1], t) and torch.equal(tb[0], F.one_hot(y, 4).double())


def test_unknown_loss_and_reduction():
    with pytest.raises(ValueError, match="valid names: label_smoothing"):
        get_loss("hinge")
    with pytest.raises(ValueError, match="'reduction'"):
        label_smoothing_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), 0.1, reduction="max")
