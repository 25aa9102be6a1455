"""``stl10`` (Coates, Lee and Ng, An analysis of single-layer networks in unsupervised feature
learning, 2011) read from its published binary files, without torchvision.

``stl10_binary/train_X.bin`` and ``test_X.bin`` hold uint8 images of 3 x 96 x 96 one after the
other: the red channel, then green, then blue, each stored column-major (the first 96 bytes are the
first column); ``train_y.bin`` and ``test_y.bin`` one uint8 label per image in 1..10;
``class_names.txt`` one class name per line. Only the labelled splits are read (5,000 training and
8,000 test images); ``unlabeled_X.bin`` is not used.
"""
from __future__ import annotations

from ufm._core.validation import DataFileError
from ufm.dnn.data.files import check_labels, find_files, read_text, read_uint8
from ufm.dnn.data.registry import RawData, register

__all__ = ["stl10", "read_stl10_split"]

_SIDE = 96
_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt")


def read_stl10_split(images, labels) -> tuple:
    """One split: images ``(N, 3, 96, 96)`` uint8 in (C, H, W) order and labels int64 in [0, 10).

    Raises:
        DataFileError: a byte count that is not a whole number of images, a label count other than
            the image count, or a label outside 1..10.
    """
    x = read_uint8(images, 3 * _SIDE * _SIDE).reshape(-1, 3, _SIDE, _SIDE)  # (N, C, W, H): column-major
    y = check_labels(read_uint8(labels, 1)[:, 0], 10, labels, first=1)
    if len(y) != len(x):
        raise DataFileError(f"{labels}: {len(y)} labels for the {len(x)} images of {images}.")
    return x.transpose(0, 1, 3, 2), y


@register("stl10")
def stl10(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """STL-10's labelled train (5,000) and test (8,000) splits from ``stl10_binary``; images
    (3, 96, 96) scaled to [0, 1], labels 1..10 shifted to 0..9."""
    files = find_files("stl10", data_dir, "stl10_binary", _FILES)
    names = [n for n in read_text(files["class_names.txt"]).splitlines() if n.strip()]
    if len(names) != 10:
        raise DataFileError(f"{files['class_names.txt']}: should list the 10 class names; found {len(names)}.")
    x_train, y_train = read_stl10_split(files["train_X.bin"], files["train_y.bin"])
    x_test, y_test = read_stl10_split(files["test_X.bin"], files["test_y.bin"])
    return RawData(x_train, y_train, x_test, y_test, 10, (3, _SIDE, _SIDE),
                   f"stl10 binary files in {files['train_X.bin'].parent}", scale=1 / 255)
