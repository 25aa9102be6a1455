"""Training a network under CE or label smoothing, with NC and calibration records and resume.

One run writes to its folder ``config.json`` (the full configuration, the dataset and model
descriptions, library versions), ``metrics.jsonl`` (one record per (epoch, split)),
``checkpoint.pt`` (the last finished epoch: model, optimizer, number of record bytes written)
and ``progress.json``; the format, and why a kill -9 never corrupts it, are in
``ufm.records.runs``. Every figure and report reads ``config.json`` and ``metrics.jsonl`` only.

Resume. After each checkpoint interval the records are appended, the checkpoint replaced
atomically and ``progress.json`` rewritten. Running the same command again loads the
checkpoint, truncates ``metrics.jsonl`` to the length it covers (dropping records of an epoch
that finished after the last checkpoint, or a half-written line) and continues, so a kill -9 at
any moment loses at most the epochs since the last checkpoint and never duplicates or corrupts a
record. The minibatch order of epoch e is a pure function of (seed, e) and the learning rate a
pure function of e, so on CPU a resumed run's records equal an uninterrupted run's bit for bit.

Records: the keys of :data:`RECORD_KEYS` (``epoch``, 0 = at initialization; ``split``: train,
val, test; ``lr``; and the measures of ``ufm.dnn.evaluate``, which defines each), for the test
split also those of :data:`TEST_RECORD_KEYS` (``reliability``, ``reliability_ts`` and the errors
under input noise ``error_noise_0.1``, ``error_noise_0.25``, ``error_noise_0.5``). Non-finite
values are null.

Multi-GPU: under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in
DistributedDataParallel; every process draws the same epoch order
(:func:`~ufm.dnn.distributed.epoch_order`) and takes its share of each global minibatch,
weighted so that the update is exactly the single-process one (a last batch smaller than the
number of processes is skipped); the NC sums are all-reduced and the logits gathered for
calibration (evaluation runs on each process's shard, with rank 0's buffers); only rank 0
writes. BatchNorm statistics are those of each process's share. A run folder is locked while a
run writes it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from ufm._core.device import device_kind
from ufm._core.io import atomic_write, environment, write_json
from ufm._core.validation import InvalidParameterError
from ufm.losses import get_loss
from ufm.records.runs import (CHECKPOINT, CONFIG, EXPERIMENT, RECORDS, FolderLock, RunMismatchError, append_records,
                              begin_records, read_config, read_records, resume_records, write_progress)
from ufm.dnn.config import TrainConfig
from ufm.dnn.data import load_dataset
from ufm.dnn.distributed import Distributed, epoch_order, run_device
from ufm.dnn.evaluate import NOISE_KEYS, TrainingDivergedError, epoch_records
from ufm.dnn.inputs import device_inputs, forward_precision
from ufm.dnn.models import build_model

__all__ = ["train", "time_training", "TrainingDivergedError", "RunMismatchError", "RECORD_KEYS", "TEST_RECORD_KEYS"]

#: keys every record of metrics.jsonl has (the issue's minimum set and more)
RECORD_KEYS = ("epoch", "split", "n", "lr", "loss", "nll", "error", "nc1", "nc2_h", "nc2_w", "nc3", "nc4",
               "w_norm", "h_norm", "b_norm", "logit_gap", "p_true", "p_off", "ece", "adaptive_ece",
               "temperature", "ece_ts", "adaptive_ece_ts", "nll_ts")
#: keys that the test split's records have besides RECORD_KEYS (the train and val records do not):
#: the reliability bins and the errors under input noise (``ufm.dnn.evaluate.NOISE_KEYS``)
TEST_RECORD_KEYS = ("reliability", "reliability_ts", *NOISE_KEYS)


@dataclass
class _Run:
    """What one training run holds while it trains."""

    config: TrainConfig
    out: Path
    dist: Distributed
    device: torch.device
    core: torch.nn.Module  # the network
    model: torch.nn.Module  # the network, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    splits: dict  # split -> (inputs (N, *input_shape), y (N,)) on the device (ufm.dnn.inputs); empty splits left out
    num_classes: int
    meta: dict  # the contents of config.json
    saved: int = 0  # the epoch of the last checkpoint
    last: dict = field(default_factory=dict)  # split -> its last record


def train(config: TrainConfig, out, *, progress: bool = True, log: Optional[Callable[[str], None]] = None,
          data=None) -> dict:
    """Train (or resume) the run ``config`` in the folder ``out``; returns a summary.

    Args:
        config: a validated :class:`TrainConfig`.
        out: the run folder (created; resumed from its checkpoint if it holds this run).
        progress: a progress bar per run (epoch, loss, error, ETA).
        log: called with one-line messages (resume, finish).
        data: an already loaded ``ufm.dnn.data.Dataset`` for ``config`` (else loaded here).

    Returns:
        dict with ``out``, ``epochs``, ``resumed_from`` (epoch, or None), ``seconds`` and
        ``final`` (the last record of each split).

    Raises:
        RunMismatchError: ``out`` holds a run with another configuration (keys named), or
            another process is writing it.
        TrainingDivergedError: the loss became NaN/inf; the checkpoint of the last good
            epoch is left as it was.
    """
    if not isinstance(config, TrainConfig):
        raise InvalidParameterError(f"The 'config' parameter of train must be a TrainConfig. "
                                    f"Got {type(config).__name__} instead.", param="config")
    log = log or (lambda msg: None)
    out = Path(out)
    dist = Distributed(device_kind(config.device))
    try:
        with FolderLock(out, dist.rank == 0):
            return _train(config, out, progress and dist.rank == 0, log if dist.rank == 0 else (lambda m: None),
                          data, dist)
    finally:
        dist.close()


def _train(config: TrainConfig, out: Path, progress: bool, log: Callable, data, dist: Distributed) -> dict:
    from tqdm import tqdm

    t0 = time.perf_counter()
    _check_folder(out, config)
    run = _setup(config, out, data, dist)
    resumed_from = _start(run, log)
    start = resumed_from or 0
    if dist.active:
        run.model = torch.nn.parallel.DistributedDataParallel(
            run.core, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    record_at = set(config.record_epochs())
    loss_fn = get_loss(config.loss)
    bar = tqdm(total=config.epochs, initial=start, disable=not progress, desc=out.name, unit="epoch",
               leave=False, dynamic_ncols=True)
    try:
        if resumed_from is None:  # a new run records the initialization (a resumed one has its records)
            _checkpoint(run, 0, _record(run, 0, config.learning_rate(1)))
        pending = []
        for epoch in range(start + 1, config.epochs + 1):
            lr = config.learning_rate(epoch)
            train_loss, train_error = _train_epoch(run, epoch, lr, loss_fn)
            try:
                pending += _record(run, epoch, lr) if epoch in record_at else []
            except TrainingDivergedError as e:
                raise TrainingDivergedError(_diverged(run, str(e), epoch, lr)) from None
            if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
                _checkpoint(run, epoch, pending)
                pending = []
            test = run.last.get("test", run.last.get("train", {}))
            bar.set_postfix(loss=f"{train_loss:.4f}", train_err=f"{train_error:.3f}",
                            test_err=f"{test.get('error', float('nan')):.3f}")
            bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    if start < config.epochs:
        log(f"{out}: {config.epochs} epochs done in {seconds:.1f} s")
    final = {r["split"]: r for r in read_records(out)} if dist.rank == 0 else {}
    return {"out": str(out), "epochs": config.epochs, "resumed_from": resumed_from, "seconds": seconds,
            "final": final}


def time_training(config: TrainConfig, *, data=None, budget_s: float = 20.0) -> dict:
    """The measured cost of ``config``'s training on its device, for planning: one epoch's SGD steps
    and one record's forward passes, each timed for at most about ``budget_s / 2`` seconds.

    Steps are timed one by one (the first, a warm-up, not counted) in the order of epoch 1 until
    the epoch ends or the half-budget is spent; the epoch's time is the mean step time times the
    number of steps. A record's time is the eval-mode forward time per sample (timed on batches
    of the training split) times the samples a record passes through the network: train, val and
    test, and the test split once more per noise level; the NC and calibration arithmetic is not
    counted. Nothing is written (the run lives in a temporary folder).

    Returns:
        dict with ``device``, ``step_seconds``, ``steps_per_epoch``, ``steps_timed``,
        ``epoch_seconds``, ``record_seconds``, ``records`` (per run), ``run_seconds`` (the
        estimate of one run: epochs x epoch + records x record) and ``whole_epoch`` (True when a
        whole epoch was timed).
    """
    import tempfile

    from ufm.dnn.evaluate import NOISE_SIGMAS

    with tempfile.TemporaryDirectory() as tmp:
        run = _setup(config, Path(tmp), data, Distributed(device_kind(config.device)))
    sync = torch.cuda.synchronize if run.device.type == "cuda" else (lambda: None)
    N = run.splits["train"][0].shape[0]
    order = epoch_order(N, config.seed, 1).to(run.device)
    batches = [order[s:s + config.batch_size] for s in range(0, N, config.batch_size)]
    loss_fn, times = get_loss(config.loss), []
    run.model.train()
    for g in run.opt.param_groups:
        g["lr"] = config.learning_rate(1)
    for i, batch in enumerate(batches):
        sync()
        t = time.perf_counter()
        _step(run, batch, loss_fn)
        sync()
        times.append(time.perf_counter() - t)
        if i >= 1 and sum(times[1:]) > budget_s / 2:
            break
    step = sum(times[1:]) / len(times[1:]) if len(times) > 1 else times[0]
    per_sample = _forward_seconds_per_sample(run, budget_s / 2, sync)
    sizes = {k: y.shape[0] for k, (_, y) in run.splits.items()}
    passed = sum(sizes.values()) + sizes.get("test", 0) * len(NOISE_SIGMAS)
    records = len(config.record_epochs())
    out = {"device": str(run.device), "step_seconds": step, "steps_per_epoch": len(batches),
           "steps_timed": max(1, len(times) - 1), "epoch_seconds": step * len(batches),
           "record_seconds": per_sample * passed, "records": records, "whole_epoch": len(times) == len(batches)}
    out["run_seconds"] = config.epochs * out["epoch_seconds"] + records * out["record_seconds"]
    return out


@torch.no_grad()
def _forward_seconds_per_sample(run: _Run, budget_s: float, sync: Callable) -> float:
    """Eval-mode forward seconds per sample, timed on batches of the training split (the first a warm-up)."""
    x, _ = run.splits["train"]
    bs = run.config.eval_batch_size
    run.core.eval()
    seconds, samples = 0.0, 0
    for i, start in enumerate(range(0, x.shape[0], bs)):
        sync()
        t = time.perf_counter()
        with forward_precision(run.device, run.config.autocast):
            run.core(x[start:start + bs])
        sync()
        if i > 0 or x.shape[0] <= bs:
            seconds, samples = seconds + time.perf_counter() - t, samples + min(bs, x.shape[0] - start)
        if seconds > budget_s:
            break
    run.core.train()
    return seconds / max(samples, 1)


def _setup(config: TrainConfig, out: Path, data, dist: Distributed) -> _Run:
    """The device, the data on it, the seeded network and its optimizer, and config.json's contents."""
    device = run_device(config.device, dist)
    if config.memory_format == "channels_last" and device.type == "cpu":
        # torch 2.13.0+cpu: the backward pass of a 1x1 stride-2 convolution in channels_last hangs on its
        # third step (benchmarks/check_channels_last_cpu.py)
        raise InvalidParameterError(
            "The 'memory_format' parameter of TrainConfig must be 'contiguous' on a CPU device (channels_last is "
            "for CUDA: torch's CPU channels_last convolutions hung or corrupted memory in ufm's tests). "
            "Got 'channels_last' instead.", param="memory_format", value="channels_last",
            expected="'contiguous' on a CPU device (channels_last is for CUDA)")
    dtype = getattr(torch, config.dtype)
    ds = data if data is not None else load_dataset(**config.dataset_arguments())
    K = ds.num_classes
    torch.manual_seed(config.seed)
    core = build_model(config.model, input_shape=tuple(ds.input_shape), num_classes=K, **config.model_options)
    core = core.to(device=device, dtype=dtype)
    if config.memory_format == "channels_last":
        core = core.to(memory_format=torch.channels_last)
    splits = {"train": (ds.x_train, ds.y_train), "val": (ds.x_val, ds.y_val), "test": (ds.x_test, ds.y_test)}
    # 8-bit images stay uint8 on the device, normalized batch by batch (the same values)
    splits = {k: (device_inputs(x, ds.uint8.get(k), ds, device, dtype, config.memory_format), y.to(device))
              for k, (x, y) in splits.items() if len(y)}
    out.mkdir(parents=True, exist_ok=True)
    meta = {"config": config.to_dict(), "dataset": ds.describe(),
            "model": {"name": config.model, "parameters": sum(p.numel() for p in core.parameters()),
                      "feature_dim": core.feature_dim, "num_classes": K},
            "world_size": dist.world, "environment": environment()}
    return _Run(config, out, dist, device, core, core, _optimizer(config, core), splits, K, meta)


