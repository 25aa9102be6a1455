"""The batched UFM objective and its analytic gradient, on flat parameter vectors.

Objective (README, "Conventions"), per configuration::

    f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i) + (lambda_W/2)||W||_F^2
                 + (lambda_H/2)||H||_F^2 + (lambda_b/2)||b||^2,   y_i = i // n

Many configurations with the same (K, d, n, loss) are stacked along a leading batch
dimension B; the flat layout of one configuration is W (row-major), then H, then b.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from ufm._core.device import resolve_device
from ufm._core.validation import InvalidParameterError
from ufm.problem import UFMProblem

__all__ = ["UFMObjective"]


class UFMObjective:
    """The batched UFM objective and its analytic gradient on flat parameters ``x (B, P)``.

    The data term is label-smoothed cross-entropy fused with its gradient for speed; the
    tests check it against ``ufm.losses.label_smoothing_cross_entropy`` and against
    torch's own ``cross_entropy(label_smoothing=alpha)`` under autograd.

    P = K d + d N + K; ``unpack(x)`` gives views W (B, K, d), H (B, d, N), b (B, K).
    ``fixed_bias`` (one bool per configuration) holds b fixed where True: its gradient in b is
    zero there, so every method leaves b where it starts.
    """

    def __init__(self, problems: Sequence[UFMProblem], dtype=torch.float64, device=None,
                 fixed_bias: Optional[Sequence[bool]] = None):
        p0 = problems[0]
        if p0.loss != "label_smoothing":  # the fused objective below is label-smoothed CE only
            raise InvalidParameterError(f"The 'loss' parameter of UFMObjective must be 'label_smoothing'. "
                                        f"Got {p0.loss!r} instead.")
        self.K, self.d, self.n, self.N = p0.K, p0.d, p0.n, p0.N
        self.B = len(problems)
        self.dtype, self.device = dtype, resolve_device(device, "UFMObjective")
        kw = dict(dtype=dtype, device=self.device)
        self.alpha = torch.tensor([p.alpha for p in problems], **kw)  # (B,)
        self.lambda_w = torch.tensor([p.lambda_w for p in problems], **kw)  # (B,)
        self.lambda_h = torch.tensor([p.lambda_h for p in problems], **kw)  # (B,)
        self.lambda_b = torch.tensor([p.lambda_b for p in problems], **kw)  # (B,)
        self.labels = torch.arange(self.N, device=self.device) // self.n  # (N,)
        self._y_index = self.labels.view(1, 1, -1).expand(self.B, 1, self.N).contiguous()  # (B, 1, N)
        self._alpha_minus_one = (self.alpha - 1).view(-1, 1, 1).expand(-1, 1, self.N).contiguous()  # (B, 1, N)
        self.sizes = (self.K * self.d, self.d * self.N, self.K)
        self._free_bias = None if fixed_bias is None or not any(fixed_bias) else \
            torch.tensor([not f for f in fixed_bias], **kw)[:, None]  # (B, 1): 0 where b is fixed

    @property
    def num_params(self) -> int:
        return sum(self.sizes)

    def unpack(self, x: torch.Tensor):
        a, b_, _ = self.sizes
        W = x[:, :a].view(-1, self.K, self.d)  # (B, K, d)
        H = x[:, a:a + b_].view(-1, self.d, self.N)  # (B, d, N)
        b = x[:, a + b_:]  # (B, K)
        return W, H, b

    def pack(self, W, H, b) -> torch.Tensor:
        return torch.cat([W.reshape(W.shape[0], -1), H.reshape(H.shape[0], -1), b], dim=1)

    def value_and_grad(self, x: torch.Tensor, rows: Optional[torch.Tensor] = None):
        """f (B,) and its gradient (B, P); with ``rows`` (indices of configurations), f and the
        gradient of those configurations only, at ``x (len(rows), P)``.

        Written to make few passes over (B, K, N) and (B, P) memory, in place where it
        can: log-sum-exp shifted by the per-sample max, the smoothed-target terms from the
        true-class logit and the logit sum (never a (B, K, N) target tensor).
        """
        W, H, b = self.unpack(x)
        N, K = self.N, self.K
        pick = (lambda t: t) if rows is None else (lambda t: t[rows])  # noqa: E731
        a = pick(self.alpha)[:, None, None]  # (B, 1, 1)
        lw, lh, lb = pick(self.lambda_w), pick(self.lambda_h), pick(self.lambda_b)
        y_index = self._y_index[:x.shape[0]]
        Z = torch.bmm(W, H).add_(b.unsqueeze(-1))  # logits (B, K, N)
        Z.sub_(Z.amax(dim=1, keepdim=True))  # shifted logits z - max
        z_true = Z.gather(1, y_index)  # (B, 1, N)
        z_sum = Z.sum(1, keepdim=True)  # (B, 1, N)
        P = Z.exp_()  # unnormalized softmax, in place of Z
        s = P.sum(1, keepdim=True)  # (B, 1, N)
        # loss_i = -sum_j t_j log p_j = log s_i - (1 - alpha) z_true,i - (alpha/K) sum_j z_j,i
        loss = (torch.log(s) - (1 - a) * z_true - (a / K) * z_sum).sum((1, 2)) / N  # (B,)
        f = (loss + lw / 2 * torch.linalg.vector_norm(W, dim=(1, 2)) ** 2
             + lh / 2 * torch.linalg.vector_norm(H, dim=(1, 2)) ** 2 + lb / 2 * (b * b).sum(1))
        G = P.div_(s)  # softmax, (B, K, N)
        G.sub_(a / K).scatter_add_(1, y_index, pick(self._alpha_minus_one))  # p - t
        G.mul_(1.0 / N)  # dloss/dZ
        grad = torch.empty_like(x)
        gW, gH, gb = self.unpack(grad)
        gW.copy_(torch.bmm(G, H.transpose(1, 2)).addcmul_(W, lw[:, None, None]))  # (B, K, d)
        gH.copy_(torch.bmm(W.transpose(1, 2), G).addcmul_(H, lh[:, None, None]))  # (B, d, N)
        gb.copy_(G.sum(2).addcmul_(b, lb[:, None]))  # (B, K)
        if self._free_bias is not None:
            gb.mul_(pick(self._free_bias))
        return f, grad

    def initial_point(self, seeds: Sequence[int], init_scale: float) -> torch.Tensor:
        """Entries of W, H, b ~ N(0, init_scale^2 / d), drawn on the CPU per seed."""
        xs = []
        for seed in seeds:
            g = torch.Generator().manual_seed(int(seed))
            xs.append(torch.randn(self.num_params, generator=g, dtype=torch.float64) * (init_scale / math.sqrt(self.d)))
        return torch.stack(xs).to(dtype=self.dtype, device=self.device)
