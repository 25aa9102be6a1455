"""Measuring a network on its data splits: the records of one epoch (everything but ``epoch``, ``split``, ``lr``).

Measured in eval mode on the whole split, every key of a record is defined once elsewhere:
``nc1``, ``nc2_h``, ``nc2_w`` (and their equinorm / equiangular parts), ``nc3``, ``nc4`` from the
streaming accumulator :class:`~ufm.metrics.accumulators.TwoPassNC` (conventions of
``ufm.metrics.nc``); ``logit_gap``, ``p_true``, ``p_off`` from
:func:`~ufm.metrics.logits.logit_statistics`; ``nll``, ``ece``, ``adaptive_ece`` and, at the
temperature fitted on the val split, ``temperature``, ``ece_ts``, ``adaptive_ece_ts``,
``nll_ts`` from :func:`~ufm.metrics.calibration.calibration_summary`; for the test split also
``reliability`` and ``reliability_ts`` (per equal-width bin: count, mean confidence, accuracy;
:func:`~ufm.metrics.calibration.reliability_bins`). Here: ``n``, ``loss`` (the training loss,
CE against the smoothed targets, without penalties), ``error``, ``w_norm`` = mean_k ||w_k||,
``h_norm`` = mean_k ||mu_k - mu_G||, ``b_norm`` = ||b||.

Robustness (the test split only, :data:`NOISE_KEYS`): ``error_noise_<sigma>`` for sigma in
:data:`NOISE_SIGMAS`, the error on x + sigma eps with eps ~ N(0, I); the inputs are standardized,
so sigma is in units of the training std of each feature (vectors) or channel (images). eps is
fixed data: that of sample i is a function of (``data_seed``, sigma, i) alone
(:func:`input_noise`), the same at every epoch, in every run of the dataset (whatever its
training seed), after a resume and whichever process evaluates the sample. One forward pass per sigma
(eval mode), no NC metrics.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch

from ufm.losses import get_loss
from ufm.metrics.accumulators import TwoPassNC
from ufm.metrics.calibration import TemperatureAtBoundWarning, calibration_summary, fit_temperature, reliability_bins
from ufm.metrics.logits import logit_statistics
from ufm.dnn.config import TrainConfig
from ufm.dnn.data.splits import STREAMS
from ufm.dnn.distributed import Distributed
from ufm.dnn.inputs import forward_precision

__all__ = ["evaluate", "evaluate_splits", "noise_errors", "input_noise", "noise_key", "TrainingDivergedError",
           "NOISE_SIGMAS", "NOISE_KEYS"]

#: standard deviations of the test split's input noise, in units of the training std (inputs are standardized)
NOISE_SIGMAS = (0.1, 0.25, 0.5)
#: samples per block of noise: block b (samples b B .. (b+1) B - 1) is one draw of its own generator
_NOISE_BLOCK = 256


def noise_key(sigma: float) -> str:
    """The record key of the error under input noise of standard deviation ``sigma``: ``error_noise_<sigma:g>``."""
    return f"error_noise_{sigma:g}"


#: the keys of the robustness records, which only the test split's records have
NOISE_KEYS = tuple(noise_key(s) for s in NOISE_SIGMAS)


class TrainingDivergedError(RuntimeError):
    """The training loss, the weights, or the features or logits became NaN or infinite; the last
    good checkpoint is kept (the training loop's message names the epoch and that checkpoint)."""


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float, *,
             batch_size: int = 1024, dist: Optional[Distributed] = None, loss: str = "label_smoothing",
             noise: tuple = (), noise_seed: int = 0, autocast: str = "off") -> tuple:
    """NC and logit statistics of one split, in eval mode; returns (record, logits, labels).

    Streams the split once through the network and keeps its features and logits: the features
    go, as one batch, through both passes of a :class:`~ufm.metrics.accumulators.TwoPassNC`
    (class means; NC1's within-class terms on the span of the class means, and NC4); the logits
    (float64) serve the loss, error, logit statistics and calibration. Under ``dist`` each process
    takes a contiguous shard, the accumulator's sums are all-reduced and the logits are gathered.
    ``record`` holds every key but the calibration ones, and for each sigma of ``noise`` the
    error under input noise of that standard deviation (:func:`noise_errors`, drawn from
    ``noise_seed``), keyed :func:`noise_key`.

    Raises:
        TrainingDivergedError: a feature or logit is NaN or infinite (on every process together).
    """
    core = model.module if hasattr(model, "module") else model
    was_training = core.training
    core.eval()
    dist = dist if dist is not None and dist.active else None
    if dist is not None:  # rank 0's buffers (BatchNorm statistics), as DDP's forward would
        for buf in core.buffers():
            dist.dist.broadcast(buf, 0)
    world = dist.world if dist is not None else 1
    lo, hi = _shard(x.shape[0], dist)
    W, b = core.classifier.weight.detach(), core.classifier.bias.detach()  # (K, d), (K,)
    acc = TwoPassNC(num_classes, core.feature_dim, W, b, device=x.device)
    feats, logits = [], []
    for start in range(lo, hi, batch_size):
        with forward_precision(x.device, autocast):
            z, h = core(x[start:min(hi, start + batch_size)], return_features=True)  # (B, K), (B, d); not DDP
        feats.append(h.float() if autocast != "off" else h)  # bfloat16 -> float32; accumulated in float64
        logits.append(z)
    H = torch.cat(feats) if feats else x.new_zeros((0, core.feature_dim))  # (n_r, d), this process's shard
    Z = (torch.cat(logits) if logits else x.new_zeros((0, num_classes))).to(torch.float64)  # (n_r, K)
    acc.update_means(H, y[lo:hi])  # both passes of the accumulator run over the stored features
    reduce = dist.all_reduce if dist is not None else None
    # the float64 class sums are finite exactly when the features are (else look at the features themselves)
    finite = ((bool(torch.isfinite(acc.class_sums).all()) or bool(torch.isfinite(H).all()))
              and bool(torch.isfinite(Z).all()))
    finite = torch.tensor([float(finite)], device=x.device)
    if reduce is not None:
        reduce(finite)  # every process raises together
    if int(finite) != world:
        raise TrainingDivergedError("the network's features or logits became non-finite")
    st = acc.finish_means(reduce)
    acc.update_span(H, y[lo:hi])
    record = acc.measures(reduce)
    Z, labels = (dist.gather(Z), dist.gather(y[lo:hi])) if dist is not None else (Z, y[lo:hi])  # (N, K), (N,)
    Z, labels = Z.cpu(), labels.cpu()
    record["loss"] = float(get_loss(loss)(Z, labels, alpha))
    record["error"] = float((Z.argmax(1) != labels).double().mean())
    record.update(logit_statistics(Z, labels))
    record["w_norm"] = float(torch.linalg.vector_norm(W.to(torch.float64), dim=1).mean())
    record["h_norm"] = float(torch.linalg.vector_norm(st.means - st.global_mean, dim=1).mean())
    record["b_norm"] = float(torch.linalg.vector_norm(b.to(torch.float64)))
    record["n"] = int(labels.shape[0])
    if noise:  # with rank 0's buffers, as above
        record.update(noise_errors(core, x, y, noise, seed=noise_seed, batch_size=batch_size, dist=dist,
                                   autocast=autocast))
    core.train(was_training)
    return record, Z, labels


