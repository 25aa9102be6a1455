"""Miniature datasets written in their published formats, for the readers and the end-to-end runs.

Each writer takes the images it should store as ``(N, C, H, W)`` uint8 arrays, the layout ufm reads
them into, and writes them in the file layout the dataset's publishers define, built here channel
by channel (``ravel(order="C")`` for CIFAR's row-major channels, ``ravel(order="F")`` for STL-10's
column-major ones), independently of the readers' reshapes. ``pattern`` draws images whose pixels
differ along every axis, so a transposed or mirrored read cannot pass.
"""
import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np

__all__ = ["pattern", "py2_pickle", "write_cifar10", "write_cifar100", "write_stl10", "write_idx_dataset",
           "write_tinyimagenet", "write_idx"]


def pattern(n: int, c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, c, h, w) uint8 images: a pixel's value depends on its image, channel, row and column,
    each with its own weight, plus seeded noise in the image offset."""
    offset = np.random.default_rng(seed).integers(0, 256, n)  # (n,)
    i, ch, r, col = np.meshgrid(np.arange(n), np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    return ((offset[i] + 31 * ch + 7 * r + 3 * col) % 256).astype(np.uint8)


class _Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the published CIFAR files: protocol 2, every string a
    Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), no unicode opcodes."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(raw)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 3072): each image's red channel row by row, then green, then blue."""
    return np.stack([np.concatenate([img[ch].ravel(order="C") for ch in range(3)]) for img in images])


def _dump(path: Path, obj, py2: bool) -> None:
    path.write_bytes(py2_pickle(obj) if py2 else pickle.dumps(obj, protocol=4))


def write_cifar10(root, train: np.ndarray, y_train, test: np.ndarray, y_test, *, py2: bool = True,
                  batches: int = 5) -> Path:
    """``root/cifar-10-batches-py``: the training images split over ``batches`` data_batch files
    (the remaining ones of the five hold none), ``test_batch``, ``batches.meta``."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    parts = np.array_split(np.arange(len(train)), batches)
    for b in range(5):
        idx = parts[b] if b < batches else np.arange(0)
        _dump(folder / f"data_batch_{b + 1}", {"batch_label": f"training batch {b + 1} of 5",
                                               "data": _cifar_rows(train[idx]).reshape(-1, 3072),
                                               "labels": [int(v) for v in np.asarray(y_train)[idx]]}, py2)
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": _cifar_rows(test),
                                  "labels": [int(v) for v in y_test]}, py2)
    _dump(folder / "batches.meta", {"label_names": [f"class{k}" for k in range(10)], "num_vis": 3072}, py2)
    return folder


def write_cifar100(root, train, y_train, test, y_test, *, py2: bool = True) -> Path:
    """``root/cifar-100-python``: ``train``, ``test`` (fine and coarse labels) and ``meta``."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train", train, y_train), ("test", test, y_test)):
        _dump(folder / name, {"data": _cifar_rows(x), "fine_labels": [int(v) for v in y],
                              "coarse_labels": [int(v) // 5 for v in y]}, py2)
    _dump(folder / "meta", {"fine_label_names": [f"fine{k}" for k in range(100)],
                            "coarse_label_names": [f"coarse{k}" for k in range(20)]}, py2)
    return folder


def write_stl10(root, train, y_train, test, y_test) -> Path:
    """``root/stl10_binary``: images as column-major channels, labels 1..10, class_names.txt."""
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split, x, y in (("train", train, y_train), ("test", test, y_test)):
        raw = b"".join(img[ch].ravel(order="F").tobytes() for img in x for ch in range(3))
        (folder / f"{split}_X.bin").write_bytes(raw)
        (folder / f"{split}_y.bin").write_bytes(bytes(int(v) + 1 for v in y))
    (folder / "class_names.txt").write_text("\n".join(f"class{k}" for k in range(10)) + "\n")
    return folder


def write_idx(path, array: np.ndarray, code: int, compress: bool) -> None:
    """An IDX file written by hand: 00 00 <type> <ndim>, big-endian uint32 dims, big-endian data."""
    be = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    payload = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(be).tobytes()
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(payload)


def write_idx_dataset(folder, train, y_train, test, y_test, compress: bool = True) -> Path:
    """The four IDX files of MNIST / Fashion-MNIST (images (N, 1, 28, 28) stored as (N, 28, 28))."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gz = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{gz}", train[:, 0], 0x08, compress)
    write_idx(folder / f"train-labels-idx1-ubyte{gz}", np.asarray(y_train, np.uint8), 0x08, compress)
    write_idx(folder / f"t10k-images-idx3-ubyte{gz}", test[:, 0], 0x08, compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{gz}", np.asarray(y_test, np.uint8), 0x08, compress)
    return folder


def write_tinyimagenet(root, train, y_train, test, y_test, wnids) -> Path:
    """``root/tiny-imagenet-200``: wnids.txt, train/<wnid>/images/*.JPEG, val/images and
    val/val_annotations.txt. Images are stored as lossless PNG data under the .JPEG names (Pillow
    reads by content), so pixel values come back exactly."""
    from PIL import Image

    folder = Path(root) / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for i, (img, k) in enumerate(zip(train, y_train)):
        d = folder / "train" / wnids[k] / "images"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(d / f"{wnids[k]}_{i}.JPEG", format="PNG")
    lines = []
    for i, (img, k) in enumerate(zip(test, y_test)):
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / "val" / "images" / f"val_{i}.JPEG", format="PNG")
        lines.append(f"val_{i}.JPEG\t{wnids[k]}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder
