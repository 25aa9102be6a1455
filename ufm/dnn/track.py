"""Tracking a network trained in one's own loop: the records of ``ufm train``, in a ufm run folder.

    from ufm import Tracker

    with Tracker(model, "runs/mine", train=(x, y), val=(x_val, y_val), test=(x_test, y_test),
                 classifier="fc", alpha=0.1, dataset="my-data", seed=0) as tracker:
        tracker.record(0)                          # at initialization
        for epoch in range(1, epochs + 1):
            ...                                    # one epoch of your own training
            tracker.record(epoch, lr=lr)           # {split: record}

Each :meth:`Tracker.record` measures the network on every split through
:func:`ufm.dnn.evaluate.epoch_records`, the one path of the training loop, so a record holds
exactly the keys and values of ``ufm train``'s (``ufm.dnn.training.RECORD_KEYS``, and for the test
split ``TEST_RECORD_KEYS``): NC1-NC4 from the streaming accumulator, ``w_norm``, ``h_norm``,
``b_norm``, ``logit_gap``, ``p_true``, ``p_off``, the loss against the smoothed targets, the
error, ECE and adaptive ECE, the temperature fitted on ``val`` and the scaled ECEs, reliability
bins and errors under input noise (meaningful for standardized inputs). Features and classifier
are found by a :class:`~ufm.dnn.evaluate.FeatureProbe` (``classifier``, ``features``,
``features_at``): by default the input of the model's only ``nn.Linear`` (or of its
``classifier``).

The folder is a run folder of ``ufm.records.runs``: ``config.json`` (written atomically),
``metrics.jsonl`` (appended and fsync'd after each record, then ``progress.json`` rewritten
atomically), so ``ufm validate DIR``, ``ufm claims DIR`` and ``ufm plot DIR`` read it as a run of
``ufm train``. What those readers need and the tracker cannot see is given by the caller:

* ``loss`` and ``alpha``: the loss the network is trained with (``label_smoothing``; alpha 0 is CE);
* ``seed``: the run's seed (runs of one setting that differ in seed are the claims' replicates);
* ``dataset`` and ``model_name``: names grouping the runs (default: the ``data``'s name or
  ``"custom"``; the model's class name);
* ``mode``: ``standard`` (weight decay or nothing; ``lambda_*`` are not used) or ``ufm`` (the
  loss has the UFM's explicit penalties ``lambda_w``, ``lambda_h`` (> 0) and ``lambda_b``, which
  ``ufm validate`` compares with the closed form).

``config.json``'s ``config`` holds exactly :data:`CONFIG_KEYS`; two runs whose values agree
except in ``alpha`` and ``seed`` are one group for ``ufm validate`` and ``ufm claims``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ufm._core.io import environment, write_json
from ufm._core.validation import Boolean, InstanceOf, Interval, InvalidParameterError, OrNone, check_all, check_param
from ufm.records.runs import (CHECKPOINT, CONFIG, PROGRESS, RECORDS, FolderLock, RunMismatchError, append_records,
                              begin_records, resume_records, write_progress)
from ufm.dnn.config import CONSTRAINTS as TRAIN_CONSTRAINTS
from ufm.dnn.evaluate import FeatureProbe, RecordSettings, epoch_records

__all__ = ["Tracker", "CONSTRAINTS", "CONFIG_KEYS"]

#: the keys of ``config.json``'s ``config`` written by a tracker (those of TrainConfig that the readers use)
CONFIG_KEYS = ("dataset", "model", "loss", "alpha", "seed", "mode", "lambda_w", "lambda_h", "lambda_b",
               "data_seed", "n_bins", "eval_batch_size", "autocast", "nc_convention")
#: the constraint of each of Tracker's settings (those shared with TrainConfig are TrainConfig's)
CONSTRAINTS = {
    **{k: TRAIN_CONSTRAINTS[k] for k in CONFIG_KEYS if k not in ("dataset", "model")},
    "dataset": OrNone(InstanceOf(str)),
    "model_name": OrNone(InstanceOf(str)),
    "overwrite": Boolean(),
}
_SPLITS = ("train", "val", "test")


class Tracker:
    """Records of ``ufm train`` for any network, written to the run folder ``out`` (module docstring).

    Args:
        model: the network (``nn.Module``), trained by the caller; measured in eval mode under
            ``no_grad``, its mode restored.
        out: the run folder (created). A folder that already holds a run is refused unless
            ``overwrite``, which starts its records anew.
        train, val, test: ``(x (N, ...), y (N,))`` of each split, y integer labels in [0, K); moved
            to the model's device (floating inputs in its dtype). ``train`` is required (unless
            ``data``); without ``val`` there is no temperature (its fields are null).
        data: a ``ufm.dnn.Dataset`` instead of the three splits (its description goes to config.json).
        classifier, features, features_at: where W, b and the features are
            (:class:`~ufm.dnn.evaluate.FeatureProbe`).
        loss, alpha, seed, mode, lambda_w, lambda_h, lambda_b, dataset, model_name: the run's
            description (module docstring); data_seed: the seed of the test split's input noise;
            n_bins, eval_batch_size, autocast, nc_convention: as in ``TrainConfig``.

    Raises:
        InvalidParameterError: a setting out of its range, a split that is not ``(x, y)`` with
            labels in [0, K), or a probe that cannot be built (names the valid layers).
        RunMismatchError: ``out`` holds a run (and not ``overwrite``) or another process writes it.
    """

    def __init__(self, model, out, *, train=None, val=None, test=None, data=None, classifier: Optional[str] = None,
                 features=None, features_at: Optional[str] = None, loss: str = "label_smoothing", alpha: float = 0.0,
                 seed: int = 0, mode: str = "standard", lambda_w: float = 0.0, lambda_h: float = 0.0,
                 lambda_b: float = 0.0, dataset: Optional[str] = None, model_name: Optional[str] = None,
                 data_seed: int = 0, n_bins: int = 15, eval_batch_size: int = 1024, autocast: str = "off",
                 nc_convention: str = "ufm", overwrite: bool = False):
        given = dict(loss=loss, alpha=alpha, seed=seed, mode=mode, lambda_w=lambda_w, lambda_h=lambda_h,
                     lambda_b=lambda_b, dataset=dataset, model_name=model_name, data_seed=data_seed, n_bins=n_bins,
                     eval_batch_size=eval_batch_size, autocast=autocast, nc_convention=nc_convention,
                     overwrite=overwrite)
        check_all(((k, given[k], c) for k, c in CONSTRAINTS.items()), "Tracker")
        if mode == "ufm":  # the closed form that ufm validate compares with needs lambda_W, lambda_H > 0
            for name in ("lambda_w", "lambda_h"):
                check_param(name, given[name], Interval("float", 0, None, "neither"), "Tracker")
        self.probe = FeatureProbe(model, classifier, features, features_at)
        self.settings = RecordSettings(loss=loss, alpha=float(alpha), n_bins=n_bins, eval_batch_size=eval_batch_size,
                                       data_seed=data_seed, autocast=autocast, nc_convention=nc_convention)
        self.splits, described = self._splits(train, val, test, data)
        self.out, self.last_epoch, self.last, self._size = Path(out), None, {}, 0
        config = {**{k: given[k] for k in CONFIG_KEYS if k in given}, "alpha": float(alpha),
                  "dataset": dataset or described["name"], "model": model_name or type(self.probe.model).__name__}
        for k in ("lambda_w", "lambda_h", "lambda_b"):
            config[k] = float(config[k])
        self.meta = {"config": {k: config[k] for k in CONFIG_KEYS}, "dataset": {**described, "name": config["dataset"]},
                     "model": self._model_description(config["model"]), "world_size": 1,
                     "writer": "ufm.dnn.track.Tracker", "environment": environment()}
        self._lock = FolderLock(self.out)
        self._lock.__enter__()
        try:
            self._begin(overwrite)
        except BaseException as e:  # refused: the lock (and folders) it made are removed
            self._lock.__exit__(type(e), e, e.__traceback__)
            self._lock = None
            raise

    def _splits(self, train, val, test, data) -> tuple:
        """``{split: (x, y)}`` on the model's device (non-empty splits), and the dataset's description."""
        if data is not None:
            if train is not None or val is not None or test is not None:
                raise InvalidParameterError("The 'data' parameter of Tracker replaces train, val and test: pass "
                                            "either data or the splits. Got both.", param="data")
            train, val, test = (data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)
        if train is None:
            raise InvalidParameterError("The 'train' parameter of Tracker must be (x, y), the training split (or pass "
                                        "data). Got None instead.", param="train", expected="(x, y)")
        param = next(iter(self.probe.model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        K = self.probe.num_classes
        splits = {}
        for name, split in zip(_SPLITS, (train, val, test)):
            if split is None:
                continue
            x, y = self._checked_split(name, split, K)
            if len(y):
                dtype = param.dtype if param is not None and x.is_floating_point() else x.dtype
                splits[name] = (x.to(device=device, dtype=dtype), y.to(device))
        if "train" not in splits:
            raise InvalidParameterError("The 'train' parameter of Tracker must hold samples. Got an empty split.",
                                        param="train", expected="(x, y) with N >= 1")
        if data is not None:
            return splits, data.describe()
        return splits, {"name": "custom", "num_classes": K, "input_shape": list(splits["train"][0].shape[1:]),
                        "sizes": {k: len(split[1]) if split is not None else 0
                                  for k, split in zip(_SPLITS, (train, val, test))},
                        "class_counts": {k: [int(c) for c in torch.bincount(y.cpu(), minlength=K)]
                                         for k, (_, y) in splits.items()}}

    @staticmethod
    def _checked_split(name: str, split, K: int) -> tuple:
        ok = isinstance(split, (tuple, list)) and len(split) == 2 and all(isinstance(t, torch.Tensor) for t in split)
        if ok:
            x, y = split
            ok = y.ndim == 1 and not y.is_floating_point() and y.dtype != torch.bool and x.shape[0] == y.shape[0]
        if ok and len(y):
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= K:
                raise InvalidParameterError(
                    f"The '{name}' parameter of Tracker must have labels in [0, {K}) (K = the classifier's "
                    f"out_features). Got labels in [{lo}, {hi}] instead.", param=name, value=(lo, hi),
                    expected=f"labels in [0, {K})")
        if not ok:
            raise InvalidParameterError(f"The '{name}' parameter of Tracker must be a pair (x (N, ...), y (N,)) of "
                                        "tensors, y of integer labels. Got something else.", param=name,
                                        expected="(x, y) tensors with y of shape (N,), integer")
        return split

    def _model_description(self, name: str) -> dict:
        p = self.probe
        features = p.features if isinstance(p.features, str) or p.features is None else "callable"
        return {"name": name, "parameters": sum(q.numel() for q in p.model.parameters()),
                "feature_dim": p.feature_dim, "num_classes": p.num_classes, "classifier": p.classifier_name,
                "features": p.classifier_name if features is None else features, "features_at": p.features_at}

    def _begin(self, overwrite: bool) -> None:
        """config.json, then empty records (``ufm.records.runs``). A folder holding anything (hidden
        files aside) is refused: a run only with ``overwrite``, which replaces the run's own files
        and nothing else; any other file always (the user's own ``metrics.jsonl`` is never emptied)."""
        held = sorted(p.name for p in self.out.iterdir() if not p.name.startswith("."))
        ours = {CONFIG, RECORDS, PROGRESS, CHECKPOINT}
        other = [name for name in held if name not in ours or not (self.out / CONFIG).is_file()]
        if other or (held and not overwrite):
            what = "files that are not a run's (" + ", ".join(other[:3]) + ")" if other else "a run"
            raise RunMismatchError(f"The folder {self.out} already holds {what}; pass another folder as out"
                                   + ("" if other else ", or overwrite=True to start its records anew") + ".",
                                   param="out", value=str(self.out), expected="a new or empty folder")
        if (self.out / CHECKPOINT).is_file():  # a stale checkpoint of another writer would be resumed by ufm train
            (self.out / CHECKPOINT).unlink()
        write_json(self.out / CONFIG, self.meta)
        begin_records(self.out)

    def record(self, epoch: int, lr: Optional[float] = None) -> dict:
        """Measure the network now and append the records of ``epoch`` (0: the initialization) to
        ``metrics.jsonl``; returns ``{split: record}``. ``epoch`` must exceed the last recorded one;
        ``lr``: the learning rate to record (null when None).

        Raises:
            InvalidParameterError: ``epoch`` not above the last one, or ``lr`` negative.
            TrainingDivergedError: a feature or logit is NaN or infinite (nothing is written).
            RuntimeError: the tracker is closed.
        """
        if self._lock is None:
            raise RuntimeError(f"The Tracker of {self.out} is closed; create a new one to record again.")
        low = -1 if self.last_epoch is None else self.last_epoch
        check_param("epoch", epoch, Interval("int", low, None, "neither"), "Tracker.record")
        if lr is not None:
            check_param("lr", lr, Interval("float", 0, None, "left"), "Tracker.record")
        records = epoch_records(self.probe, self.splits, epoch, None if lr is None else float(lr), self.settings)
        resume_records(self.out, self.last_epoch, self._size)  # drop a half-written line an interrupted append left
        size = self._size = append_records(self.out / RECORDS, records)
        write_progress(self.out, epoch, size)
        self.last_epoch, self.last = epoch, {r["split"]: r for r in records}
        return dict(self.last)

    def close(self) -> None:
        """Release the folder's lock (the records are already on disk); further records are refused."""
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
