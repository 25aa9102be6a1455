"""Inputs on the device and the precision of the passes: 8-bit pixels normalized batch by batch
give the float inputs exactly (and the same records), channels_last and bfloat16 autocast run."""
import dataclasses

import numpy as np
import pytest
import torch

from miniature import pattern, write_cifar10
from ufm.dnn.config import TrainConfig
from ufm.dnn.data import load_dataset
from ufm.dnn.inputs import PixelInputs, device_inputs
from ufm.dnn.training import train
from ufm.records.runs import read_records


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 5))
    write_cifar10(root, pattern(50, 3, 32, 32, seed=1), y, pattern(20, 3, 32, 32, seed=2), np.arange(20) % 10)
    return root


def config(cifar_dir, **changes) -> TrainConfig:
    base = dict(dataset="cifar10", data_dir=str(cifar_dir), val_fraction=0.2, model="resnet18",
                model_options={"width": 2}, epochs=2, batch_size=16, lr=0.05, eval_batch_size=16, device="cpu")
    return TrainConfig(**{**base, **changes})


def comparable(records) -> list:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_pixels_normalized_per_batch_equal_the_float_inputs(cifar_dir):
    ds = load_dataset("cifar10", data_dir=cifar_dir, val_fraction=0.2)
    assert set(ds.uint8) == {"train", "val", "test"} and ds.uint8["train"].dtype == torch.uint8
    for split in ("train", "val", "test"):
        x = getattr(ds, f"x_{split}")
        inputs = device_inputs(x, ds.uint8[split], ds, torch.device("cpu"), torch.float32)
        assert isinstance(inputs, PixelInputs) and inputs.shape == x.shape
        assert torch.equal(inputs[2:7], x[2:7])  # bit for bit
        idx = torch.tensor([5, 0, 3])
        assert torch.equal(inputs[idx], x[idx])
    as64 = device_inputs(ds.x_test, ds.uint8["test"], ds, torch.device("cpu"), torch.float64)
    assert as64[0:3].dtype == torch.float64 and torch.equal(as64[0:3], ds.x_test[0:3].double())
    cl = device_inputs(ds.x_test, ds.uint8["test"], ds, torch.device("cpu"), torch.float32, "channels_last")
    assert cl[0:4].is_contiguous(memory_format=torch.channels_last) and torch.equal(cl[0:4], ds.x_test[0:4])
    # data that are not 8-bit stay float tensors
    g = load_dataset("gaussian", num_classes=3, dim=4, train_size_per_class=5, test_size_per_class=5)
    assert g.uint8 == {} and isinstance(device_inputs(g.x_train, None, g, torch.device("cpu"), torch.float32),
                                        torch.Tensor)


def test_a_run_on_pixels_records_what_a_run_on_float_inputs_records(cifar_dir, tmp_path):
    cfg = config(cifar_dir)
    train(cfg, tmp_path / "pixels", progress=False)  # loads the dataset: pixels kept as uint8
    floats = dataclasses.replace(load_dataset("cifar10", data_dir=cifar_dir, val_fraction=0.2), uint8={})
    train(cfg, tmp_path / "floats", progress=False, data=floats)
    a, b = read_records(tmp_path / "pixels"), read_records(tmp_path / "floats")
    assert len(a) == 9 and comparable(a) == comparable(b)


def _linear_output_dtypes(cfg, out) -> set:
    """Train ``cfg`` watching every nn.Linear; returns the dtypes of their outputs."""
    seen = set()
    linear = torch.nn.Linear.forward

    def linear_forward(self, x):
        y = linear(self, x)
        seen.add(y.dtype)
        return y

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.Linear, "forward", linear_forward)
        train(cfg, out, progress=False)
    return seen


def test_bfloat16_autocast_runs_the_passes_in_bfloat16_and_records_finite_metrics(cifar_dir, tmp_path):
    seen = _linear_output_dtypes(config(cifar_dir, autocast="bfloat16", epochs=1), tmp_path / "bf16")
    assert seen == {torch.bfloat16}
    rec = read_records(tmp_path / "bf16")
    plain = config(cifar_dir, epochs=1)
    train(plain, tmp_path / "fp32", progress=False)
    ref = read_records(tmp_path / "fp32")
    for r, q in zip(rec, ref):
        for key in ("loss", "nc1", "nc2_h", "nc3", "ece", "logit_gap"):
            assert np.isfinite(r[key])
        # bfloat16 keeps ~3 significant digits: the records differ from float32's, but not by much
        assert r["loss"] != q["loss"] and abs(r["loss"] - q["loss"]) < 0.05 * abs(q["loss"])


def test_channels_last_is_refused_on_the_cpu_before_anything_is_written(cifar_dir, tmp_path, cli):
    # torch 2.13.0+cpu hangs in the backward pass of a 1x1 stride-2 convolution in channels_last
    with pytest.raises(ValueError, match="'memory_format' parameter of TrainConfig must be 'contiguous' on a CPU"):
        train(config(cifar_dir, memory_format="channels_last"), tmp_path / "cl", progress=False)
    assert not (tmp_path / "cl" / "metrics.jsonl").exists()
    code, _, err = cli("train", "--out", tmp_path / "cl2", "--dataset", "cifar10", "--data-dir", cifar_dir,
                       "--model", "mlp", "--device", "cpu", "--memory-format", "channels_last")
    assert code == 2 and err.count("\n") == 1 and "--memory-format must be 'contiguous' on a CPU device" in err


@pytest.mark.parametrize("field, value", [("memory_format", "nchw"), ("autocast", "float16")])
def test_bad_precision_options_name_the_field(cifar_dir, field, value):
    with pytest.raises(ValueError, match=f"'{field}' parameter of TrainConfig must be a str among"):
        config(cifar_dir, **{field: value})


def test_a_dataset_whose_inputs_changed_after_loading_keeps_its_float_inputs(cifar_dir):
    ds = load_dataset("cifar10", data_dir=cifar_dir, val_fraction=0.2)
    changed = dataclasses.replace(ds, x_test=ds.x_test + 1)  # uint8 left as loaded: no longer its pixels
    inputs = device_inputs(changed.x_test, changed.uint8["test"], changed, torch.device("cpu"), torch.float32)
    assert isinstance(inputs, torch.Tensor) and torch.equal(inputs, ds.x_test + 1)


def test_autocast_needs_a_float32_network(cifar_dir):
    with pytest.raises(ValueError, match="'autocast' parameter of TrainConfig must be 'off' with dtype 'float64'"):
        config(cifar_dir, autocast="bfloat16", dtype="float64")
