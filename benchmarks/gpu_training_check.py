"""A short GPU check of network training: speed on CUDA, agreement with the CPU, and DDP.

    python benchmarks/gpu_training_check.py [--device cuda] [--out gpu_training_check.json] [--quick]

Measures, on the machine it runs on (every run through ``ufm.dnn.training``, records every epoch):

1. ``mnist1d-mlp`` (MNIST-1D, MLP 3x256, batch 128, float32), ``--epochs`` epochs on ``--device``
   and on the CPU: wall time per epoch, and the largest relative difference between the two runs'
   last train/test records (loss, error, NC1, ECE) — float32 kernels differ, so a small difference
   is expected, a large one is a bug;
2. a CIFAR-shaped ``resnet18`` epoch (width 64, batch 128) on CIFAR-10-shaped random pixels (50,000
   training and 10,000 test images, written in the published python-version format and read by
   ufm's own reader, uint8 on the device), timed by ``ufm.dnn.training.time_training`` (a whole
   epoch of SGD steps, and a record's forward passes) in float32 and with ``autocast="bfloat16"``
   plus ``memory_format="channels_last"``, then one real epoch of ``train`` in each (two records
   included) with the largest relative difference between their last records, and whether the
   uint8 pixels normalized on the device equal the float inputs bit for bit; ``--quick`` uses
   1,000 images and width 8;
3. DistributedDataParallel: with 2 or more CUDA devices, ``torchrun --nproc_per_node=2`` against one
   process on the same data (Gaussian mixture, MLP, float64): the largest relative difference
   between their records (expected at rounding level). With fewer devices, 2 CPU processes with
   gloo instead, and the JSON says that multi-GPU was not checked.

Prints one JSON object and writes it to ``--out``. ``--device cpu --quick`` checks that the script
runs on a machine without a GPU (seconds).
"""
import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import numpy as np

from ufm.dnn import TrainConfig, load_experiment, read_records, train
from ufm.dnn.data import load_dataset
from ufm.dnn.inputs import device_inputs
from ufm.dnn.training import time_training

KEYS = ("loss", "error", "nc1", "ece")


def _rel(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) / max(abs(a[k]), abs(b[k]), 1e-12) for k in KEYS)


def _run(cfg: TrainConfig, folder: Path) -> tuple:
    t0 = time.perf_counter()
    train(cfg, folder, progress=False)
    seconds = time.perf_counter() - t0
    last = {}
    for r in read_records(folder):
        last[r["split"]] = r
    return seconds / cfg.epochs, last


def _cifar_shaped(root: Path, n_train: int, n_test: int) -> None:
    """``root/cifar-10-batches-py`` in the published layout, holding random pixels and labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    gen = np.random.default_rng(0)

    def batch(n):
        return {"data": gen.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(map(int, np.arange(n) % 10))}

    for i, part in enumerate(np.array_split(np.arange(n_train), 5), 1):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch(len(part)), protocol=4))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(n_test), protocol=4))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{k}" for k in range(10)]}, protocol=4))


def _cifar_resnet(args, tmp: Path) -> dict:
    n_train, n_test, width = (1000, 200, 8) if args.quick else (50000, 10000, 64)
    _cifar_shaped(tmp / "cifar", n_train, n_test)
    base = TrainConfig(dataset="cifar10", data_dir=str(tmp / "cifar"), model="resnet18", model_options={"width": width},
                       epochs=1, batch_size=128, device=args.device)
    fast = base.replace(autocast="bfloat16", memory_format="channels_last" if args.device != "cpu" else "contiguous")
    out = {"train_images": n_train, "width": width}
    ds = load_dataset("cifar10", data_dir=str(tmp / "cifar"), val_fraction=0.1)
    device = torch.device(args.device)
    pixels = device_inputs(ds.x_train, ds.uint8["train"], ds, device, torch.float32)
    idx = torch.randperm(n_train // 10, generator=torch.Generator().manual_seed(0))[:512]
    out["pixels_equal_floats_on_device"] = (type(pixels).__name__ == "PixelInputs"
                                            and bool(torch.equal(pixels[idx], ds.x_train[idx].to(device))))
    for name, cfg in (("float32", base), ("bfloat16_channels_last", fast)):
        t = time_training(cfg, budget_s=1e9)  # a whole epoch of steps
        seconds, last = _run(cfg, tmp / f"resnet-{name}")
        out[name] = {"epoch_seconds_timed": t["epoch_seconds"], "record_seconds_estimated": t["record_seconds"],
                     "images_per_second": n_train / t["epoch_seconds"], "train_one_epoch_seconds": seconds,
                     "last": {k: last["test"][k] for k in KEYS}}
    out["max_rel_diff_test"] = _rel(out["float32"]["last"], out["bfloat16_channels_last"]["last"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", default="gpu_training_check.json")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    epochs = 2 if args.quick else args.epochs
    tmp = Path(tempfile.mkdtemp(prefix="ufm-gpu-train-"))
    out = {"machine": platform.node(), "torch": torch.__version__, "device": args.device,
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

    base = TrainConfig.from_dict({**load_experiment("mnist1d-mlp").base, "epochs": epochs, "milestones": [],
                                  "eval_every": 1})
    _run(base.replace(device=args.device, epochs=1), tmp / "warm-up")  # data cache, CUDA context, kernels
    dev_s, dev_last = _run(base.replace(device=args.device), tmp / "mlp-dev")
    cpu_s, cpu_last = _run(base.replace(device="cpu"), tmp / "mlp-cpu")
    out["mlp"] = {"epochs": epochs, "seconds_per_epoch_device": dev_s, "seconds_per_epoch_cpu": cpu_s,
                  "speedup": cpu_s / dev_s,
                  "max_rel_diff_train": _rel(dev_last["train"], cpu_last["train"]),
                  "max_rel_diff_test": _rel(dev_last["test"], cpu_last["test"])}

    out["resnet18_cifar_shaped"] = _cifar_resnet(args, tmp)

    multi_gpu = torch.cuda.is_available() and torch.cuda.device_count() >= 2 and args.device.startswith("cuda")
    dev = "cuda" if multi_gpu else "cpu"
    flags = ["-m", "ufm", "train", "--dataset", "gaussian", "--dataset-option", "num_classes=4",
             "--model-option", "width=32", "--epochs", "3", "--batch-size", "32", "--dtype", "float64",
             "--device", dev, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, *flags, "--out", str(tmp / "one")], check=True, capture_output=True, env=env)
    t0 = time.perf_counter()
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          *flags, "--out", str(tmp / "two")], capture_output=True, text=True, env=env)
    out["ddp"] = {"backend": "nccl" if multi_gpu else "gloo (CPU)", "multi_gpu_checked": multi_gpu,
                  "returncode": ddp.returncode, "seconds": time.perf_counter() - t0}
    if ddp.returncode == 0:
        one, two = read_records(tmp / "one"), read_records(tmp / "two")
        out["ddp"]["records"] = len(two)
        out["ddp"]["max_rel_diff"] = max(_rel(a, b) for a, b in zip(one, two)) if len(one) == len(two) else None
    else:
        out["ddp"]["stderr"] = ddp.stderr[-2000:]
    print(json.dumps(out, indent=1))
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
