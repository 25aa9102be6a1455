"""Distance of a point (W, H, b) to the orbit of an exact UFM minimizer under rotations.

The minimizers of the UFM form orbits {(W* Q^T, Q H*, b*) : Q orthogonal d x d} (and, with
lambda_b = 0, any shift b* + b0 1 of the bias). The distance to the orbit is first order in
any error of W and H, while the objective and the mean norms are only second order in the
within-class scatter, which makes it the sharpest check of a numerical minimizer (README,
"Verification errors").
"""
from __future__ import annotations

import torch

__all__ = ["orbit_distances"]


def orbit_distances(Ws: torch.Tensor, Hs: torch.Tensor, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor,
                    lambda_b: torch.Tensor) -> torch.Tensor:
    """(B,) distances of (W, H, b) (B, K, d), (B, d, N), (B, K) to the orbits of (Ws, Hs, b*), relative
    to ||(Ws, Hs)|| (absolute where that is 0); b* = 0 where lambda_b (B,) > 0, else the line b0 1.

    min over orthogonal Q of ||(W - Ws Q^T, H - Q Hs, b - b*)||: by Procrustes the optimal Q
    maximizes <Q, W^T Ws + H Hs^T>, i.e. Q = U V^T from the SVD of that d x d matrix.
    """
    A = W.transpose(1, 2) @ Ws + H @ Hs.transpose(1, 2)  # (B, d, d)
    U, _, Vh = torch.linalg.svd(A)
    Q = U @ Vh  # (B, d, d)
    bias = torch.where(lambda_b[:, None] > 0, b, b - b.mean(1, keepdim=True))  # (B, K)
    dist2 = ((W - Ws @ Q.transpose(1, 2)) ** 2).sum((1, 2)) + ((H - Q @ Hs) ** 2).sum((1, 2)) + (bias ** 2).sum(1)
    scale = torch.sqrt((Ws ** 2).sum((1, 2)) + (Hs ** 2).sum((1, 2)))
    return torch.sqrt(dist2) / torch.where(scale > 0, scale, torch.ones_like(scale))
