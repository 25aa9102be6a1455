"""``tinyimagenet``: the ``tiny-imagenet-200`` image folder (Le and Yang, Tiny ImageNet visual recognition
challenge, 2015), read with Pillow (optional: ``pip install 'ufm[images]'``) and cached as ``.npz``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ufm._core.validation import DataFileError
from ufm.dnn.data.cache import read_npz, save_cache
from ufm.dnn.data.files import find_files, read_text
from ufm.dnn.data.registry import RawData, data_root, missing_package, register

__all__ = ["tinyimagenet"]


@register("tinyimagenet")
def tinyimagenet(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """Tiny ImageNet (200 classes, 64x64 RGB) from ``<root>/tiny-imagenet-200``: train from
    ``train/<wnid>/images/*.JPEG``, test from the labelled ``val`` split (``val/images`` and
    ``val/val_annotations.txt``; the official test split has no labels). Classes are the sorted
    wnids of ``wnids.txt`` (the order of an image-folder reader); images (3, 64, 64) scaled to [0, 1].
    The decoded arrays are cached as ``data_root(data_dir)/tinyimagenet-uint8.npz`` with the folder
    they came from (a cache of another folder is rebuilt; delete it after changing the images)."""
    files = find_files("tinyimagenet", data_dir, "tiny-imagenet-200", ["wnids.txt", "val/val_annotations.txt"])
    folder = files["wnids.txt"].parent
    root = data_root(data_dir)
    cache = root / "tinyimagenet-uint8.npz"
    arrays = read_npz(cache, ("x_train", "y_train", "x_test", "y_test", "num_classes", "folder"))
    if arrays is None or str(arrays["folder"]) != str(folder.resolve()):  # absent, unreadable, or another copy's
        arrays = {**_read_folder(folder), "folder": np.array(str(folder.resolve()))}
        save_cache(cache, arrays)
    return RawData(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   int(arrays["num_classes"]), (3, 64, 64), f"tiny-imagenet-200 image folder {folder}", scale=1 / 255)


def _read_folder(folder: Path) -> dict:
    try:
        from PIL import Image
    except ImportError:
        raise missing_package("Pillow", "images", "tinyimagenet") from None

    def read(paths):
        x = np.empty((len(paths), 3, 64, 64), dtype=np.uint8)  # (N, 3, 64, 64)
        for i, p in enumerate(paths):
            try:
                with Image.open(p) as im:
                    x[i] = np.asarray(im.convert("RGB").resize((64, 64))).transpose(2, 0, 1)
            except OSError as err:  # missing, truncated or not an image
                raise DataFileError(f"{p}: cannot be read as an image ({err}).") from None
        return x

    wnids = sorted(w for w in read_text(folder / "wnids.txt").split() if w)
    index = {w: k for k, w in enumerate(wnids)}
    train = [(p, index[w]) for w in wnids for p in sorted((folder / "train" / w / "images").glob("*.JPEG"))]
    counts = np.bincount([k for _, k in train], minlength=len(wnids))
    if not wnids or counts.min() == 0:
        raise DataFileError(f"{folder / 'train'}: no training image of class "
                            f"{wnids[int(counts.argmin())] if wnids else '(wnids.txt lists none)'}.")
    test = []
    annotations = folder / "val" / "val_annotations.txt"
    for n, line in enumerate(read_text(annotations).splitlines(), 1):
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in index:
            raise DataFileError(f"{annotations}: line {n} names no class of wnids.txt ({line[:60]!r}).")
        test.append((folder / "val" / "images" / parts[0], index[parts[1]]))
    return {"x_train": read([p for p, _ in train]), "y_train": np.array([k for _, k in train], dtype=np.int64),
            "x_test": read([p for p, _ in test]), "y_test": np.array([k for _, k in test], dtype=np.int64),
            "num_classes": np.array(len(wnids))}
