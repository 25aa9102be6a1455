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

from ufm._core.io import read_toml
from ufm._core.validation import (ALPHA, SEED, InstanceOf, Interval, InvalidParameterError, ListOf, Options, OrNone,
                                  PathLike, check_all, check_param)
from ufm.metrics.conventions import CONVENTION_NAMES
from ufm.losses import LOSSES
from ufm.dnn.data import DATASETS
from ufm.dnn.models import MODELS

__all__ = ["TrainConfig", "CONSTRAINTS", "MODES", "SCHEDULES", "DTYPES", "MEMORY_FORMATS", "AUTOCAST",
           "RESULT_NEUTRAL_KEYS", "DeviceName"]

#: ``standard``: weight decay on every parameter (as in the paper's networks);
#: ``ufm``: explicit UFM penalties lambda_W, lambda_H, lambda_b on the classifier and the
#: features, and ``backbone_weight_decay`` on the rest.
MODES = ("standard", "ufm")
SCHEDULES = ("multistep", "cosine", "constant")
DTYPES = ("float32", "float64")
#: the layout of image batches; ``channels_last`` suits the convolutions of recent GPUs
MEMORY_FORMATS = ("contiguous", "channels_last")
#: the precision of the forward and backward passes: ``bfloat16`` runs them under torch.autocast
AUTOCAST = ("off", "bfloat16")
#: keys that may differ when a run folder is resumed: they do not change the records
#: (on another device the records agree to rounding, not bit for bit)
RESULT_NEUTRAL_KEYS = ("device",)
#: dataset options that do not change the data (``download`` only lets a missing dataset be fetched)
_NEUTRAL_DATASET_OPTIONS = ("download",)


class DeviceName:
    """A device name of a run: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``
    (checked for availability when the run starts, not here: a configuration is portable)."""

    def describe(self) -> str:
        return "'auto', 'cpu', 'cuda' or 'cuda:N'"

    def contains(self, value) -> bool:
        return isinstance(value, str) and (value in ("auto", "cpu", "cuda") or
                                           (value.startswith("cuda:") and value[5:].isdigit()))

    def parse(self, text: str) -> str:
        return text


_POS_INT = Interval("int", 1, None, "left")
_NONNEG = Interval("float", 0, None, "left")