def _optimizer(config: TrainConfig, core: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum; in ``ufm`` mode the classifier has no weight decay (its penalties are in
    the loss) and the backbone has ``backbone_weight_decay``."""
    head = [core.classifier.weight, core.classifier.bias]
    backbone = [p for p in core.parameters() if all(p is not q for q in head)]
    if config.mode == "ufm":
        groups = [{"params": backbone, "weight_decay": config.backbone_weight_decay},
                  {"params": head, "weight_decay": 0.0}]
    else:
        groups = [{"params": list(core.parameters()), "weight_decay": config.weight_decay}]
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def _start(run: _Run, log: Callable) -> Optional[int]:
    """Resume from the folder's checkpoint (returns its epoch) or begin a new run (returns None)."""
    out, rank0 = run.out, run.dist.rank == 0
    resumed_from = None
    if (out / CHECKPOINT).is_file():
        state = torch.load(out / CHECKPOINT, map_location=run.device, weights_only=False)
        run.core.load_state_dict(state["model"])
        run.opt.load_state_dict(state["optimizer"])
        resumed_from = run.saved = state["epoch"]
        if rank0:
            resume_records(out, state["epoch"], state["records_bytes"])
            if not (out / CONFIG).is_file():
                write_json(out / CONFIG, run.meta)
        log(f"{out}: resuming after epoch {resumed_from} of {run.config.epochs}")
    elif rank0:
        write_json(out / CONFIG, run.meta)
        begin_records(out)
    run.dist.barrier()
    return resumed_from


def _train_epoch(run: _Run, epoch: int, lr: float, loss_fn: Callable) -> tuple:
    """One epoch of SGD at learning rate ``lr``; returns (mean training loss, training error) over
    the samples of every process.

    Raises:
        TrainingDivergedError: the loss or the weights became non-finite (every process together).
    """
    config, dist, device = run.config, run.dist, run.device
    for g in run.opt.param_groups:
        g["lr"] = lr
    run.model.train()
    N = run.splits["train"][0].shape[0]
    order = epoch_order(N, config.seed, epoch).to(device)  # (N,), the same in every process
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    for s in range(0, N, config.batch_size):
        batch = order[s:s + config.batch_size]  # the global minibatch, (n_g,)
        if batch.numel() < dist.world:  # a last batch too small to give every process a sample: skipped
            continue
        batch_loss, batch_wrong, n_r = _step(run, batch, loss_fn)
        loss_sum += batch_loss
        wrong += batch_wrong
        seen += n_r
    sums = torch.stack([loss_sum, wrong, torch.tensor(float(seen), dtype=torch.float64, device=device)])
    dist.all_reduce(sums)  # loss sum, errors, samples of the epoch over every process
    train_loss = float(sums[0] / sums[2])
    finite = torch.tensor(float(all(bool(torch.isfinite(p).all()) for p in run.core.parameters())), device=device)
    dist.all_reduce(finite)  # every process stops together
    if not math.isfinite(train_loss) or int(finite) != dist.world:
        what = f"the training loss became {train_loss}" if not math.isfinite(train_loss) \
            else "the weights became non-finite"
        raise TrainingDivergedError(_diverged(run, what, epoch, lr))
    return train_loss, float(sums[1] / sums[2])


def _step(run: _Run, batch: torch.Tensor, loss_fn: Callable) -> tuple:
    """One SGD step on this process's share of the global minibatch ``batch`` (n_g,); returns this
    share's loss sum and number of errors (0-dim tensors, not synchronized) and its size n_r."""
    config, dist, core = run.config, run.dist, run.core
    x_train, y_train = run.splits["train"]
    N, n_g = x_train.shape[0], batch.numel()
    idx = batch[dist.rank::dist.world]  # this process's share, (n_r,)
    xb, yb = x_train[idx], y_train[idx]
    with forward_precision(run.device, config.autocast):
        z, h = run.model(xb, return_features=True)  # (n_r, K), (n_r, d)
    if config.autocast != "off":  # the loss and the penalties from float32 logits and features
        z, h = z.float(), h.float()
    mean_loss = loss_fn(z, yb, config.alpha)
    # DDP averages gradients over processes: weight each share by world * n_r / n_g, so that the
    # update is that of the mean loss over the global minibatch (exactly the single-process update)
    loss = mean_loss * (dist.world * idx.numel() / n_g)
    if config.mode == "ufm":
        loss = loss + 0.5 * config.lambda_w * core.classifier.weight.pow(2).sum() \
            + 0.5 * config.lambda_h * (dist.world * N / n_g) * h.pow(2).sum() \
            + 0.5 * config.lambda_b * core.classifier.bias.pow(2).sum()
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    return mean_loss.detach() * idx.numel(), (z.detach().argmax(1) != yb).sum(), idx.numel()


def _diverged(run: _Run, what: str, epoch: int, lr: float) -> str:
    return (f"{what} in epoch {epoch} (lr {lr:g}); the run stopped and its last good checkpoint (epoch {run.saved}) "
            f"in {run.out} is intact. Lower the learning rate (lr), or check the data.")


def _record(run: _Run, epoch: int, lr: float) -> list:
    """The records of ``epoch`` (one per split, in the order train, val, test), kept as ``run.last``."""
    records = epoch_records(run.model, run.splits, epoch, lr, run.config, run.dist)
    run.last = {r["split"]: r for r in records}
    return records


def _checkpoint(run: _Run, epoch: int, records: list) -> None:
    """Append ``records``, replace the checkpoint, then ``progress.json`` (rank 0; in this order,
    see ``ufm.records.runs``)."""
    if run.dist.rank == 0:
        path = run.out / RECORDS
        size = append_records(path, records) if records else path.stat().st_size
        state = {"epoch": epoch, "model": run.core.state_dict(), "optimizer": run.opt.state_dict(),
                 "records_bytes": size, "config": run.config.to_dict()}
        atomic_write(run.out / CHECKPOINT, lambda fh: torch.save(state, fh), binary=True)
        write_progress(run.out, epoch, size)
    run.saved = epoch
    run.dist.barrier()


def _check_folder(out: Path, config: TrainConfig) -> None:
    """Refuse a folder that holds a run of another configuration (RESULT_NEUTRAL_KEYS may differ), or
    other work: a sweep or an experiment."""
    for name, what in (("sweep.sqlite", "a sweep"), (EXPERIMENT, "an experiment")):
        if (out / name).is_file():
            raise RunMismatchError(f"{out} holds {what} ({name}), not a run; pass another folder as out.",
                                   param="out", value=str(out))
    try:
        if (out / CONFIG).is_file():
            held = TrainConfig.from_dict(read_config(out)["config"])
        elif (out / CHECKPOINT).is_file():
            held = TrainConfig.from_dict(torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False,
                                                    mmap=True)["config"])
        else:
            return
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise RunMismatchError(f"{out} holds a run whose configuration cannot be read ({e}); pass another folder "
                               "as out.", param="out", value=str(out)) from None
    diff = held.differences(config)
    if diff:
        what = "; ".join(f"{k}: folder has {a!r}, this run {b!r}" for k, a, b in diff)
        raise RunMismatchError(f"The run folder {out} holds a run with a different configuration ({what}). "
                               "Pass another folder as out, or delete this one to start over.", param="out",
                               value=str(out))
