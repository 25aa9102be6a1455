"""Measuring a network on its data splits: the records of one epoch (everything but ``epoch``, ``split``, ``lr``).

Measured in eval mode on the whole split, every key of a record is defined once elsewhere:
``nc1``, ``nc2_h``, ``nc2_w`` (and their equinorm / equiangular parts), ``nc3``, ``nc4`` from the
streaming accumulator :class:`~ufm.metrics.accumulators.TwoPassNC` (conventions of
``ufm.metrics.nc``); ``logit_gap``, ``p_true``, ``p_off`` from
:func:`~ufm.metrics.logits.logit_statistics`; ``nll``, ``ece``, ``adaptive_ece`` and, at the
temperature fitted on the val split, ``temperature``, ``ece_ts``, ``adaptive_ece_ts``,
``nll_ts`` from :func:`~ufm.metrics.calibration.calibration_summary`; for the test split also
``reliability`` and ``reliability_ts`` (per equal-width bin: count, mean confidence, accuracy;
:func:`~ufm.metrics.calibration.reliability_bins`); ``w_norm`` = mean_k ||w_k||,
``h_norm`` = mean_k ||mu_k - mu_G||, ``b_norm`` = ||b|| from
:func:`~ufm.metrics.logits.norm_statistics_of_means`. Here: ``n``, ``loss`` (the training loss,
CE against the smoothed targets, without penalties), ``error``.

Any network. The features and the classifier are read through a :class:`FeatureProbe`: by
default the classifier's input and the model's ``classifier`` (every ``ufm.dnn.models``
network) or its only ``nn.Linear``; otherwise a named submodule's input or output (a forward
hook) or a callable. :func:`epoch_records` is the one path from a network to the records of an
epoch, for the training loop (``ufm.dnn.training``) and for networks trained elsewhere
(``ufm.dnn.track``).

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
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ufm._core.validation import InvalidParameterError, Options, check_param
from ufm.losses import get_loss
from ufm.metrics.accumulators import TwoPassNC
from ufm.metrics.calibration import TemperatureAtBoundWarning, calibration_summary, fit_temperature, reliability_bins
from ufm.metrics.logits import logit_statistics, norm_statistics_of_means
from ufm.dnn.config import CONSTRAINTS
from ufm.dnn.data.splits import STREAMS
from ufm.dnn.distributed import Distributed
from ufm.dnn.inputs import forward_precision

__all__ = ["FeatureProbe", "RecordSettings", "evaluate", "evaluate_splits", "epoch_records", "noise_errors",
           "input_noise", "noise_key", "TrainingDivergedError", "NOISE_SIGMAS", "NOISE_KEYS"]

#: standard deviations of the test split's input noise, in units of the training std (inputs are standardized)
NOISE_SIGMAS = (0.1, 0.25, 0.5)
#: samples per block of noise: block b (samples b B .. (b+1) B - 1) is one draw of its own generator
_NOISE_BLOCK = 256


def noise_key(sigma: float) -> str:
    """The record key of the error under input noise of standard deviation ``sigma``: ``error_noise_<sigma:g>``."""
    return f"error_noise_{sigma:g}"


#: the keys of the robustness records, which only the test split's records have
NOISE_KEYS = tuple(noise_key(s) for s in NOISE_SIGMAS)


@dataclass(frozen=True)
class RecordSettings:
    """What an epoch's records depend on besides the network and the data; the fields of
    :class:`~ufm.dnn.config.TrainConfig` of the same names and meanings (and constraints), so that
    either can be passed to :func:`evaluate_splits`.

    Attributes:
        loss: the training loss of the ``loss`` record (``ufm.losses.LOSSES``).
        alpha: its label smoothing (0: CE).
        n_bins: equal-width bins of the ECEs and reliability bins.
        eval_batch_size: samples per forward pass.
        data_seed: the seed of the test split's input noise (:func:`input_noise`).
        autocast: ``off`` or ``bfloat16`` (the forward passes under torch.autocast).
        nc_convention: the convention of the NC records (``ufm.metrics.conventions``).
    """

    loss: str = "label_smoothing"
    alpha: float = 0.0
    n_bins: int = 15
    eval_batch_size: int = 1024
    data_seed: int = 0
    autocast: str = "off"
    nc_convention: str = "ufm"

    def __post_init__(self):
        for name in ("loss", "alpha", "n_bins", "eval_batch_size", "data_seed", "autocast", "nc_convention"):
            check_param(name, getattr(self, name), CONSTRAINTS[name], "RecordSettings")


class TrainingDivergedError(RuntimeError):
    """The training loss, the weights, or the features or logits became NaN or infinite; the last
    good checkpoint is kept (the training loop's message names the epoch and that checkpoint)."""


#: at most this many valid names are listed in a message (a ResNet has hundreds of submodules)
_MAX_NAMES = 40


def _names_text(names) -> str:
    """The names quoted and comma-separated, at most _MAX_NAMES of them ("none" when empty)."""
    names = list(names)
    if not names:
        return "none"
    more = f", ... ({len(names)} in all: model.named_modules())" if len(names) > _MAX_NAMES else ""
    return ", ".join(repr(n) for n in names[:_MAX_NAMES]) + more


class FeatureProbe:
    """How a network is read for its records: logits and penultimate features from one forward pass,
    and the linear classifier (W, b), for any ``nn.Module``.

    Args:
        model: the network (a ``DistributedDataParallel`` wrapper is read through its ``module``).
        classifier: the ``nn.Linear(d, K)`` (its name in ``model.named_modules()``, or the
            submodule itself) whose ``weight`` is W (K, d) and ``bias`` b (K,) (zeros when it
            has none). Default: the
            model's ``classifier`` attribute if it is an ``nn.Linear`` (every ``ufm.dnn.models``
            network), else the model's only ``nn.Linear``.
        features: where the features h (B, d) come from. None (default): the classifier's input;
            a submodule (or its name): a forward hook on that submodule's output (or input, see
            ``features_at``), flattened to (B, d); a callable ``f(x) -> h (B, d)``: then the
            logits are ``classifier(h)`` (the model's own forward is not run).
        features_at: ``"input"`` or ``"output"`` of the submodule ``features`` names (default:
            the input of the classifier, the output of any other submodule).

    The features must have d = ``classifier.in_features`` columns (NC3 and NC4 compare them with W).
    Calling the probe on a batch ``x`` returns ``(logits (B, K), features (B, d))``.

    Raises:
        InvalidParameterError: ``model`` is not an ``nn.Module``; ``classifier`` names no
            ``nn.Linear`` (the message lists those the model has); ``features`` names no submodule
            (the message lists them); ``features_at`` is neither input nor output.
    """

    def __init__(self, model, classifier: Optional[str] = None, features=None, features_at: Optional[str] = None):
        wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
        core = model.module if isinstance(model, wrappers) else model
        if not isinstance(core, torch.nn.Module):
            raise InvalidParameterError(f"The 'model' parameter of FeatureProbe must be a torch.nn.Module. Got "
                                        f"{type(model).__name__} instead.", param="model", value=type(model).__name__,
                                        expected="a torch.nn.Module")
        modules = dict(core.named_modules())
        classifier, features = (_name_of(modules, m) for m in (classifier, features))
        self.model = core
        self.classifier_name = self._classifier_name(core, modules, classifier)
        self.classifier = modules[self.classifier_name]
        if features_at is not None:
            check_param("features_at", features_at, Options(("input", "output")), "FeatureProbe")
        self.features, self.layer = features, None
        if features is None:
            self.layer, self.features_at = self.classifier, features_at or "input"
        elif isinstance(features, str):
            if features not in modules or features == "":
                raise InvalidParameterError(
                    f"The 'features' parameter of FeatureProbe must name a submodule of the model. Got {features!r} "
                    f"instead; the submodules are {_names_text(n for n in modules if n)}.", param="features",
                    value=features, expected="the name of a submodule")
            default_at = "input" if modules[features] is self.classifier else "output"
            self.layer, self.features_at = modules[features], features_at or default_at
        elif callable(features):
            self.features_at = None
        else:
            raise InvalidParameterError(f"The 'features' parameter of FeatureProbe must be None, a submodule's name "
                                        f"or a callable x -> features. Got {type(features).__name__} instead.",
                                        param="features", value=type(features).__name__,
                                        expected="None, a submodule's name or a callable")

    @staticmethod
    def _classifier_name(core, modules: dict, classifier: Optional[str]) -> str:
        linear = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)]
        if classifier is None:
            if isinstance(getattr(core, "classifier", None), torch.nn.Linear):
                return next(n for n, m in modules.items() if m is core.classifier)
            if len(linear) == 1:
                return linear[0]
            why = f"the model has {len(linear)} nn.Linear submodules, so name one"
        elif classifier in linear:
            return classifier
        else:
            why = f"got {classifier!r}" + ("" if classifier in modules else ", which is not a submodule") + \
                (f", a {type(modules[classifier]).__name__}" if classifier in modules else "")
        raise InvalidParameterError(
            f"The 'classifier' parameter of FeatureProbe must name the network's last nn.Linear: {why}; the "
            f"nn.Linear submodules are {_names_text(linear)}.", param="classifier", value=classifier,
            expected=f"one of {_names_text(linear)}")

    @property
    def feature_dim(self) -> int:
        """d, the classifier's ``in_features``."""
        return int(self.classifier.in_features)

    @property
    def num_classes(self) -> int:
        """K, the classifier's ``out_features``."""
        return int(self.classifier.out_features)

    def weights(self) -> tuple:
        """(W (K, d), b (K,)), detached; b is zeros when the classifier has no bias."""
        W, b = self.classifier.weight.detach(), self.classifier.bias
        return W, (b.detach() if b is not None else W.new_zeros(W.shape[0]))

    def __call__(self, x: torch.Tensor) -> tuple:
        """``(logits (B, K), features (B, d))`` of the batch ``x`` (the model in its current mode)."""
        if self.layer is None:  # a callable
            h = self.features(x)
            return self.classifier(h), self._checked(h)
        seen = []
        hook = (lambda m, args, out: seen.append(args[0])) if self.features_at == "input" else \
            (lambda m, args, out: seen.append(out))
        handle = self.layer.register_forward_hook(hook)
        try:
            z = self.model(x)
        finally:
            handle.remove()
        if len(seen) != 1:
            raise InvalidParameterError(
                f"The 'features' parameter of FeatureProbe must name a submodule that runs once per forward pass; "
                f"{self.features!r} ran {len(seen)} times.", param="features", value=self.features,
                expected="a submodule run once per forward pass")
        return z, self._checked(seen[0])

    def _checked(self, h) -> torch.Tensor:
        if not isinstance(h, torch.Tensor) or h.ndim < 2 or h[0].numel() != self.feature_dim:
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise InvalidParameterError(
                f"The 'features' parameter of FeatureProbe must give features of {self.feature_dim} columns per "
                f"sample (the in_features of classifier {self.classifier_name!r}). Got {got} instead.",
                param="features", value=got, expected=f"(B, {self.feature_dim}) features")
        return h.flatten(1)


