"""Statistics of logits and of the classifier and class means: the logit gap, the mean true- and
off-class probabilities, and the norms the UFM's closed form predicts.

One definition, used on UFM solutions (``ufm.analysis.verify``) and on networks' logits (the
training records, ``ufm.dnn.evaluate``)::

    logit_gap = mean_i (z_{i,y_i} - mean_{j != y_i} z_ij)
    p_true    = mean_i p_{i,y_i}
    p_off     = mean_i mean_{j != y_i} p_ij = mean_i (1 - p_{i,y_i}) / (K - 1)

    w_norm    = mean_k ||w_k||             (w_k the rows of W (K, d))
    h_norm    = mean_k ||mu_k - mu_G||     (mu_k the class means, mu_G = mean_k mu_k)
    b_norm    = ||b||

with p_i = softmax(z_i). At a collapsed UFM minimizer every sample has the same values, the
closed form's Delta*, p_true* and p_off*, and w_norm, h_norm are its ||w_k||, ||h_i||.

Example:
    >>> import torch
    >>> Z = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)
    >>> logit_statistics(Z, torch.tensor([0, 1]))["logit_gap"]  # the mean of 2 - 0 and 1 - (0 - 1) / 2
    1.75
    >>> H = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> norm_statistics(torch.eye(2, dtype=torch.float64), H, torch.tensor([0, 0, 1]))["h_norm"]  # means (2, 0), (0, 2)
    1.4142135623730951
"""
from __future__ import annotations

from typing import Optional

import torch

from ufm._core.validation import InvalidParameterError

__all__ = ["logit_statistics", "norm_statistics", "norm_statistics_of_means"]


def logit_statistics(Z: torch.Tensor, y: torch.Tensor) -> dict:
    """``logit_gap``, ``p_true`` and ``p_off`` (Python floats) of logits ``Z (N, K)`` with integer
    labels ``y (N,)`` in [0, K), computed in the dtype of ``Z`` (pass float64 for records)."""
    K = Z.shape[1]
    logp = torch.log_softmax(Z, dim=1)  # (N, K)
    onehot = torch.nn.functional.one_hot(y, K).to(torch.bool)  # (N, K)
    z_true = Z[onehot]  # (N,)
    z_off = (Z.sum(1) - z_true) / (K - 1)  # (N,)
    p_true = logp[onehot].exp()  # (N,)
    return {"logit_gap": float((z_true - z_off).mean()), "p_true": float(p_true.mean()),
            "p_off": float(((1 - p_true) / (K - 1)).mean())}


def norm_statistics_of_means(weight: torch.Tensor, means: torch.Tensor, bias: Optional[torch.Tensor] = None) -> dict:
    """``w_norm``, ``h_norm`` and ``b_norm`` (Python floats, in float64) of the classifier
    ``weight`` W (K, d), ``bias`` b (K,; 0 when None) and the class means ``means`` (K, d)."""
    W, M = weight.detach().to(torch.float64), means.detach().to(torch.float64)  # (K, d), (K, d)
    b = bias.detach().to(torch.float64) if bias is not None else W.new_zeros(W.shape[0])  # (K,)
    return {"w_norm": float(torch.linalg.vector_norm(W, dim=1).mean()),
            "h_norm": float(torch.linalg.vector_norm(M - M.mean(0), dim=1).mean()),
            "b_norm": float(torch.linalg.vector_norm(b))}


def norm_statistics(weight: torch.Tensor, features: torch.Tensor, labels: torch.Tensor,
                    bias: Optional[torch.Tensor] = None) -> dict:
    """``w_norm``, ``h_norm`` and ``b_norm`` (module docstring) of the classifier W (K, d), b (K,)
    and the features ``features`` H (N, d) with integer labels ``labels`` (N,) in [0, K): the class
    means are taken in float64; every class must have a sample."""
    K = weight.shape[0]
    H = features.detach().to(torch.float64)  # (N, d)
    sums = H.new_zeros((K, H.shape[1])).index_add_(0, labels, H)  # (K, d)
    counts = torch.bincount(labels, minlength=K).to(torch.float64)  # (K,)
    if bool((counts == 0).any()):
        raise InvalidParameterError(f"The 'labels' parameter of norm_statistics must have every class of the "
                                    f"{K} rows of weight. Got none of class {int((counts == 0).nonzero()[0])}.",
                                    param="labels", expected=f"every class in [0, {K})")
    return norm_statistics_of_means(weight, sums / counts[:, None], bias)
