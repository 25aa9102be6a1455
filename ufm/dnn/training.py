"""Training a network under CE or label smoothing, with NC and calibration records and resume.

One run writes to its folder::

    config.json      the full configuration, the dataset and model descriptions, library versions
    metrics.jsonl    raw records: one JSON object per (epoch, split), appended as epochs finish
    checkpoint.pt    the last finished epoch: model, optimizer, number of record bytes written

Every figure and report reads ``config.json`` and ``metrics.jsonl`` only.

Resume and crash safety. After each epoch the records are appended (flushed and fsync'd)
and then the checkpoint is replaced atomically; the checkpoint stores the length of
``metrics.jsonl`` it covers. Running the same command again loads the checkpoint,
truncates ``metrics.jsonl`` to that length (dropping records of an epoch that finished
after the last checkpoint, or a half-written line) and continues. A kill -9 at any moment
therefore loses at most the current epoch and never duplicates or corrupts a record. The
minibatch order of epoch e is a pure function of (seed, e) and the learning rate a pure
function of e, so on CPU a resumed run's records equal an uninterrupted run's bit for bit.

Records (keys of each line of ``metrics.jsonl``), measured in eval mode on the whole split:
``epoch`` (0 = at initialization), ``split`` (train, val, test), ``n``, ``lr``; ``loss`` (the
training loss, CE against the smoothed targets, without penalties), ``nll`` (CE against the
true labels), ``error``; ``nc1``, ``nc2_h``, ``nc2_w`` (and their equinorm / equiangular
parts), ``nc3``, ``nc4`` (conventions of ``ufm.metrics.nc``, from the streaming
accumulators); ``w_norm`` = mean_k ||w_k||, ``h_norm`` = mean_k ||mu_k - mu_G||,
``b_norm`` = ||b||; ``logit_gap`` = mean_i (z_{i,y_i} - mean_{j != y_i} z_ij), ``p_true`` =
mean_i p_{i,y_i}, ``p_off`` = mean_i mean_{j != y_i} p_ij; ``ece`` (15 equal-width bins),
``adaptive_ece``; ``temperature`` (fitted on the val split at that epoch) and ``ece_ts``,
``adaptive_ece_ts``, ``nll_ts`` after temperature scaling; for the test split also
``reliability`` and ``reliability_ts`` (per equal-width bin: count, mean confidence,
accuracy), from which reliability diagrams are drawn. Non-finite values are null.

Multi-GPU: under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in
DistributedDataParallel; every process draws the same epoch order (:func:`epoch_order`) and
takes its share of each global minibatch, weighted so that the update is exactly the
single-process one (a last batch smaller than the number of processes is skipped); the NC
sums are all-reduced and the logits gathered for calibration (evaluation runs on each
process's shard, with rank 0's buffers); only rank 0 writes. BatchNorm statistics are those
of each process's share. A run folder is locked while a run writes it.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch

from .._io import atomic_write, environment, to_jsonable, write_json
from .._validation import InvalidParameterError
from ..losses import get_loss
from ..metrics.calibration import TemperatureAtBoundWarning, calibration_summary, fit_temperature, reliability_bins
from ..metrics.nc import TwoPassNC
from .config import TrainConfig
from .data import load_dataset
from .models import build_model

__all__ = ["train", "evaluate", "epoch_order", "read_records", "read_config", "TrainingDivergedError",
           "RunMismatchError", "RECORD_KEYS"]

#: keys every record of metrics.jsonl has (the issue's minimum set and more)
RECORD_KEYS = ("epoch", "split", "n", "lr", "loss", "nll", "error", "nc1", "nc2_h", "nc2_w", "nc3", "nc4",
               "w_norm", "h_norm", "b_norm", "logit_gap", "p_true", "p_off", "ece", "adaptive_ece",
               "temperature", "ece_ts", "adaptive_ece_ts", "nll_ts")


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class RunMismatchError(InvalidParameterError):
    """A run folder holds a run with a different configuration."""


# ---------------------------------------------------------------------------
# Distributed helpers (no-ops in a single process)

class _Dist:
    def __init__(self, device_kind: str):
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owned = False
        self.dist = dist
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
            self.owned = True

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_reduce(self, t: torch.Tensor) -> None:
        if self.active:
            self.dist.all_reduce(t)

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate ``t`` (n_r, ...) over processes, in rank order (shards may differ in size)."""
        if not self.active:
            return t
        n = torch.tensor([t.shape[0]], device=t.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        self.dist.all_gather(sizes, n)
        sizes = [int(s) for s in sizes]
        pad = torch.zeros((max(sizes) - t.shape[0], *t.shape[1:]), dtype=t.dtype, device=t.device)
        parts = [torch.empty((max(sizes), *t.shape[1:]), dtype=t.dtype, device=t.device) for _ in sizes]
        self.dist.all_gather(parts, torch.cat([t, pad]))
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    def barrier(self) -> None:
        if self.active:
            self.dist.barrier()

    def close(self) -> None:
        if self.owned:
            self.dist.destroy_process_group()


def _device_kind(config: TrainConfig) -> str:
    """'cuda' or 'cpu': what ``config.device`` asks for (``auto``: CUDA when available)."""
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if config.device.startswith("cuda") else "cpu"


def _device(config: TrainConfig, local_rank: int) -> torch.device:
    if _device_kind(config) == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InvalidParameterError(f"The 'device' parameter of train is {config.device!r} but CUDA is not "
                                    "available here; use --device cpu or auto.", param="device")
    if config.device in ("auto", "cuda") or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.cuda.set_device(local_rank)  # under torchrun: process r on GPU LOCAL_RANK, whatever cuda:N says
        return torch.device(f"cuda:{local_rank}")
    return torch.device(config.device)


# ---------------------------------------------------------------------------
# Evaluation

@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float, *,
             batch_size: int = 1024, dist: Optional[_Dist] = None, loss: str = "label_smoothing") -> tuple:
    """NC and logit statistics of one split, in eval mode; returns (record, logits, labels).

    Streams the split once through the network: the features feed the first pass of a
    :class:`~ufm.metrics.nc.TwoPassNC` (class means) and are kept for its second pass (NC1's
    within-class terms on the span of the class means, and NC4); the logits are kept (float64)
    for the loss, error and calibration. Under ``dist`` each process takes a contiguous shard,
    the accumulator's sums are all-reduced and the logits are gathered. ``record`` holds every
    key but the calibration ones.
    """
    core = model.module if hasattr(model, "module") else model
    was_training = core.training
    core.eval()
    dist = dist if dist is not None and dist.active else None
    if dist is not None:  # rank 0's buffers (BatchNorm statistics), as DDP's forward would
        for buf in core.buffers():
            dist.dist.broadcast(buf, 0)
    N = x.shape[0]
    rank, world = (dist.rank, dist.world) if dist is not None else (0, 1)
    chunk = -(-N // world)
    lo, hi = min(N, rank * chunk), min(N, (rank + 1) * chunk)
    W, b = core.classifier.weight.detach(), core.classifier.bias.detach()  # (K, d), (K,)
    acc = TwoPassNC(num_classes, core.feature_dim, W, b, device=x.device)
    feats, logits = [], []
    for start in range(lo, hi, batch_size):
        xb, yb = x[start:min(hi, start + batch_size)], y[start:min(hi, start + batch_size)]
        z, h = core(xb, return_features=True)  # (B, K), (B, d); not through DDP: no collective per batch
        acc.update_means(h, yb)
        feats.append((h, yb))
        logits.append(z.to(torch.float64))
    reduce = dist.all_reduce if dist is not None else None
    finite = torch.tensor([float(all(bool(torch.isfinite(h).all()) for h, _ in feats)
                                 and all(bool(torch.isfinite(z).all()) for z in logits))], device=x.device)
    if reduce is not None:
        reduce(finite)  # every process raises together
    if int(finite) != world:
        raise TrainingDivergedError("the network's features or logits became non-finite")
    st = acc.finish_means(reduce)
    for h, yb in feats:  # the second pass runs over the stored features, not the network
        acc.update_span(h, yb)
    record = acc.measures(reduce)
    Z = torch.cat(logits) if logits else x.new_zeros((0, num_classes), dtype=torch.float64)
    Z, labels = (dist.gather(Z), dist.gather(y[lo:hi])) if dist is not None else (Z, y[lo:hi])
    Z, labels = Z.cpu(), labels.cpu()
    record.update(_logit_statistics(Z, labels, num_classes, alpha, get_loss(loss)))
    record["w_norm"] = float(torch.linalg.vector_norm(W.to(torch.float64), dim=1).mean())
    record["h_norm"] = float(torch.linalg.vector_norm(st.means - st.global_mean, dim=1).mean())
    record["b_norm"] = float(torch.linalg.vector_norm(b.to(torch.float64)))
    record["n"] = int(labels.shape[0])
    core.train(was_training)
    return record, Z, labels


def _logit_statistics(Z: torch.Tensor, y: torch.Tensor, K: int, alpha: float, loss_fn) -> dict:
    """Loss, error, logit gap and mean probabilities from logits ``Z (N, K)`` (float64); the NLL
    comes with the calibration metrics (``ufm.metrics.calibration``)."""
    logp = torch.log_softmax(Z, dim=1)  # (N, K)
    onehot = torch.nn.functional.one_hot(y, K).to(torch.bool)  # (N, K)
    z_true = Z[onehot]  # (N,)
    z_off = (Z.sum(1) - z_true) / (K - 1)  # (N,)
    p_true = logp[onehot].exp()  # (N,)
    return {
        "loss": float(loss_fn(Z, y, alpha)),
        "error": float((Z.argmax(1) != y).double().mean()),
        "logit_gap": float((z_true - z_off).mean()),
        "p_true": float(p_true.mean()),
        "p_off": float(((1 - p_true) / (K - 1)).mean()),
    }


def _bins(Z, y, n_bins, temperature) -> dict:
    b = reliability_bins(Z, y, n_bins, temperature=temperature)
    return {k: b[k] for k in ("count", "confidence", "accuracy")}


def _calibration(Z, y, n_bins, temperature) -> dict:
    """``calibration_summary`` (nll, ECEs, and at ``temperature`` when there is one), every key present."""
    out = {"temperature": None, "ece_ts": None, "adaptive_ece_ts": None, "nll_ts": None}
    out.update(calibration_summary(Z, y, temperature=temperature, n_bins=n_bins))
    return out


# ---------------------------------------------------------------------------
# The run folder

def read_config(run) -> dict:
    """The parsed ``config.json`` of a run folder."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run} is not a training run folder")
    return json.loads(path.read_text())


def read_records(run) -> list:
    """The records of ``metrics.jsonl`` covered by the run's last checkpoint (all lines when
    the run has finished): a half-written last line is never returned."""
    run = Path(run)
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    ckpt = run / "checkpoint.pt"
    # the checkpoint first: the records it covers were written before it, so they are in the file
    # read next, whatever a running writer appends in between
    covered = torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["records_bytes"] \
        if ckpt.is_file() else None
    data = path.read_bytes()
    if covered is not None:
        data = data[:covered]
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda fh: torch.save(state, fh), binary=True)


def _append_records(path: Path, records: list) -> int:
    with open(path, "ab") as fh:
        for r in records:
            fh.write((json.dumps(to_jsonable(r), sort_keys=False) + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())
        return fh.tell()


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the n training samples in ``epoch``: a pure function of (seed, epoch).

    A permutation from a CPU generator seeded with seed * 1_000_003 + epoch (so that seeds do
    not share orders shifted by an epoch). Every process draws the same one; global minibatch t
    is order[tB:(t+1)B] and process r takes its positions r, r + world, ... (no padding, unlike
    DistributedSampler, so a multi-process run trains on exactly the single-process batches).
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class _FolderLock:
    """An exclusive lock on a run folder (``.lock``, fcntl), so two processes never write one run."""

    def __init__(self, out: Path, active: bool):
        self.out, self.active, self.fh = out, active, None

    def __enter__(self):
        if not self.active:
            return self
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        self.out.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.out / ".lock", "w")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            raise RunMismatchError(f"The run folder {self.out} is in use by another process; wait for it, or use "
                                   "another --out folder.", param="out") from None
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()


def _check_folder(out: Path, config: TrainConfig) -> None:
    path = out / "config.json"
    ckpt = out / "checkpoint.pt"
    try:
        if path.is_file():
            held = TrainConfig.from_dict(json.loads(path.read_text())["config"])
        elif ckpt.is_file():
            held = TrainConfig.from_dict(torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["config"])
        else:
            return
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise RunMismatchError(f"{out} holds a run whose configuration cannot be read ({e}); use another --out "
                               "folder.") from None
    diff = held.differences(config)
    if diff:
        what = "; ".join(f"{k}: folder has {a!r}, this run {b!r}" for k, a, b in diff)
        raise RunMismatchError(f"The run folder {out} holds a run with a different configuration ({what}). "
                               "Use another --out folder, or delete this one to start over.", param="out")


# ---------------------------------------------------------------------------
# Training

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
        RunMismatchError: ``out`` holds a run with another configuration (keys named).
        TrainingDivergedError: the loss became NaN/inf; the checkpoint of the last good
            epoch is left as it was.
    """
    if not isinstance(config, TrainConfig):
        raise InvalidParameterError(f"The 'config' parameter of train must be a TrainConfig. "
                                    f"Got {type(config).__name__} instead.", param="config")
    log = log or (lambda msg: None)
    out = Path(out)
    dist = _Dist(_device_kind(config))
    try:
        with _FolderLock(out, dist.rank == 0):
            return _train(config, out, progress and dist.rank == 0, log if dist.rank == 0 else (lambda m: None),
                          data, dist)
    finally:
        dist.close()


