"""The native readers of the paper's datasets on miniature files in their published formats:
orientation, labels, order, the folders searched, corrupted files, and pickles carrying code."""
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from miniature import (pattern, py2_pickle, write_cifar10, write_cifar100, write_idx, write_idx_dataset, write_stl10,
                       write_tinyimagenet)
from ufm._core.validation import DataFileError
from ufm.dnn.data import DatasetNotFoundError, load_dataset
from ufm.dnn.data.pickles import load_pickle


def raw_uint8(ds, x) -> np.ndarray:
    """The 8-bit pixels a standardized split came from (undo the standardization and the 1/255)."""
    back = (x.double() * ds.std.double() + ds.mean.double()).numpy() * 255
    assert np.allclose(back, np.round(back), atol=1e-3)
    return np.round(back).astype(np.uint8)


def labels(n_per_class: int, K: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(K), n_per_class))


def cifar10_files(root, py2=True):
    y_tr, y_te = labels(2, 10, 0), labels(1, 10, 1)
    x_tr, x_te = pattern(20, 3, 32, 32, seed=2), pattern(10, 3, 32, 32, seed=3)
    folder = write_cifar10(root, x_tr, y_tr, x_te, y_te, py2=py2)
    return folder, x_tr, y_tr, x_te, y_te


# --- CIFAR ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("py2", [True, False], ids=["python2-pickles", "python3-pickles"])
def test_cifar10_reads_back_the_images_in_order(tmp_path, no_data, py2):
    _, x_tr, y_tr, x_te, y_te = cifar10_files(tmp_path, py2)
    ds = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0)
    assert ds.num_classes == 10 and ds.input_shape == (3, 32, 32)
    # the five batches in order 1..5, then the test batch; pixels exactly, in (C, H, W)
    assert np.array_equal(raw_uint8(ds, ds.x_train), x_tr) and np.array_equal(ds.y_train.numpy(), y_tr)
    assert np.array_equal(raw_uint8(ds, ds.x_test), x_te) and np.array_equal(ds.y_test.numpy(), y_te)
    per_channel = x_tr.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64) / 255  # (3, N H W)
    assert np.allclose(ds.mean.flatten().numpy(), per_channel.mean(1), atol=1e-6)
    assert np.allclose(ds.std.flatten().numpy(), per_channel.std(1), atol=1e-6)
    assert "cifar-10-batches-py" in ds.source


def test_cifar10_python2_file_has_no_unicode_strings(tmp_path):
    import pickletools

    raw = py2_pickle({"data": np.zeros((1, 3072), np.uint8), "labels": [3]})
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    assert "BINSTRING" in ops or "SHORT_BINSTRING" in ops
    assert not any("UNICODE" in op for op in ops)
    (tmp_path / "b").write_bytes(raw)
    assert load_pickle(tmp_path / "b")["labels"] == [3]


def test_cifar100_fine_labels(tmp_path, no_data):
    y_tr, y_te = labels(2, 100, 4), labels(1, 100, 5)
    x_tr, x_te = pattern(200, 3, 32, 32, seed=6), pattern(100, 3, 32, 32, seed=7)
    write_cifar100(tmp_path, x_tr, y_tr, x_te, y_te)
    ds = load_dataset("cifar100", data_dir=tmp_path, val_fraction=0, train_per_class=2)
    assert ds.num_classes == 100 and np.array_equal(ds.y_train.numpy(), y_tr)
    assert np.array_equal(raw_uint8(ds, ds.x_test), x_te) and np.array_equal(ds.y_test.numpy(), y_te)


def test_cifar_found_through_ufm_data_and_the_cache_folder(tmp_path, no_data, monkeypatch):
    cifar10_files(no_data / ".cache" / "ufm")
    assert "cache" in load_dataset("cifar10", val_fraction=0).source
    cifar10_files(tmp_path / "env")
    monkeypatch.setenv("UFM_DATA", str(tmp_path / "env"))
    assert str(tmp_path / "env") in load_dataset("cifar10", val_fraction=0).source


