"""Label-smoothed cross-entropy (alpha = 0 is CE), in torch.

The one definition the UFM solver and network training share. Target
convention (Szegedy et al. 2016; Guo et al. 2025)::

    t = (1 - alpha) e_y + (alpha / K) 1

so the loss of logits z with label y is ``-sum_j t_j log softmax(z)_j``.
"""
from __future__ import annotations

import torch

__all__ = ["smoothed_targets", "label_smoothing_cross_entropy", "LOSSES", "get_loss"]


def smoothed_targets(labels: torch.Tensor, num_classes: int, alpha, dtype=None) -> torch.Tensor:
    """Label-smoothed targets ``(1 - alpha) e_y + (alpha/K) 1``.

    Args:
        labels: integer tensor ``(N,)``.
        num_classes: K.
        alpha: a float, or a tensor ``(B,)`` for a batch of smoothing factors.

    Returns:
        ``(N, K)`` for a float alpha, ``(B, N, K)`` for a tensor alpha.
    """
    dtype = dtype or torch.get_default_dtype()
    onehot = torch.nn.functional.one_hot(labels, num_classes).to(dtype)  # (N, K)
    if isinstance(alpha, torch.Tensor) and alpha.ndim == 1:
        a = alpha.to(dtype=dtype, device=labels.device)[:, None, None]  # (B, 1, 1)
        return (1 - a) * onehot + a / num_classes
    return (1 - alpha) * onehot + alpha / num_classes


def label_smoothing_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.0,
                                  reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``logits (N, K)`` against label-smoothed targets.

    Equals ``torch.nn.functional.cross_entropy(logits, labels, label_smoothing=alpha)``,
    whose convention is the same.
    """
    K = logits.shape[-1]
    t = smoothed_targets(labels, K, alpha, dtype=logits.dtype)  # (N, K)
    per_sample = -(t * torch.log_softmax(logits, dim=-1)).sum(-1)  # (N,)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"The 'reduction' parameter must be one of 'mean', 'sum', 'none'. Got {reduction!r} instead.")


#: name -> torch loss(logits, labels, alpha, reduction)
LOSSES = {"label_smoothing": label_smoothing_cross_entropy}


def get_loss(name: str):
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}.") from None