def _train(config, out, progress, log, data, dist) -> dict:
    from tqdm import tqdm

    t0 = time.perf_counter()
    _check_folder(out, config)
    device = _device(config, dist.local_rank)
    dtype = getattr(torch, config.dtype)
    ds = data if data is not None else load_dataset(
        config.dataset, data_dir=config.data_dir, val_fraction=config.val_fraction, seed=config.data_seed,
        train_per_class=config.train_per_class, test_per_class=config.test_per_class, **config.dataset_options)
    K = ds.num_classes
    torch.manual_seed(config.seed)
    model = build_model(config.model, input_shape=tuple(ds.input_shape), num_classes=K, **config.model_options)
    model = model.to(device=device, dtype=dtype)
    core = model
    splits = {"train": (ds.x_train, ds.y_train), "val": (ds.x_val, ds.y_val), "test": (ds.x_test, ds.y_test)}
    splits = {k: (x.to(device=device, dtype=dtype), y.to(device)) for k, (x, y) in splits.items() if len(y)}
    x_train, y_train = splits["train"]
    N = x_train.shape[0]

    head = [core.classifier.weight, core.classifier.bias]
    backbone = [p for p in core.parameters() if all(p is not q for q in head)]
    if config.mode == "ufm":
        groups = [{"params": backbone, "weight_decay": config.backbone_weight_decay},
                  {"params": head, "weight_decay": 0.0}]
    else:
        groups = [{"params": list(core.parameters()), "weight_decay": config.weight_decay}]
    opt = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)

    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, rec_path = out / "checkpoint.pt", out / "metrics.jsonl"
    meta = {"config": config.to_dict(), "dataset": ds.describe(),
            "model": {"name": config.model, "parameters": sum(p.numel() for p in core.parameters()),
                      "feature_dim": core.feature_dim, "num_classes": K},
            "world_size": dist.world, "environment": environment()}
    start, resumed_from = 0, None
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        core.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = resumed_from = state["epoch"]
        if dist.rank == 0:
            with open(rec_path, "ab") as fh:  # drop what was appended after the checkpoint
                fh.truncate(state["records_bytes"])
            if not (out / "config.json").is_file():
                write_json(out / "config.json", meta)
        log(f"{out}: resuming after epoch {start} of {config.epochs}")
    elif dist.rank == 0:
        write_json(out / "config.json", meta)
        rec_path.write_bytes(b"")
    dist.barrier()
    if dist.active:
        model = torch.nn.parallel.DistributedDataParallel(
            core, device_ids=[device.index] if device.type == "cuda" else None)

    record_at = set(config.record_epochs())
    loss_fn = get_loss(config.loss)
    bar = tqdm(total=config.epochs, initial=start, disable=not progress, desc=out.name, unit="epoch",
               leave=False, dynamic_ncols=True)
    last = {}
    saved = start  # the epoch of the last checkpoint

    def record(epoch, lr):
        nonlocal last
        results = {}
        temperature = None
        for split in ("val", "train", "test"):
            if split not in splits:
                continue
            rec, Z, y = evaluate(model, *splits[split], K, config.alpha, batch_size=config.eval_batch_size,
                                 dist=dist, loss=config.loss)
            if split == "val":
                with warnings.catch_warnings():  # at bounds (e.g. at initialization): recorded as such
                    warnings.simplefilter("ignore", TemperatureAtBoundWarning)
                    temperature = fit_temperature(Z, y)
            rec.update(_calibration(Z, y, config.n_bins, temperature))
            if split == "test":  # reliability diagrams are drawn from these raw bins
                rec["reliability"] = _bins(Z, y, config.n_bins, 1.0)
                rec["reliability_ts"] = _bins(Z, y, config.n_bins, temperature) if temperature else None
            results[split] = {"epoch": epoch, "split": split, "lr": lr, **rec}
        last = results
        return [results[s] for s in ("train", "val", "test") if s in results]

    def checkpoint(epoch, records):
        nonlocal saved
        if dist.rank == 0:
            size = _append_records(rec_path, records) if records else rec_path.stat().st_size
            _save_checkpoint(ckpt_path, {"epoch": epoch, "model": core.state_dict(), "optimizer": opt.state_dict(),
                                         "records_bytes": size, "config": config.to_dict()})
        saved = epoch
        dist.barrier()

    if start == 0:
        checkpoint(0, record(0, config.learning_rate(1)))
    pending = []
    for epoch in range(start + 1, config.epochs + 1):
        lr = config.learning_rate(epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        order = epoch_order(N, config.seed, epoch).to(device)  # (N,), the same in every process
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        wrong = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        for s in range(0, N, config.batch_size):
            batch = order[s:s + config.batch_size]  # the global minibatch, (n_g,)
            n_g = batch.numel()
            if n_g < dist.world:  # a last batch too small to give every process a sample: skipped
                continue
            idx = batch[dist.rank::dist.world]  # this process's share, (n_r,)
            xb, yb = x_train[idx], y_train[idx]
            z, h = model(xb, return_features=True)  # (n_r, K), (n_r, d)
            mean_loss = loss_fn(z, yb, config.alpha)
            # DDP averages gradients over processes: weight each share by world * n_r / n_g, so that the
            # update is that of the mean loss over the global minibatch (exactly the single-process update)
            loss = mean_loss * (dist.world * idx.numel() / n_g)
            if config.mode == "ufm":
                loss = loss + 0.5 * config.lambda_w * core.classifier.weight.pow(2).sum() \
                    + 0.5 * config.lambda_h * (dist.world * N / n_g) * h.pow(2).sum() \
                    + 0.5 * config.lambda_b * core.classifier.bias.pow(2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += mean_loss.detach() * idx.numel()
            wrong += (z.detach().argmax(1) != yb).sum()
            seen += idx.numel()
        sums = torch.stack([loss_sum, wrong, torch.tensor(float(seen), dtype=torch.float64, device=device)])
        dist.all_reduce(sums)  # loss sum, errors, samples of the epoch over every process
        train_loss = float(sums[0] / sums[2])
        finite = torch.tensor(float(all(bool(torch.isfinite(p).all()) for p in core.parameters())), device=device)
        dist.all_reduce(finite)  # every process stops together
        if not math.isfinite(train_loss) or int(finite) != dist.world:
            bar.close()
            what = f"the training loss became {train_loss}" if not math.isfinite(train_loss) \
                else "the weights became non-finite"
            raise TrainingDivergedError(
                f"{what} in epoch {epoch} (lr {lr:g}); the run stopped and its last good checkpoint (epoch {saved}) "
                f"in {out} is intact. Lower --lr, or check the data.")
        try:
            records = record(epoch, lr) if epoch in record_at else []
        except TrainingDivergedError as e:
            bar.close()
            raise TrainingDivergedError(f"{e} in epoch {epoch} (lr {lr:g}); the run stopped and its last good "
                                        f"checkpoint (epoch {saved}) in {out} is intact. Lower --lr, or check the "
                                        "data.") from None
        pending += records
        if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
            checkpoint(epoch, pending)
            pending = []
        test = last.get("test", last.get("train", {}))
        bar.set_postfix(loss=f"{train_loss:.4f}", train_err=f"{float(sums[1] / sums[2]):.3f}",
                        test_err=f"{test.get('error', float('nan')):.3f}")
        bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    if start < config.epochs:
        log(f"{out}: {config.epochs} epochs done in {seconds:.1f} s")
    final = {}
    if dist.rank == 0:
        for r in read_records(out):
            final[r["split"]] = r
    return {"out": str(out), "epochs": config.epochs, "resumed_from": resumed_from, "seconds": seconds,
            "final": final}