def test_cifar_missing_says_where_and_how(tmp_path, no_data):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    msg = str(info.value)
    assert "ufm data download cifar10" in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert str(no_data / ".cache" / "ufm") in msg and "\n" not in msg
    assert info.value.searched[:2] == [str(tmp_path / "cifar-10-batches-py"), str(tmp_path)]


# --- corrupted files --------------------------------------------------------------------------------

def _rewrite(path: Path, **changes) -> None:
    batch = load_pickle(path)
    batch.update(changes)
    path.write_bytes(py2_pickle({k: v for k, v in batch.items() if v is not None}))


@pytest.mark.parametrize("damage, match", [
    (lambda f: (f / "data_batch_2").write_bytes((f / "data_batch_2").read_bytes()[:500]), "truncated"),
    (lambda f: (f / "data_batch_3").unlink(), "not data_batch_3"),
    (lambda f: _rewrite(f / "data_batch_1", data=np.zeros((4, 3000), np.uint8)), "N x 3072 uint8"),
    (lambda f: _rewrite(f / "test_batch", labels=[10] + [0] * 9), "label 10 .* outside \\[0, 9\\]"),
    (lambda f: _rewrite(f / "test_batch", labels=[0] * 9), "9 labels for 10 images"),
    (lambda f: _rewrite(f / "data_batch_1", labels=None), "no 'labels' entry"),
    (lambda f: (f / "batches.meta").write_bytes(py2_pickle({"label_names": ["a"] * 3})), "10 class names"),
    (lambda f: (f / "data_batch_4").write_bytes(pickle.dumps([1, 2, 3])), "should be a pickled dict"),
])
def test_corrupted_cifar_files_are_one_line_errors_naming_the_file(tmp_path, no_data, damage, match):
    folder, *_ = cifar10_files(tmp_path)
    damage(folder)
    with pytest.raises(DataFileError, match=match) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickle_carrying_code_is_refused_and_never_runs(tmp_path, no_data):
    folder, *_ = cifar10_files(tmp_path)
    marker = tmp_path / "code-ran"
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": _RunsCode(marker), "labels": []}, protocol=2))
    with pytest.raises(DataFileError, match=r"refused to unpickle the global (posix|os)\.system") as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(folder / "data_batch_1") in str(info.value)
    assert not marker.exists()
    # any global outside numpy's array constructors is refused, harmless or not
    (tmp_path / "p").write_bytes(pickle.dumps({"x": Path("a")}))
    with pytest.raises(DataFileError, match="pathlib"):
        load_pickle(tmp_path / "p")


def _g(module, name):
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _u(text):
    return pickle.SHORT_BINUNICODE + bytes([len(text)]) + text.encode()


def _b(data):
    return pickle.SHORT_BINBYTES + bytes([len(data)]) + data


def _i(n):
    return pickle.BININT + struct.pack("<i", n)


#: numpy.dtype("O8") whose state clears its flags, so that numpy no longer knows it holds objects
_OBJECT_DTYPE = (_g("numpy", "dtype") + _u("O8") + pickle.NEWFALSE + pickle.NEWTRUE + pickle.TUPLE3 + pickle.REDUCE
                 + pickle.MARK + _i(3) + _u("|") + pickle.NONE * 3 + _i(-1) + _i(-1) + _i(0) + pickle.TUPLE
                 + pickle.BUILD)