def _name_of(modules: dict, what):
    """The name of ``what`` in ``modules`` if it is one of them (a submodule given as such), else ``what``."""
    if isinstance(what, torch.nn.Module):
        return next((n for n, m in modules.items() if m is what), what)
    return what


def _probe(model) -> FeatureProbe:
    """``model`` itself if it is a :class:`FeatureProbe`, else its default probe."""
    return model if isinstance(model, FeatureProbe) else FeatureProbe(model)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float, *,
             batch_size: int = 1024, dist: Optional[Distributed] = None, loss: str = "label_smoothing",
             noise: tuple = (), noise_seed: int = 0, autocast: str = "off", nc_convention: str = "ufm") -> tuple:
    """NC and logit statistics of one split, in eval mode; returns (record, logits, labels).

    ``model`` is a network or a :class:`FeatureProbe` saying where its features and classifier
    are (a network is read through its default probe: every ``ufm.dnn.models`` network, or any
    ``nn.Module`` whose only ``nn.Linear`` is its classifier, applied to the features).
    ``num_classes`` must be the classifier's ``out_features``.

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
        InvalidParameterError: the probe cannot be built (:class:`FeatureProbe`), or ``num_classes``
            is not the classifier's K.
    """
    probe = _probe(model)
    core = probe.model
    if num_classes != probe.num_classes:
        raise InvalidParameterError(f"The 'num_classes' parameter of evaluate must be {probe.num_classes}, the "
                                    f"out_features of classifier {probe.classifier_name!r}. Got {num_classes!r} "
                                    "instead.", param="num_classes", value=num_classes,
                                    expected=str(probe.num_classes))
    was_training = core.training
    core.eval()
    try:  # the caller's mode is restored, also after an error
        dist = dist if dist is not None and dist.active else None
        if dist is not None:  # rank 0's buffers (BatchNorm statistics), as DDP's forward would
            for buf in core.buffers():
                dist.dist.broadcast(buf, 0)
        world = dist.world if dist is not None else 1
        lo, hi = _shard(x.shape[0], dist)
        W, b = probe.weights()  # (K, d), (K,)
        acc = TwoPassNC(num_classes, probe.feature_dim, W, b, device=x.device, convention=nc_convention)
        feats, logits = [], []
        for start in range(lo, hi, batch_size):
            with forward_precision(x.device, autocast):
                z, h = probe(x[start:min(hi, start + batch_size)])  # (B, K), (B, d); not DDP
            feats.append(h.float() if autocast != "off" else h)  # bfloat16 -> float32; accumulated in float64
            logits.append(z)
        H = torch.cat(feats) if feats else x.new_zeros((0, probe.feature_dim))  # (n_r, d), this process's shard
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
        record.update(norm_statistics_of_means(W, st.means, b))
        record["n"] = int(labels.shape[0])
        if noise:  # with rank 0's buffers, as above
            record.update(noise_errors(probe, x, y, noise, seed=noise_seed, batch_size=batch_size, dist=dist,
                                       autocast=autocast))
    finally:
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
    ``batch_size``. ``model``: a network or a :class:`FeatureProbe`, as in :func:`evaluate` (the
    logits are the probe's).
    """
    probe = _probe(model)
    core = probe.model
    was_training = core.training
    core.eval()
    try:  # the caller's mode is restored, also after an error
        dist = dist if dist is not None and dist.active else None
        N = x.shape[0]
        lo, hi = _shard(N, dist)
        wrong = torch.zeros(len(sigmas), dtype=torch.float64, device=x.device)  # (S,)
        for j, sigma in enumerate(sigmas):
            for start in range(lo, hi, batch_size):
                stop = min(hi, start + batch_size)
                eps = input_noise(tuple(x.shape[1:]), start, stop, sigma, seed).to(device=x.device, dtype=x.dtype)
                with forward_precision(x.device, autocast):
                    z = probe(x[start:stop] + sigma * eps)[0]  # (B, K)
                wrong[j] += (z.argmax(1) != y[start:stop]).sum()
        if dist is not None:
            dist.all_reduce(wrong)
    finally:
        core.train(was_training)
    return {noise_key(s): float(w) / N if N else None for s, w in zip(sigmas, wrong.tolist())}


def evaluate_splits(model, splits: dict, num_classes: int, config, dist: Optional[Distributed] = None) -> dict:
    """``{split: record}`` for the splits of ``splits`` (``{name: (x, y)}``, in the order val,
    train, test: the temperature is fitted on val first), with the calibration fields.

    ``model``: a network or a :class:`FeatureProbe` (:func:`evaluate`); ``config``: a
    :class:`~ufm.dnn.config.TrainConfig` or a :class:`RecordSettings` (the fields read are those
    of :class:`RecordSettings`).

    The temperature fitted on the val split (None without one) scales every split; a fit that
    ends at a bound of its search (e.g. at initialization) is recorded as it is, without a warning.
    The test split's record also has the robustness keys :data:`NOISE_KEYS` (noise drawn from
    ``config.data_seed``).
    """
    results, temperature, probe = {}, None, _probe(model)
    for split in ("val", "train", "test"):
        if split not in splits:
            continue
        rec, Z, y = evaluate(probe, *splits[split], num_classes, config.alpha, batch_size=config.eval_batch_size,
                             dist=dist, loss=config.loss, noise=NOISE_SIGMAS if split == "test" else (),
                             noise_seed=config.data_seed, autocast=config.autocast,
                             nc_convention=config.nc_convention)
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


def epoch_records(model, splits: dict, epoch: int, lr: Optional[float], config,
                  dist: Optional[Distributed] = None) -> list:
    """The records of ``epoch`` as ``metrics.jsonl`` holds them: one per split of ``splits``, in the
    order train, val, test, each ``{"epoch", "split", "lr", **record}`` with the record of
    :func:`evaluate_splits` (the same arguments; K is the classifier's). The one path of
    ``ufm.dnn.training`` and ``ufm.dnn.track``."""
    probe = _probe(model)
    results = evaluate_splits(probe, splits, probe.num_classes, config, dist)
    return [{"epoch": epoch, "split": s, "lr": lr, **results[s]} for s in ("train", "val", "test") if s in results]


def _calibration(Z: torch.Tensor, y: torch.Tensor, n_bins: int, temperature: Optional[float]) -> dict:
    """``calibration_summary`` (nll, ECEs, and at ``temperature`` when there is one), every key present."""
    out = {"temperature": None, "ece_ts": None, "adaptive_ece_ts": None, "nll_ts": None}
    out.update(calibration_summary(Z, y, temperature=temperature, n_bins=n_bins))
    return out


def _bins(Z: torch.Tensor, y: torch.Tensor, n_bins: int, temperature: float) -> dict:
    b = reliability_bins(Z, y, n_bins, temperature=temperature)
    return {k: b[k] for k in ("count", "confidence", "accuracy")}
