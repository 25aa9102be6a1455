"""Statistics of logits: the logit gap and the mean true- and off-class probabilities.

One definition, used on UFM solutions (``ufm.analysis.verify``) and on networks' logits (the
training records)::

    logit_gap = mean_i (z_{i,y_i} - mean_{j != y_i} z_ij)
    p_true    = mean_i p_{i,y_i}
    p_off     = mean_i mean_{j != y_i} p_ij = mean_i (1 - p_{i,y_i}) / (K - 1)

with p_i = softmax(z_i). At a collapsed UFM minimizer every sample has the same values, the
closed form's Delta*, p_true* and p_off*.
"""
from __future__ import annotations

import torch

__all__ = ["logit_statistics"]


def logit_statistics(Z: torch.Tensor, y: torch.Tensor) -> dict:
    """``logit_gap``, ``p_true`` and ``p_off`` (Python floats) of logits ``Z (N, K)`` with integer
    labels ``y (N,)``, computed in the dtype of ``Z`` (pass float64 for records)."""
    K = Z.shape[1]
    logp = torch.log_softmax(Z, dim=1)  # (N, K)
    onehot = torch.nn.functional.one_hot(y, K).to(torch.bool)  # (N, K)
    z_true = Z[onehot]  # (N,)
    z_off = (Z.sum(1) - z_true) / (K - 1)  # (N,)
    p_true = logp[onehot].exp()  # (N,)
    return {"logit_gap": float((z_true - z_off).mean()), "p_true": float(p_true.mean()),
            "p_off": float(((1 - p_true) / (K - 1)).mean())}
