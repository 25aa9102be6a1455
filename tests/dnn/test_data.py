"""Dataset loaders: shapes, balance, determinism, the stratified split, standardization,
file formats and the errors that say how to get the data."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from miniature import write_idx
from ufm import InvalidParameterError
from ufm.dnn.data import idx
from ufm.dnn.data import DATASETS, Dataset, DatasetNotFoundError, load_dataset, read_idx

GAUSS = dict(num_classes=4, dim=6, train_size_per_class=50, test_size_per_class=30)


def raw_inputs(ds: Dataset, x: torch.Tensor) -> np.ndarray:
    """Undo the standardization, in float64."""
    return (x.double() * ds.std.double() + ds.mean.double()).numpy()


def match_rows(a: np.ndarray, b: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Index into b of each row of a (flattened), asserting the match is within tol."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    dist = torch.cdist(torch.from_numpy(a), torch.from_numpy(b.astype(np.float64)))  # (len a, len b)
    d, j = dist.min(1)
    assert float(d.max()) < tol
    return j.numpy()


# --- gaussian -----------------------------------------------------------------------------------

def test_gaussian_shapes_balance_and_dtypes():
    ds = load_dataset("gaussian", val_fraction=0.2, seed=3, **GAUSS)
    assert (ds.name, ds.num_classes, ds.input_shape) == ("gaussian", 4, (6,))
    assert ds.x_train.shape == (160, 6) and ds.x_val.shape == (40, 6) and ds.x_test.shape == (120, 6)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert torch.bincount(ds.y_train).tolist() == [40] * 4  # 50 - round(0.2 * 50)
    assert torch.bincount(ds.y_val).tolist() == [10] * 4
    assert torch.bincount(ds.y_test).tolist() == [30] * 4
    d = ds.describe()
    assert d["sizes"] == {"train": 160, "val": 40, "test": 120} and d["input_shape"] == [6]
    assert d["num_classes"] == 4 and "seed=3" in d["source"] and d["config"]["dim"] == 6
    assert d["config"]["noise"] == 1.0  # defaults filled in
    assert d["class_counts"] == {"train": [40] * 4, "val": [10] * 4, "test": [30] * 4}  # balanced
    json.dumps(d)  # plain JSON types


def test_gaussian_determinism():
    a = load_dataset("gaussian", seed=5, **GAUSS)
    b = load_dataset("gaussian", seed=5, **GAUSS)
    c = load_dataset("gaussian", seed=6, **GAUSS)
    for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.x_test, c.x_test)


def test_gaussian_split_is_a_stratified_partition_and_normalized_by_train_statistics():
    seed, frac = 2, 0.3
    raw = DATASETS["gaussian"](seed=seed, **GAUSS)
    ds = load_dataset("gaussian", seed=seed, val_fraction=frac, **GAUSS)
    i_fit = match_rows(raw_inputs(ds, ds.x_train), raw.x_train)
    i_val = match_rows(raw_inputs(ds, ds.x_val), raw.x_train)
    # disjoint, and together the whole generated training set, labels carried along
    assert len(set(i_fit) & set(i_val)) == 0
    assert sorted(np.concatenate([i_fit, i_val])) == list(range(len(raw.y_train)))
    assert np.array_equal(ds.y_train.numpy(), raw.y_train[i_fit])
    assert np.array_equal(ds.y_val.numpy(), raw.y_train[i_val])
    counts = np.bincount(raw.y_train, minlength=4)
    assert np.bincount(ds.y_val.numpy(), minlength=4).tolist() == [round(frac * n) for n in counts]  # 15 each

    # statistics of the training part only, computed independently
    fit = raw.x_train[i_fit]  # (N_fit, dim), float64
    m, s = fit.mean(0), fit.std(0)
    xt = ds.x_train.double().numpy()
    assert np.allclose(xt.mean(0), 0, atol=1e-6) and np.allclose(xt.std(0), 1, atol=1e-5)
    assert np.allclose(ds.x_test.numpy(), (raw.x_test - m) / s, atol=1e-5)
    assert np.allclose(ds.x_val.numpy(), (raw.x_train[i_val] - m) / s, atol=1e-5)
    assert abs(ds.x_val.double().mean().item()) > 1e-4  # val is not re-centred on its own statistics


def test_gaussian_without_validation_and_with_subsampling():
    ds = load_dataset("gaussian", val_fraction=0, **GAUSS)
    assert ds.x_val.shape == (0, 6) and ds.y_val.shape == (0,) and len(ds.y_train) == 200
    raw = DATASETS["gaussian"](seed=0, **GAUSS)
    small = load_dataset("gaussian", val_fraction=0, train_per_class=7, test_per_class=3, **GAUSS)
    assert torch.bincount(small.y_train).tolist() == [7] * 4 and torch.bincount(small.y_test).tolist() == [3] * 4
    j = match_rows(raw_inputs(small, small.x_train), raw.x_train)
    assert len(set(j)) == 28 and np.array_equal(raw.y_train[j], small.y_train.numpy())
    # the subset of 7 is nested in the subset of 12 drawn with the same seed
    larger = load_dataset("gaussian", val_fraction=0, train_per_class=12, **GAUSS)
    assert set(j) <= set(match_rows(raw_inputs(larger, larger.x_train), raw.x_train))


def test_val_fraction_that_empties_a_class_is_refused():
    with pytest.raises(InvalidParameterError, match="'val_fraction'.*class"):
        load_dataset("gaussian", val_fraction=0.9, train_per_class=1, **GAUSS)


# --- mnist1d --------------------------------------------------------------------------------------

def test_mnist1d_offline_cached_and_identical(tmp_path, monkeypatch):
    import mnist1d.data

    def no_download(*args, **kwargs):
        raise AssertionError("mnist1d.data.get_dataset (which downloads) must not be called")

    monkeypatch.setattr(mnist1d.data, "get_dataset", no_download)
    state = np.random.get_state()[1].copy()
    a = load_dataset("mnist1d", data_dir=tmp_path, num_samples=500)
    assert np.array_equal(np.random.get_state()[1], state)  # the global generator is left alone
    cache = tmp_path / "mnist1d-500-42.npz"
    assert cache.is_file() and [p.name for p in tmp_path.iterdir()] == [cache.name]
    assert a.num_classes == 10 and a.input_shape == (40,)
    assert a.x_train.shape[1:] == (40,) and len(a.y_train) + len(a.y_val) == 400 and len(a.y_test) == 100
    assert int(torch.cat([a.y_train, a.y_test]).max()) == 9

    def no_generate(*args, **kwargs):
        raise AssertionError("the second load must read the cache")

    monkeypatch.setattr(mnist1d.data, "make_dataset", no_generate)
    b = load_dataset("mnist1d", data_dir=tmp_path, num_samples=500)
    for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    with np.load(cache) as f:  # the cache holds the generator's training set, split into train + val
        j = match_rows(raw_inputs(a, a.x_val), f["x"])
        assert np.array_equal(f["y"][j], a.y_val.numpy())


# --- digits ---------------------------------------------------------------------------------------

def test_digits_sizes_and_stratified_splits():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    assert ds.num_classes == 10 and ds.input_shape == (1, 8, 8) and ds.x_train.shape[1:] == (1, 8, 8)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    n_k = np.bincount(load_digits().target, minlength=10)
    test_k = np.array([round(0.2 * n) for n in n_k])
    assert np.bincount(ds.y_test.numpy(), minlength=10).tolist() == test_k.tolist()
    assert np.bincount(ds.y_val.numpy(), minlength=10).tolist() == [round(0.1 * n) for n in n_k - test_k]
    assert abs(ds.x_train.double().mean().item()) < 1e-6 and abs(ds.x_train.double().std(unbiased=False) - 1) < 1e-5
    # the test set does not move with the training seed
    assert torch.equal(load_dataset("digits", seed=4).y_test, ds.y_test)


def test_class_counts_say_whether_the_training_set_is_balanced():
    """digits is unbalanced (174-183 images per class); after the test and validation splits and a
    balanced subsample, the counts are those of the labels of each split."""
    from sklearn.datasets import load_digits

    full = np.bincount(load_digits().target, minlength=10)
    assert (full.min(), full.max()) == (174, 183)
    ds = load_dataset("digits", val_fraction=0.1)
    counts = ds.describe()["class_counts"]
    for split in ("train", "val", "test"):
        y = getattr(ds, f"y_{split}")
        assert counts[split] == np.bincount(y.numpy(), minlength=10).tolist() and sum(counts[split]) == len(y)
        assert all(type(c) is int for c in counts[split])
    assert (np.array(counts["train"]) + counts["val"] + counts["test"]).tolist() == full.tolist()
    assert len(set(counts["train"])) > 1  # unbalanced
    sub = load_dataset("digits", val_fraction=0.25, train_per_class=100).describe()["class_counts"]
    assert sub["train"] == [75] * 10 and sub["val"] == [25] * 10


# --- fashion-mnist --------------------------------------------------------------------------------

def test_fashion_mnist_installed():
    try:
        ds = load_dataset("fashion-mnist", train_per_class=20, test_per_class=10)
    except DatasetNotFoundError as err:
        pytest.skip(f"Fashion-MNIST is not installed here: {err}")
    assert ds.num_classes == 10 and ds.input_shape == (1, 28, 28)
    assert ds.x_train.shape == (180, 1, 28, 28) and ds.x_val.shape == (20, 1, 28, 28)
    assert ds.x_test.shape == (100, 1, 28, 28)
    assert torch.bincount(ds.y_train).tolist() == [18] * 10 and torch.bincount(ds.y_test).tolist() == [10] * 10
    assert int(ds.y_train.min()) == 0 and int(ds.y_train.max()) == 9
    x = ds.x_train.double()
    assert abs(x.mean().item()) < 1e-6 and abs(x.std(unbiased=False).item() - 1) < 1e-5
    back = raw_inputs(ds, ds.x_test)  # 8-bit pixels / 255
    assert back.min() > -1e-5 and back.max() < 1 + 1e-5 and np.allclose(back * 255, np.round(back * 255), atol=1e-3)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    cases = {
        0x08: rng.integers(0, 256, (3, 4, 5)).astype(np.uint8),
        0x09: rng.integers(-128, 128, (7,)).astype(np.int8),
        0x0B: rng.integers(-3000, 3000, (2, 3)).astype(np.int16),
        0x0C: rng.integers(-10**6, 10**6, (4, 2)).astype(np.int32),
        0x0D: rng.standard_normal((2, 2, 2)).astype(np.float32),
        0x0E: rng.standard_normal((5,)),
    }
    for code, array in cases.items():
        path = tmp_path / (f"a{code}" + (".gz" if compress else ""))
        write_idx(path, array, code, compress)
        back = read_idx(path)
        assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8), 0x08, False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_reads_idx_files_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "FASHION_MNIST_DIRS", ())
    monkeypatch.delenv("UFM_DATA", raising=False)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(1)
    y_tr, y_te = np.repeat(np.arange(10), 3).astype(np.uint8), np.arange(10).astype(np.uint8)
    x_tr = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8)
    x_te = rng.integers(0, 256, (10, 28, 28)).astype(np.uint8)
    write_idx(folder / "train-images-idx3-ubyte.gz", x_tr, 0x08, True)
    write_idx(folder / "train-labels-idx1-ubyte", y_tr, 0x08, False)
    write_idx(folder / "t10k-images-idx3-ubyte", x_te, 0x08, False)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_te, 0x08, True)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, val_fraction=0)
    assert str(folder) in ds.source and ds.x_train.shape == (30, 1, 28, 28)
    assert np.array_equal(ds.y_train.numpy(), y_tr) and np.array_equal(ds.y_test.numpy(), y_te)
    assert np.allclose(raw_inputs(ds, ds.x_test)[:, 0] * 255, x_te, atol=1e-3)
    m = x_tr.astype(np.float64).mean() / 255
    assert abs(ds.mean.item() - m) < 1e-6 and abs(ds.std.item() - x_tr.std() / 255) < 1e-6


def test_fashion_mnist_missing_says_where_and_how(tmp_path, no_data):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", data_dir=empty)
    msg = str(info.value)
    assert str(empty) in msg and str(empty / "fashion-mnist") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "zalandoresearch/fashion-mnist" in msg
    assert "ufm data download fashion-mnist" in msg
    assert isinstance(info.value, FileNotFoundError)
    cache = no_data / ".cache" / "ufm"
    assert info.value.searched == [str(empty / "fashion-mnist"), str(empty), str(cache / "fashion-mnist"), str(cache)]


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(name="imagenet"), r"The 'name' parameter of load_dataset must be a str among \{'cifar10', .*'gaussian'"
                            r".*'tinyimagenet'\}. Got 'imagenet' instead."),
    (dict(name="gaussian", val_fraction=1.5), r"The 'val_fraction' parameter of load_dataset must be a float in "
                                              r"the range \[0, 1\). Got 1.5 instead."),
    (dict(name="gaussian", seed=-1), r"'seed' parameter .* an int in the range \[0, inf\)"),
    (dict(name="gaussian", train_per_class=0), r"'train_per_class' parameter .* \[1, inf\)"),
    (dict(name="gaussian", test_per_class=2.5), r"'test_per_class' parameter"),
    (dict(name="gaussian", download="yes"), r"'download' parameter .* a bool"),
    (dict(name="gaussian", classes=3), r"Unknown option 'classes' .* valid options: 'dim', 'noise', 'num_classes'"),
    (dict(name="gaussian", noise=0.0), r"'noise' parameter .* \(0, inf\)"),
    (dict(name="cifar10", dim=3), r"Unknown option 'dim' .* 'cifar10'; valid options: none"),
    (dict(name="digits", train_per_class=1000), r"The 'train_per_class' parameter of load_dataset must be an int "
                                                r"in the range \[1, \d+\] for 'digits'.*Got 1000 instead."),
    (dict(name="digits", test_per_class=40), r"'test_per_class' parameter .* \[1, \d+\]"),
])
def test_bad_arguments_name_the_parameter(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        load_dataset(**kwargs)


def test_optional_packages_are_not_imported_with_the_module():
    code = ("import sys, ufm.dnn.data; "
            "print(sorted(m for m in ('torchvision', 'sklearn', 'mnist1d', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
