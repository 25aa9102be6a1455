"""``tinyimagenet``: the ``tiny-imagenet-200`` image folder, read with Pillow (optional) and cached as ``.npz``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ufm.dnn.data.cache import read_npz, save_cache
from ufm.dnn.data.registry import DatasetNotFoundError, RawData, data_root, missing_package, register

__all__ = ["tinyimagenet"]

_TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


@register("tinyimagenet")
def tinyimagenet(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """Tiny ImageNet (200 classes, 64x64 RGB) from ``<root>/tiny-imagenet-200``: train from
    ``train/<wnid>/images/*.JPEG``, test from the labelled ``val`` split (``val/images`` and
    ``val/val_annotations.txt``; the official test split has no labels). Classes are the sorted
    wnids (as torchvision's ImageFolder orders them); images (3, 64, 64) scaled to [0, 1].
    The decoded arrays are cached as ``data_root(data_dir)/tinyimagenet-uint8.npz`` (delete it
    after changing the image folder)."""
    root = data_root(data_dir)
    searched = [root / "tiny-imagenet-200", root]
    folder = next((p for p in searched if (p / "train").is_dir() and (p / "val" / "val_annotations.txt").is_file()),
                  None)
    if folder is None:
        raise DatasetNotFoundError(
            f"Tiny ImageNet was not found: looked for train/ and val/val_annotations.txt in "
            f"{', '.join(str(p) for p in searched)}. Download {_TINYIMAGENET_URL} and unzip it into "
            "that folder (or into the folder given as data_dir or by UFM_DATA).", searched)
    cache = root / "tinyimagenet-uint8.npz"
    arrays = read_npz(cache, ("x_train", "y_train", "x_test", "y_test", "num_classes"))
    if arrays is None:
        arrays = _read_folder(folder)
        save_cache(cache, arrays)
    return RawData(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   int(arrays["num_classes"]), (3, 64, 64), f"tiny-imagenet-200 image folder {folder}", scale=1 / 255)


def _read_folder(folder: Path) -> dict:
    try:
        from PIL import Image
    except ImportError:
        raise missing_package("Pillow", "vision", "tinyimagenet") from None

    def read(paths):
        x = np.empty((len(paths), 3, 64, 64), dtype=np.uint8)  # (N, 3, 64, 64)
        for i, p in enumerate(paths):
            with Image.open(p) as im:
                x[i] = np.asarray(im.convert("RGB").resize((64, 64))).transpose(2, 0, 1)
        return x

    wnids = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    index = {w: k for k, w in enumerate(wnids)}
    train = [(p, index[w]) for w in wnids for p in sorted((folder / "train" / w / "images").glob("*.JPEG"))]
    test = []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in index:
            test.append((folder / "val" / "images" / parts[0], index[parts[1]]))
    return {"x_train": read([p for p, _ in train]), "y_train": np.array([k for _, k in train], dtype=np.int64),
            "x_test": read([p for p, _ in test]), "y_test": np.array([k for _, k in test], dtype=np.int64),
            "num_classes": np.array(len(wnids))}