def _shard(N: int, dist: Optional[Distributed]) -> tuple:
    """The contiguous shard [lo, hi) of N samples that this process evaluates (all without ``dist``)."""
    rank, world = (dist.rank, dist.world) if dist is not None else (0, 1)
    chunk = -(-N // world)
    return min(N, rank * chunk), min(N, (rank + 1) * chunk)


def input_noise(shape: tuple, start: int, stop: int, sigma: float, seed: int) -> torch.Tensor:
    """The standard Gaussian noise (unit variance, to be scaled by ``sigma``) of samples ``start``
    .. ``stop - 1`` of a split at noise level ``sigma``: float32 on the CPU, ``(stop - start, *shape)``.

    Sample i's noise is row i mod B of block i // B (B = 256 samples), a draw of
    ``numpy.random.default_rng([seed, STREAMS["input_noise"], round(1e6 sigma), i // B])`` of shape
    ``(B, *shape)``: a function of (seed, sigma, i) alone, whatever the slice it is drawn with and
    whichever other levels are measured; each level has its own draw.
    """
    B = _NOISE_BLOCK
    first, last = start // B, -(-stop // B)
    level = int(round(float(sigma) * 1e6))  # sigma in millionths
    blocks = [np.random.default_rng([int(seed), STREAMS["input_noise"], level, b])
              .standard_normal((B, *shape), dtype=np.float32) for b in range(first, last)]  # (B, *shape) each
    if not blocks:
        return torch.zeros((0, *shape))
    return torch.from_numpy(np.concatenate(blocks)[start - first * B:stop - first * B])  # (stop - start, *shape)


@torch.no_grad()
def noise_errors(model, x: torch.Tensor, y: torch.Tensor, sigmas=NOISE_SIGMAS, *, seed: int = 0,
                 batch_size: int = 1024, dist: Optional[Distributed] = None, autocast: str = "off") -> dict:
    """``{noise_key(sigma): error}``: the error of ``model`` in eval mode on ``x + sigma * eps``,
    eps = :func:`input_noise` of x's samples at level sigma (from ``seed``), for each ``sigma`` of
    ``sigmas``; one forward pass per sigma, and sigma = 0 gives the clean error.

    Under ``dist`` each process takes the contiguous shard of :func:`evaluate` (with its own
    buffers: :func:`evaluate` broadcasts rank 0's first) and the numbers of errors are summed, so
    neither the noise of a sample nor the result depends on the number of processes or on
    ``batch_size``.
    """
    core = model.module if hasattr(model, "module") else model
    was_training = core.training
    core.eval()
    dist = dist if dist is not None and dist.active else None
    N = x.shape[0]
    lo, hi = _shard(N, dist)
    wrong = torch.zeros(len(sigmas), dtype=torch.float64, device=x.device)  # (S,)
    for j, sigma in enumerate(sigmas):
        for start in range(lo, hi, batch_size):
            stop = min(hi, start + batch_size)
            eps = input_noise(tuple(x.shape[1:]), start, stop, sigma, seed).to(device=x.device, dtype=x.dtype)
            with forward_precision(x.device, autocast):
                z = core(x[start:stop] + sigma * eps)  # (B, K)
            wrong[j] += (z.argmax(1) != y[start:stop]).sum()
    if dist is not None:
        dist.all_reduce(wrong)
    core.train(was_training)
    return {noise_key(s): float(w) / N if N else None for s, w in zip(sigmas, wrong.tolist())}


def evaluate_splits(model, splits: dict, num_classes: int, config: TrainConfig,
                    dist: Optional[Distributed] = None) -> dict:
    """``{split: record}`` for the splits of ``splits`` (``{name: (x, y)}``, in the order val,
    train, test: the temperature is fitted on val first), with the calibration fields.

    The temperature fitted on the val split (None without one) scales every split; a fit that
    ends at a bound of its search (e.g. at initialization) is recorded as it is, without a warning.
    The test split's record also has the robustness keys :data:`NOISE_KEYS` (noise drawn from
    ``config.data_seed``).
    """
    results, temperature = {}, None
    for split in ("val", "train", "test"):
        if split not in splits:
            continue
        rec, Z, y = evaluate(model, *splits[split], num_classes, config.alpha, batch_size=config.eval_batch_size,
                             dist=dist, loss=config.loss, noise=NOISE_SIGMAS if split == "test" else (),
                             noise_seed=config.data_seed, autocast=config.autocast)
        if split == "val":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TemperatureAtBoundWarning)
                temperature = fit_temperature(Z, y)
        rec.update(_calibration(Z, y, config.n_bins, temperature))
        if split == "test":  # reliability diagrams are drawn from these raw bins
            rec["reliability"] = _bins(Z, y, config.n_bins, 1.0)
            rec["reliability_ts"] = _bins(Z, y, config.n_bins, temperature) if temperature else None
        results[split] = rec
    return results


def _calibration(Z: torch.Tensor, y: torch.Tensor, n_bins: int, temperature: Optional[float]) -> dict:
    """``calibration_summary`` (nll, ECEs, and at ``temperature`` when there is one), every key present."""
    out = {"temperature": None, "ece_ts": None, "adaptive_ece_ts": None, "nll_ts": None}
    out.update(calibration_summary(Z, y, temperature=temperature, n_bins=n_bins))
    return out


def _bins(Z: torch.Tensor, y: torch.Tensor, n_bins: int, temperature: float) -> dict:
    b = reliability_bins(Z, y, n_bins, temperature=temperature)
    return {k: b[k] for k in ("count", "confidence", "accuracy")}