_POINTER = _b(struct.pack("<Q", 0x4141414141414140))
#: pickles naming only numpy's own constructors that, given to numpy, read or write memory at an
#: address taken from the file (a segfault at best)
NUMPY_ABUSE = {
    "ndarray over a pointer": pickle.PROTO + b"\x04" + _g("numpy", "ndarray") + pickle.MARK + pickle.MARK + _i(1)
    + pickle.TUPLE + _OBJECT_DTYPE + _POINTER + pickle.TUPLE + pickle.REDUCE + pickle.STOP,
    "_reconstruct of an object array": pickle.PROTO + b"\x04" + _g("numpy._core.multiarray", "_reconstruct")
    + pickle.MARK + _g("numpy", "ndarray") + pickle.MARK + _i(0) + pickle.TUPLE + _b(b"b") + pickle.TUPLE
    + pickle.REDUCE + pickle.MARK + _i(1) + pickle.MARK + _i(1) + pickle.TUPLE + _OBJECT_DTYPE + pickle.NEWFALSE
    + _POINTER + pickle.TUPLE + pickle.BUILD + pickle.STOP,
    "a scalar of an object dtype": pickle.PROTO + b"\x04" + _g("numpy._core.multiarray", "scalar") + pickle.MARK
    + _OBJECT_DTYPE + _POINTER + pickle.TUPLE + pickle.REDUCE + pickle.STOP,
    "_frombuffer of an object dtype": pickle.PROTO + b"\x04" + _g("numpy._core.numeric", "_frombuffer")
    + pickle.MARK + _POINTER + _OBJECT_DTYPE + pickle.MARK + _i(1) + pickle.TUPLE + _u("C") + pickle.TUPLE
    + pickle.REDUCE + pickle.STOP,
}


@pytest.mark.parametrize("case", sorted(NUMPY_ABUSE))
def test_numpy_constructors_with_a_crafted_state_are_refused_without_touching_memory(tmp_path, case):
    path = tmp_path / "batch"
    path.write_bytes(NUMPY_ABUSE[case])
    code = ("import sys; from ufm.dnn.data.pickles import load_pickle\n"
            "try:\n    load_pickle(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e); sys.exit(3)")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    # in its own process: a regression shows as a failed assertion (a signal), not a crashed test run
    assert run.returncode == 3, (run.returncode, run.stderr[-500:])
    assert run.stdout.startswith("DataFileError") and str(path) in run.stdout


def test_plain_arrays_of_every_allowed_kind_and_byte_order_round_trip(tmp_path):
    arrays = {"u1": np.arange(6, dtype=np.uint8).reshape(2, 3), "big": np.arange(4, dtype=">i4"),
              "f8": np.linspace(0, 1, 5), "bool": np.array([True, False]), "fortran": np.asfortranarray(
                  np.arange(6.0).reshape(2, 3)), "empty": np.zeros((0, 3072), np.uint8)}
    for protocol in (2, 4, 5):
        (tmp_path / "p").write_bytes(pickle.dumps(arrays, protocol=protocol))
        back = load_pickle(tmp_path / "p")
        for key, a in arrays.items():
            assert back[key].dtype == a.dtype.newbyteorder("=") and np.array_equal(back[key], a), (protocol, key)
    (tmp_path / "o").write_bytes(pickle.dumps({"x": np.array(["a", "bc"])}))
    with pytest.raises(DataFileError, match="only booleans, integers and floats"):
        load_pickle(tmp_path / "o")


def test_corrupted_files_exit_2_with_one_line_on_the_command_line(tmp_path, no_data, cli):
    folder, *_ = cifar10_files(tmp_path)
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    code, out, err = cli("train", "--out", tmp_path / "run", "--dataset", "cifar10", "--data-dir", tmp_path,
                         "--model", "mlp", "--epochs", "1", "--quiet")
    assert code == 2 and err.count("\n") == 1 and str(folder / "test_batch") in err and "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


# --- STL-10 -----------------------------------------------------------------------------------------

def stl10_files(root):
    y_tr, y_te = labels(1, 10, 8), labels(1, 10, 9)
    x_tr, x_te = pattern(10, 3, 96, 96, seed=10), pattern(10, 3, 96, 96, seed=11)
    return write_stl10(root, x_tr, y_tr, x_te, y_te), x_tr, y_tr, x_te, y_te


def test_stl10_column_major_channels_read_as_chw(tmp_path, no_data):
    _, x_tr, y_tr, x_te, y_te = stl10_files(tmp_path)
    ds = load_dataset("stl10", data_dir=tmp_path, val_fraction=0)
    assert ds.input_shape == (3, 96, 96)
    assert np.array_equal(raw_uint8(ds, ds.x_train), x_tr) and np.array_equal(ds.y_train.numpy(), y_tr)
    assert np.array_equal(raw_uint8(ds, ds.x_test), x_te) and np.array_equal(ds.y_test.numpy(), y_te)


