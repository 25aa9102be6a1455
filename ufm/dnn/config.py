"""The validated configuration of one training run.

A run is described by a :class:`TrainConfig`; every default is here, with its reason.
The configuration is written to the run folder (``config.json``) before training starts,
and a folder holding a different configuration refuses to resume (see ``ufm.dnn.training``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional, Tuple

from .._validation import Interval, InvalidParameterError, Options, check_param
from ..losses import LOSSES
from .data import DATASETS
from .models import MODELS

__all__ = ["TrainConfig", "MODES", "SCHEDULES", "DTYPES", "RESULT_NEUTRAL_KEYS"]

#: ``standard``: weight decay on every parameter (as in the paper's networks);
#: ``ufm``: explicit UFM penalties lambda_W, lambda_H, lambda_b on the classifier and the
#: features, and ``backbone_weight_decay`` on the rest.
MODES = ("standard", "ufm")
SCHEDULES = ("multistep", "cosine", "constant")
DTYPES = ("float32", "float64")
#: keys that may differ when a run folder is resumed: they do not change the records
#: (on another device the records agree to rounding, not bit for bit)
RESULT_NEUTRAL_KEYS = ("device",)
#: dataset options that do not change the data (``download`` only lets torchvision fetch it)
_NEUTRAL_DATASET_OPTIONS = ("download",)


@dataclass(frozen=True)
class TrainConfig:
    """One training run (validated on construction; see the README, "DNN experiments").

    Data: ``dataset`` with ``dataset_options`` (generator options such as ``num_classes``
    for ``gaussian``), ``data_dir``, ``val_fraction`` of each class carved from the
    training set for temperature scaling, ``data_seed`` (the data and its split; fixed
    across the seeds of an experiment), ``train_per_class`` / ``test_per_class`` (balanced
    subsets).

    Optimization: SGD with ``momentum``, ``lr``, ``batch_size``, ``epochs``; ``schedule``
    ``multistep`` (lr x ``gamma`` after each epoch in ``milestones``), ``cosine`` or
    ``constant``; the learning rate is a pure function of the epoch
    (:meth:`learning_rate`). Loss: ``loss`` from ``ufm.losses.LOSSES`` (``label_smoothing``:
    cross-entropy against ``(1 - alpha) e_y + (alpha/K) 1``; alpha = 0 is CE).

    Regularization (``mode``): ``standard`` applies ``weight_decay`` to every parameter;
    ``ufm`` adds (lambda_W/2)||W||^2 + (lambda_H/2)(N/B) sum_{i in batch} ||h_i||^2 +
    (lambda_b/2)||b||^2 to the mean loss, so that the minibatch term is an unbiased estimate
    of the UFM's (lambda_H/2)||H||_F^2 over all N training features, and applies
    ``backbone_weight_decay`` to the other parameters.

    Records: every ``eval_every`` epochs (and at epoch 0 and the last epoch) the NC and
    calibration metrics of the train, val and test splits; ``n_bins`` for ECE.
    ``checkpoint_every`` epochs a checkpoint (1: a kill loses at most the current epoch).
    """

    dataset: str = "mnist1d"
    dataset_options: dict = field(default_factory=dict)
    data_dir: Optional[str] = None
    val_fraction: float = 0.1
    data_seed: int = 0
    train_per_class: Optional[int] = None
    test_per_class: Optional[int] = None
    model: str = "mlp"
    model_options: dict = field(default_factory=dict)
    loss: str = "label_smoothing"
    alpha: float = 0.0
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    schedule: str = "multistep"
    milestones: Tuple[int, ...] = ()
    gamma: float = 0.1
    mode: str = "standard"
    weight_decay: float = 5e-4
    lambda_w: float = 5e-4
    lambda_h: float = 5e-4
    lambda_b: float = 0.0
    backbone_weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    eval_every: int = 1
    eval_batch_size: int = 1024
    n_bins: int = 15
    checkpoint_every: int = 1

    def __post_init__(self):
        c = "TrainConfig"
        pos_int = Interval("int", 1, None, "left")
        nonneg = Interval("float", 0, None, "left")
        check_param("dataset", self.dataset, Options(tuple(DATASETS)), c)
        check_param("model", self.model, Options(tuple(MODELS)), c)
        for name in ("dataset_options", "model_options"):
            if not isinstance(getattr(self, name), dict):
                raise InvalidParameterError(f"The {name!r} parameter of {c} must be a dict. "
                                            f"Got {getattr(self, name)!r} instead.", param=name)
        check_param("val_fraction", self.val_fraction, Interval("float", 0, 1, "left"), c)
        check_param("data_seed", self.data_seed, Interval("int", 0, None, "left"), c)
        for name in ("train_per_class", "test_per_class"):
            if getattr(self, name) is not None:
                check_param(name, getattr(self, name), pos_int, c)
        check_param("loss", self.loss, Options(tuple(LOSSES)), c)
        check_param("alpha", self.alpha, Interval("float", 0, 1, "left"), c)
        check_param("epochs", self.epochs, pos_int, c)
        check_param("batch_size", self.batch_size, pos_int, c)
        check_param("lr", self.lr, Interval("float", 0, None, "neither"), c)
        check_param("momentum", self.momentum, Interval("float", 0, 1, "left"), c)
        check_param("schedule", self.schedule, Options(SCHEDULES), c)
        if not isinstance(self.milestones, (tuple, list)) or not all(
                isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in self.milestones):
            raise InvalidParameterError(f"The 'milestones' parameter of {c} must be a list of ints >= 1. "
                                        f"Got {self.milestones!r} instead.", param="milestones")
        object.__setattr__(self, "milestones", tuple(sorted(self.milestones)))
        check_param("gamma", self.gamma, Interval("float", 0, 1, "right"), c)
        check_param("mode", self.mode, Options(MODES), c)
        for name in ("weight_decay", "lambda_b", "backbone_weight_decay"):
            check_param(name, getattr(self, name), nonneg, c)
        for name in ("lambda_w", "lambda_h"):
            check_param(name, getattr(self, name), nonneg if self.mode == "standard"
                        else Interval("float", 0, None, "neither"), c)
        check_param("seed", self.seed, Interval("int", 0, None, "left"), c)
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise InvalidParameterError(f"The 'device' parameter of {c} must be 'auto', 'cpu', 'cuda' or "
                                        f"'cuda:N'. Got {self.device!r} instead.", param="device")
        check_param("dtype", self.dtype, Options(DTYPES), c)
        for name in ("eval_every", "eval_batch_size", "n_bins", "checkpoint_every"):
            check_param(name, getattr(self, name), pos_int, c)

    # -- schedule ------------------------------------------------------------
    def learning_rate(self, epoch: int) -> float:
        """The learning rate during training epoch ``epoch`` (1-based), a pure function of it.

        ``multistep``: lr * gamma^(number of milestones m with epoch > m), so "x0.1 at epochs
        150 and 350" trains epochs 151-350 at lr/10; ``cosine``: lr (1 + cos(pi (epoch-1)/epochs))/2.
        """
        import math

        if self.schedule == "multistep":
            return self.lr * self.gamma ** sum(epoch > m for m in self.milestones)
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / self.epochs))
        return self.lr

    def record_epochs(self) -> list:
        """Epochs whose metrics are recorded: 0 (the initialization), every ``eval_every``, the last."""
        return sorted({0, self.epochs, *range(self.eval_every, self.epochs + 1, self.eval_every)})

    # -- (de)serialization ---------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "TrainConfig") -> "TrainConfig":
        """Build from a dict (a TOML table, a config.json), rejecting unknown keys."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise InvalidParameterError(f"Unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(names)}.",
                                        param=unknown[0])
        d = dict(d)
        if "milestones" in d and isinstance(d["milestones"], list):
            d["milestones"] = tuple(d["milestones"])
        for name in ("alpha", "lr", "momentum", "gamma", "weight_decay", "lambda_w", "lambda_h", "lambda_b",
                     "backbone_weight_decay", "val_fraction"):
            if isinstance(d.get(name), int) and not isinstance(d.get(name), bool):
                d[name] = float(d[name])  # TOML and JSON write 0 for 0.0
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def differences(self, other: "TrainConfig") -> list:
        """Keys (other than RESULT_NEUTRAL_KEYS) whose values differ, as (key, mine, other)."""
        a, b = self.to_dict(), other.to_dict()
        for d in (a, b):
            d["dataset_options"] = {k: v for k, v in d["dataset_options"].items() if k not in _NEUTRAL_DATASET_OPTIONS}
        return [(k, a[k], b[k]) for k in a if k not in RESULT_NEUTRAL_KEYS
                and json.dumps(a[k], sort_keys=True) != json.dumps(b[k], sort_keys=True)]