#: the constraint of every field (the command line builds its flags from these); lambda_W and
#: lambda_H must moreover be > 0 in ``ufm`` mode
CONSTRAINTS = {
    "dataset": Options(tuple(DATASETS)),
    "dataset_options": InstanceOf(dict),
    "data_dir": OrNone(PathLike()),
    "val_fraction": Interval("float", 0, 1, "left"),
    "data_seed": SEED,
    "train_per_class": OrNone(_POS_INT),
    "test_per_class": OrNone(_POS_INT),
    "model": Options(tuple(MODELS)),
    "model_options": InstanceOf(dict),
    "loss": Options(tuple(LOSSES)),
    "alpha": ALPHA,
    "epochs": _POS_INT,
    "batch_size": _POS_INT,
    "lr": Interval("float", 0, None, "neither"),
    "momentum": Interval("float", 0, 1, "left"),
    "schedule": Options(SCHEDULES),
    "milestones": ListOf(_POS_INT, min_len=0),
    "gamma": Interval("float", 0, 1, "right"),
    "mode": Options(MODES),
    "weight_decay": _NONNEG,
    "lambda_w": _NONNEG,
    "lambda_h": _NONNEG,
    "lambda_b": _NONNEG,
    "backbone_weight_decay": _NONNEG,
    "seed": SEED,
    "device": DeviceName(),
    "dtype": Options(DTYPES),
    "memory_format": Options(MEMORY_FORMATS),
    "autocast": Options(AUTOCAST),
    "eval_every": _POS_INT,
    "eval_batch_size": _POS_INT,
    "n_bins": _POS_INT,
    "nc_convention": Options(CONVENTION_NAMES),
    "checkpoint_every": _POS_INT,
}


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

    Precision: ``dtype`` of the network and its inputs; ``memory_format`` ``channels_last`` for
    image batches and the network; ``autocast`` ``bfloat16`` runs the forward and backward passes
    under ``torch.autocast`` (the loss from float32 logits; the recorded metrics accumulate the
    features and logits in float64 as always). 8-bit image datasets stay on the device as uint8
    and are normalized batch by batch (``ufm.dnn.inputs``), which changes no value.

    Records: every ``eval_every`` epochs (and at epoch 0 and the last epoch) the NC and
    calibration metrics of the train, val and test splits; ``n_bins`` for ECE.
    ``checkpoint_every`` epochs a checkpoint (1: a kill loses at most the current epoch).
    """

    dataset: str = field(default="mnist1d",
                         metadata={"help": "a dataset of ufm.dnn.DATASETS (gaussian, mnist1d, digits, fashion-mnist, ...)"})
    dataset_options: dict = field(default_factory=dict,
                                  metadata={"help": "options of the dataset's loader, e.g. num_classes for gaussian"})
    data_dir: Optional[str] = field(default=None,
                                    metadata={"help": "folder holding datasets (default $UFM_DATA, then ~/.cache/ufm)"})
    val_fraction: float = field(default=0.1,
                                metadata={"help": "fraction of each class held out for temperature scaling"})
    data_seed: int = field(default=0, metadata={"help": "seed of the data and its split"})
    train_per_class: Optional[int] = field(default=None,
                                           metadata={"help": "balanced subset: training samples per class"})
    test_per_class: Optional[int] = field(default=None, metadata={"help": "balanced subset: test samples per class"})
    model: str = field(default="mlp", metadata={"help": "mlp, cnn, resnet18, resnet50"})
    model_options: dict = field(default_factory=dict,
                                metadata={"help": "options of the model, e.g. width, depth, batchnorm"})
    loss: str = field(default="label_smoothing", metadata={"help": "label_smoothing (alpha = 0 is CE)"})
    alpha: float = field(default=0.0, metadata={"help": "label smoothing in [0, 1); 0 is CE"})
    epochs: int = field(default=30, metadata={"help": "training epochs"})
    batch_size: int = field(default=128, metadata={"help": "global batch size"})
    lr: float = field(default=0.05, metadata={"help": "initial learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    schedule: str = field(default="multistep", metadata={"help": "multistep, cosine or constant"})
    milestones: Tuple[int, ...] = field(default=(),
                                        metadata={"help": "multistep: epochs after which lr is multiplied by gamma"})
    gamma: float = field(default=0.1, metadata={"help": "multistep factor"})
    mode: str = field(default="standard",
                      metadata={"help": "standard (weight decay on all) or ufm (explicit lambda_W, lambda_H, lambda_b)"})
    weight_decay: float = field(default=5e-4, metadata={"help": "standard mode: weight decay of every parameter"})
    lambda_w: float = field(default=5e-4, metadata={"help": "ufm mode: penalty on the classifier W"})
    lambda_h: float = field(default=5e-4, metadata={"help": "ufm mode: penalty on the features H, full-data scale"})
    lambda_b: float = field(default=0.0, metadata={"help": "ufm mode: penalty on the bias b"})
    backbone_weight_decay: float = field(default=0.0, metadata={"help": "ufm mode: weight decay of the backbone"})
    seed: int = field(default=0, metadata={"help": "seed of the initialization and minibatch order"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    dtype: str = field(default="float32", metadata={"help": "float32 or float64"})
    memory_format: str = field(default="contiguous",
                               metadata={"help": "contiguous or channels_last (image batches and the network)"})
    autocast: str = field(default="off", metadata={"help": "off or bfloat16 (forward and backward passes under "
                                                           "torch.autocast; metrics still in float64)"})
    eval_every: int = field(default=1, metadata={"help": "record metrics every E epochs"})
    eval_batch_size: int = field(default=1024, metadata={"help": "batch size of the evaluation passes"})
    n_bins: int = field(default=15, metadata={"help": "ECE bins"})
    nc_convention: str = field(default="ufm", metadata={"help": "the NC metrics' convention: ufm, guo2025, zhu2021, "
                                                                "zhou2022 or papyan2020 (ufm.metrics.conventions)"})
    checkpoint_every: int = field(default=1, metadata={"help": "checkpoint every C epochs"})

    def __post_init__(self):
        check_all(((name, getattr(self, name), c) for name, c in CONSTRAINTS.items()), "TrainConfig")
        if self.mode == "ufm":  # the UFM has no minimizer with lambda_W or lambda_H = 0
            for name in ("lambda_w", "lambda_h"):
                check_param(name, getattr(self, name), Interval("float", 0, None, "neither"), "TrainConfig")
        if self.autocast != "off" and self.dtype != "float32":  # autocast lowers float32 operations only
            raise InvalidParameterError(
                f"The 'autocast' parameter of TrainConfig must be 'off' with dtype {self.dtype!r} (bfloat16 autocast "
                f"runs float32 networks). Got {self.autocast!r} instead.", param="autocast", value=self.autocast,
                expected=f"'off' with dtype {self.dtype!r}")
        object.__setattr__(self, "milestones", tuple(sorted(self.milestones)))

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

    def dataset_arguments(self) -> dict:
        """The arguments of ``ufm.dnn.data.load_dataset`` for this run's data (with ``download``
        when the dataset options ask for it)."""
        return {"name": self.dataset, "data_dir": self.data_dir, "val_fraction": self.val_fraction,
                "seed": self.data_seed, "train_per_class": self.train_per_class,
                "test_per_class": self.test_per_class, **self.dataset_options}

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

    @classmethod
    def from_toml(cls, path=None, overrides: Optional[dict] = None) -> "TrainConfig":
        """The run described by the TOML file ``path`` (its keys are the fields; None: all defaults),
        with ``overrides`` applied on top: a key given in both takes the override's value, and
        ``dataset_options`` / ``model_options`` are merged key by key."""
        base = read_toml(path, "run file", "config") if path is not None else {}
        for key, value in (overrides or {}).items():
            if key in ("dataset_options", "model_options"):
                base[key] = {**base.get(key, {}), **value}
            else:
                base[key] = value
        return cls.from_dict(base, where=str(path) if path is not None else "TrainConfig")

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def differences(self, other: "TrainConfig") -> list:
        """Keys (other than RESULT_NEUTRAL_KEYS) whose values differ, as (key, mine, other)."""
        a, b = self.to_dict(), other.to_dict()
        for d in (a, b):
            d["dataset_options"] = {k: v for k, v in d["dataset_options"].items() if k not in _NEUTRAL_DATASET_OPTIONS}
        return [(k, a[k], b[k]) for k in a if k not in RESULT_NEUTRAL_KEYS
                and json.dumps(a[k], sort_keys=True) != json.dumps(b[k], sort_keys=True)]