@pytest.mark.parametrize("damage, match", [
    (lambda f: (f / "train_X.bin").write_bytes((f / "train_X.bin").read_bytes()[:-5]), "whole number of 27648"),
    (lambda f: (f / "test_y.bin").write_bytes(bytes([11] * 10)), "label 11 .* outside \\[1, 10\\]"),
    (lambda f: (f / "test_y.bin").write_bytes(bytes([1] * 9)), "9 labels for the 10 images"),
    (lambda f: (f / "class_names.txt").unlink(), "not class_names.txt"),
])
def test_corrupted_stl10_files(tmp_path, no_data, damage, match):
    folder, *_ = stl10_files(tmp_path)
    damage(folder)
    with pytest.raises(DataFileError, match=match) as info:
        load_dataset("stl10", data_dir=tmp_path)
    assert str(folder) in str(info.value)


# --- MNIST ------------------------------------------------------------------------------------------

def test_mnist_from_idx_files(tmp_path, no_data):
    y_tr, y_te = labels(2, 10, 12), labels(1, 10, 13)
    x_tr, x_te = pattern(20, 1, 28, 28, seed=14), pattern(10, 1, 28, 28, seed=15)
    folder = write_idx_dataset(tmp_path / "mnist", x_tr, y_tr, x_te, y_te)
    ds = load_dataset("mnist", data_dir=tmp_path, val_fraction=0)
    assert ds.input_shape == (1, 28, 28) and str(folder) in ds.source
    assert np.array_equal(raw_uint8(ds, ds.x_train), x_tr) and np.array_equal(ds.y_test.numpy(), y_te)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8), 0x08, True)
    with pytest.raises(DataFileError, match="label 12"):
        load_dataset("mnist", data_dir=tmp_path)


# --- Tiny ImageNet ----------------------------------------------------------------------------------

def tiny_files(root):
    pytest.importorskip("PIL.Image")
    wnids = ["n02", "n01", "n03"]
    y_tr, y_te = labels(2, 3, 16), labels(1, 3, 17)
    x_tr, x_te = pattern(6, 3, 64, 64, seed=18), pattern(3, 3, 64, 64, seed=19)
    return write_tinyimagenet(root, x_tr, y_tr, x_te, y_te, wnids), wnids, x_tr, y_tr, x_te, y_te


def test_tinyimagenet_classes_are_the_sorted_wnids(tmp_path, no_data):
    _, wnids, x_tr, y_tr, x_te, y_te = tiny_files(tmp_path)
    ds = load_dataset("tinyimagenet", data_dir=tmp_path, val_fraction=0)
    order = {w: k for k, w in enumerate(sorted(wnids))}
    relabel = np.array([order[w] for w in wnids])  # writer's class -> ufm's class
    assert ds.num_classes == 3 and np.array_equal(ds.y_test.numpy(), relabel[y_te])
    assert np.array_equal(raw_uint8(ds, ds.x_test), x_te)
    # training images are read class by class (sorted wnids), each class in file-name order
    train = sorted(range(6), key=lambda i: (order[wnids[y_tr[i]]], f"{wnids[y_tr[i]]}_{i}"))
    assert np.array_equal(raw_uint8(ds, ds.x_train), x_tr[train])
    assert (tmp_path / "tinyimagenet-uint8.npz").is_file()


def test_tinyimagenet_cache_of_another_folder_is_not_reused(tmp_path, no_data):
    tiny_files(tmp_path / "a")
    first = load_dataset("tinyimagenet", data_dir=tmp_path / "a", val_fraction=0)
    other, *_ = tiny_files(tmp_path / "b")
    cache = tmp_path / "a" / "tinyimagenet-uint8.npz"
    (tmp_path / "b" / "tinyimagenet-uint8.npz").write_bytes(cache.read_bytes())  # a copy of a's cache
    for img in (other / "val" / "images").iterdir():  # b's test images differ from a's
        from PIL import Image

        Image.new("RGB", (64, 64), (1, 2, 3)).save(img, format="PNG")
    second = load_dataset("tinyimagenet", data_dir=tmp_path / "b", val_fraction=0)
    assert not np.array_equal(first.x_test.numpy(), second.x_test.numpy())
    assert raw_uint8(second, second.x_test)[0, :, 0, 0].tolist() == [1, 2, 3]


def test_tinyimagenet_bad_annotation_and_missing_image(tmp_path, no_data):
    folder, *_ = tiny_files(tmp_path)
    ann = folder / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_9.JPEG\tn99\t0\t0\t63\t63\n")
    with pytest.raises(DataFileError, match="line 4 names no class"):
        load_dataset("tinyimagenet", data_dir=tmp_path)
    ann.write_text(ann.read_text().replace("n99", "n01"))
    with pytest.raises(DataFileError, match="val_9.JPEG: cannot be read as an image"):
        load_dataset("tinyimagenet", data_dir=tmp_path)


def test_tinyimagenet_missing(tmp_path, no_data):
    with pytest.raises(DatasetNotFoundError, match="ufm data download tinyimagenet") as info:
        load_dataset("tinyimagenet", data_dir=tmp_path)
    assert str(tmp_path / "tiny-imagenet-200") in str(info.value)


def test_idx_files_directly_in_a_base_folder_are_ambiguous_and_refused(tmp_path, no_data):
    y, x = labels(2, 10, 20), pattern(20, 1, 28, 28, seed=21)
    write_idx_dataset(tmp_path, x, y, x, y)  # flat in data_dir: MNIST or Fashion-MNIST?
    for name in ("mnist", "fashion-mnist"):
        with pytest.raises(DataFileError, match="MNIST and Fashion-MNIST files have the same names: move them into"):
            load_dataset(name, data_dir=tmp_path)
    # a folder named after the dataset, given itself as data_dir, is that dataset
    folder = write_idx_dataset(tmp_path / "other" / "mnist", x, y, x, y)
    assert str(folder) in load_dataset("mnist", data_dir=folder, val_fraction=0).source


def test_a_stray_file_in_a_base_folder_is_not_a_partial_dataset(tmp_path, no_data):
    (tmp_path / "test").write_bytes(b"not CIFAR-100")  # a name CIFAR-100 also uses
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar100", data_dir=tmp_path)


def test_a_truncated_gz_idx_file_is_one_line_naming_it(tmp_path, no_data):
    y, x = labels(2, 10, 22), pattern(20, 1, 28, 28, seed=23)
    folder = write_idx_dataset(tmp_path / "mnist", x, y, x, y)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataFileError, match="truncated or damaged") as info:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(path) in str(info.value)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 30)
    path.write_bytes(b"\x00\x00\x08\x03\x00")  # a header cut inside its dimensions (gzip of it not needed)
    path.rename(folder / "train-images-idx3-ubyte")
    with pytest.raises(DataFileError, match="is not an IDX file"):
        load_dataset("mnist", data_dir=tmp_path)


def test_tinyimagenet_grayscale_images_become_three_equal_channels(tmp_path, no_data):
    from PIL import Image

    folder, *_ = tiny_files(tmp_path)
    Image.new("L", (64, 64), 77).save(folder / "val" / "images" / "val_0.JPEG", format="PNG")
    ds = load_dataset("tinyimagenet", data_dir=tmp_path, val_fraction=0)
    assert raw_uint8(ds, ds.x_test)[0, :, 3, 3].tolist() == [77, 77, 77]


def test_an_undecodable_text_file_is_one_line_naming_it(tmp_path, no_data):
    folder, *_ = stl10_files(tmp_path)
    (folder / "class_names.txt").write_bytes(b"\xff\xfe\xfa" * 10)
    with pytest.raises(DataFileError, match="not a text file") as info:
        load_dataset("stl10", data_dir=tmp_path)
    assert str(folder / "class_names.txt") in str(info.value)


def test_tinyimagenet_without_pillow_is_one_line_naming_the_extra(tmp_path, no_data, cli, monkeypatch):
    tiny_files(tmp_path)  # written with Pillow, then read without it
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    code, _, err = cli("train", "--out", tmp_path / "run", "--dataset", "tinyimagenet", "--data-dir", tmp_path,
                       "--epochs", "1", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "pip install 'ufm[images]'" in err and "Traceback" not in err
