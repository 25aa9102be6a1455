"""``ufm.dnn.data.download``: miniature archives served from 127.0.0.1 (never the internet), each
source of ``SOURCES`` pointed at them: placement, checksums, unsafe archives, resumed transfers."""
import io
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from ufm._core.validation import InvalidParameterError
from ufm.dnn.data import download
from loopback import loopback_server, md5, serve_source, tar_gz
from ufm.dnn.data.download import SOURCES, DownloadError, download_dataset


@pytest.fixture
def server():
    with loopback_server() as httpd:
        yield httpd


def _zip(members: dict, symlinks: dict = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in dict(symlinks).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def _tree(folder: Path) -> dict:
    """relative path -> bytes of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


CIFAR = {"cifar-10-batches-py/data_batch_1": b"batch one", "cifar-10-batches-py/batches.meta": b"meta"}
#: a member large enough to be cut in half on the wire (random bytes do not compress)
BIG = {"cifar-10-batches-py/data_batch_1": os.urandom(64 * 1024)}


def test_the_official_sources_are_the_published_files():
    assert set(SOURCES) == {"mnist", "fashion-mnist", "cifar10", "cifar100", "stl10", "tinyimagenet"}
    folders = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar-10-batches-py",
               "cifar100": "cifar-100-python", "stl10": "stl10_binary", "tinyimagenet": "tiny-imagenet-200"}
    for name, source in SOURCES.items():
        assert source.folder == folders[name]
        assert source.kind == {"mnist": "files", "fashion-mnist": "files", "tinyimagenet": "zip"}.get(name, "tar.gz")
        assert source.member == (None if source.kind == "files" else source.folder)
        assert len(source.files) == (4 if source.kind == "files" else 1)
        for url, checksum, filename in source.files:
            assert url.rsplit("/", 1)[1] == filename and len(checksum) == 32 and int(checksum, 16) >= 0
    assert SOURCES["cifar10"].files[0][1] == "c58f30108f718f92721af3b95e74349a"
    assert SOURCES["mnist"].files[0] == ("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
                                         "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train-images-idx3-ubyte.gz")


def test_a_tar_gz_is_extracted_into_place(monkeypatch, server, tmp_path):
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": tar_gz(CIFAR)}, "tar.gz", "cifar-10-batches-py")
    lines = []
    folder = download_dataset("cifar10", tmp_path, log=lines.append)
    assert folder == tmp_path / "cifar-10-batches-py"
    assert _tree(folder) == {k.split("/", 1)[1]: v for k, v in CIFAR.items()}
    assert os.listdir(tmp_path) == ["cifar-10-batches-py"]  # no .ufm-partial, no archive
    assert lines[0].startswith(f"downloading {server.url}/data/cifar-10-python.tar.gz to ")
    assert any(line.startswith("verified cifar-10-python.tar.gz") for line in lines)
    assert lines[-1] == f"extracted cifar-10-batches-py in {folder}"
    assert server.requests[0][2].startswith("ufm/")  # a User-Agent of its own


def test_a_zip_is_extracted_into_place(monkeypatch, server, tmp_path):
    members = {"tiny-imagenet-200/wnids.txt": b"n01443537\n",
               "tiny-imagenet-200/train/n01443537/images/n01443537_0.JPEG": b"\xff\xd8jpeg",
               "tiny-imagenet-200/val/val_annotations.txt": b"val_0.JPEG\tn01443537\n"}
    serve_source(monkeypatch, server, "tinyimagenet", {"tiny-imagenet-200.zip": _zip(members)}, "zip", "tiny-imagenet-200")
    folder = download_dataset("tinyimagenet", tmp_path)
    assert folder == tmp_path / "tiny-imagenet-200"
    assert _tree(folder) == {k.split("/", 1)[1]: v for k, v in members.items()}
    assert os.listdir(tmp_path) == ["tiny-imagenet-200"]


def test_plain_files_are_placed_as_they_are(monkeypatch, server, tmp_path):
    files = {name: os.urandom(100 + i) for i, name in enumerate(
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"])}
    serve_source(monkeypatch, server, "mnist", files, "files", "mnist")
    folder = download_dataset("mnist", data_dir=str(tmp_path))
    assert folder == tmp_path / "mnist" and _tree(folder) == files
    assert os.listdir(tmp_path) == ["mnist"]
    umask = os.umask(0o22)
    os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask  # not a temporary folder's 0o700


def test_the_root_is_ufm_data_when_no_folder_is_given(monkeypatch, server, tmp_path):
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": tar_gz(CIFAR)}, "tar.gz", "cifar-10-batches-py")
    monkeypatch.setenv("UFM_DATA", str(tmp_path / "data"))
    assert download_dataset("cifar10") == tmp_path / "data" / "cifar-10-batches-py"


def test_a_folder_already_there_is_returned_without_network_access(monkeypatch, server, tmp_path):
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": tar_gz(CIFAR)}, "tar.gz", "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py").mkdir()
    lines = []
    assert download_dataset("cifar10", tmp_path, log=lines.append) == tmp_path / "cifar-10-batches-py"
    assert server.requests == [] and lines == [f"cifar10 is already in {tmp_path / 'cifar-10-batches-py'}"]
    assert os.listdir(tmp_path) == ["cifar-10-batches-py"]


def test_a_wrong_checksum_is_refused_and_nothing_is_left(monkeypatch, server, tmp_path):
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": tar_gz(CIFAR)}, "tar.gz", "cifar-10-batches-py")
    server.files["/data/cifar-10-python.tar.gz"] += b"tampered"
    with pytest.raises(DownloadError) as info:
        download_dataset("cifar10", tmp_path)
    message = str(info.value)
    expected = SOURCES["cifar10"].files[0][1]
    got = md5(server.files["/data/cifar-10-python.tar.gz"])
    assert f"expected {expected}, got {got}" in message and "cifar-10-python.tar.gz" in message
    assert "\n" not in message and isinstance(info.value, OSError)
    assert os.listdir(tmp_path) == []


def test_an_http_error_is_a_download_error_naming_the_url(monkeypatch, server, tmp_path):
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": b""}, "tar.gz", "cifar-10-batches-py")
    del server.files["/data/cifar-10-python.tar.gz"]
    with pytest.raises(DownloadError, match=r"/data/cifar-10-python.tar.gz: HTTP 404"):
        download_dataset("cifar10", tmp_path)
    assert os.listdir(tmp_path) == []


#: archives with one member that must not be written: (kind, archive bytes, the member named)
UNSAFE = {
    "tar ..": ("tar.gz", lambda out: tar_gz({**CIFAR, "cifar-10-batches-py/../../evil": b"x"}), "../../evil"),
    "tar absolute": ("tar.gz", lambda out: tar_gz({**CIFAR, str(out / "abs"): b"x"}), "abs"),
    "tar symlink": ("tar.gz", lambda out: tar_gz(CIFAR, links={"cifar-10-batches-py/link": (tarfile.SYMTYPE, str(out))}),
                    "link"),
    "tar hardlink": ("tar.gz", lambda out: tar_gz(CIFAR, links={"cifar-10-batches-py/hard": (tarfile.LNKTYPE,
                                                                                             "/etc/passwd")}), "hard"),
    "tar fifo": ("tar.gz", lambda out: tar_gz(CIFAR, special={"cifar-10-batches-py/fifo": tarfile.FIFOTYPE}), "fifo"),
    "tar device": ("tar.gz", lambda out: tar_gz(CIFAR, special={"cifar-10-batches-py/dev": tarfile.CHRTYPE}), "dev"),
    "zip ..": ("zip", lambda out: _zip({**CIFAR, "cifar-10-batches-py/../../evil": b"x"}), "../../evil"),
    "zip absolute": ("zip", lambda out: _zip({**CIFAR, str(out / "abs"): b"x"}), "abs"),
    "zip symlink": ("zip", lambda out: _zip(CIFAR, symlinks={"cifar-10-batches-py/link": str(out)}), "link"),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_an_unsafe_archive_member_is_refused_before_anything_is_written(monkeypatch, server, tmp_path, case):
    kind, archive, member = UNSAFE[case]
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    filename = "cifar-10-python.tar.gz" if kind == "tar.gz" else "cifar.zip"
    serve_source(monkeypatch, server, "cifar10", {filename: archive(outside)}, kind, "cifar-10-batches-py")
    with pytest.raises(DownloadError) as info:
        download_dataset("cifar10", root)
    message = str(info.value)
    assert filename in message and member in message and "refused" in message and "\n" not in message
    assert not root.exists() and os.listdir(outside) == []  # no folder, no archive, nothing outside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside"]  # the root this call made is gone too


def test_an_interrupted_transfer_is_kept_and_resumed_with_a_range_request(monkeypatch, server, tmp_path):
    data = tar_gz(BIG)
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": data}, "tar.gz", "cifar-10-batches-py")
    part = tmp_path / ".ufm-partial" / "cifar-10-python.tar.gz.part"
    server.mode = "cut"
    with pytest.raises(DownloadError, match="closed after .* bytes; run again to resume"):
        download_dataset("cifar10", tmp_path)
    assert part.read_bytes() == data[: len(data) // 2] and not (tmp_path / "cifar-10-batches-py").exists()
    server.mode, server.requests[:] = "range", []
    lines = []
    folder = download_dataset("cifar10", tmp_path, log=lines.append)
    assert [r[1] for r in server.requests] == [f"bytes={len(data) // 2}-"]
    assert lines[0].startswith(f"resuming {server.url}/data/cifar-10-python.tar.gz at byte {len(data) // 2}")
    assert _tree(folder) == {"data_batch_1": BIG["cifar-10-batches-py/data_batch_1"]}
    assert os.listdir(tmp_path) == ["cifar-10-batches-py"]


def _left_part(root, data: bytes):
    """The .part file of CIFAR-10's archive an earlier attempt left in ``root``, holding ``data``."""
    part = root / ".ufm-partial" / "cifar-10-python.tar.gz.part"
    part.parent.mkdir()
    part.write_bytes(data)


@pytest.mark.parametrize("mode, requests", [("full", 1), ("refuse-range", 2), ("wrong-range", 2)])
def test_a_server_that_does_not_resume_restarts_the_file_from_zero(monkeypatch, server, tmp_path, mode, requests):
    data = tar_gz(BIG)
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": data}, "tar.gz", "cifar-10-batches-py")
    _left_part(tmp_path, b"stale bytes of another attempt")
    server.mode = mode
    lines = []
    folder = download_dataset("cifar10", tmp_path, log=lines.append)
    assert [r[1] for r in server.requests] == ["bytes=30-", None][:requests]  # a 200 is the whole file
    assert "again from byte 0" in lines[0]
    assert _tree(folder) == {"data_batch_1": BIG["cifar-10-batches-py/data_batch_1"]}
    assert os.listdir(tmp_path) == ["cifar-10-batches-py"]


def test_a_range_beyond_the_file_restarts_from_zero(monkeypatch, server, tmp_path):
    data = tar_gz(CIFAR)
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": data}, "tar.gz", "cifar-10-batches-py")
    _left_part(tmp_path, b"\0" * (len(data) + 10))  # longer than the file: the server answers 416
    server.mode = "range"
    download_dataset("cifar10", tmp_path)
    assert [r[1] for r in server.requests] == [f"bytes={len(data) + 10}-", None]
    assert os.listdir(tmp_path) == ["cifar-10-batches-py"]


def test_a_complete_part_is_used_without_network_access(monkeypatch, server, tmp_path):
    data = tar_gz(CIFAR)
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": data}, "tar.gz", "cifar-10-batches-py")
    _left_part(tmp_path, data)
    assert _tree(download_dataset("cifar10", tmp_path)) == {"data_batch_1": b"batch one", "batches.meta": b"meta"}
    assert server.requests == []


def test_a_mirror_replaces_each_url_up_to_its_last_slash(monkeypatch, server, tmp_path):
    data = tar_gz(CIFAR)
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": data}, "tar.gz", "cifar-10-batches-py",
           base="http://official.invalid/~kriz/")
    server.files["/mirror/cifar-10-python.tar.gz"] = server.files.pop("/data/cifar-10-python.tar.gz")
    for mirror in (server.url + "/mirror", server.url + "/mirror/"):
        folder = download_dataset("cifar10", tmp_path, mirror=mirror)
        assert _tree(folder) == {"data_batch_1": b"batch one", "batches.meta": b"meta"}
        shutil.rmtree(folder)
    assert [r[0] for r in server.requests] == ["/mirror/cifar-10-python.tar.gz"] * 2


def test_a_mirror_serving_other_bytes_fails_the_published_checksum(monkeypatch, server, tmp_path):
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": tar_gz(CIFAR)}, "tar.gz", "cifar-10-batches-py")
    server.files["/mirror/cifar-10-python.tar.gz"] = tar_gz(BIG)
    with pytest.raises(DownloadError, match="wrong MD5 checksum"):
        download_dataset("cifar10", tmp_path, mirror=server.url + "/mirror/")
    assert os.listdir(tmp_path) == []


def test_an_unknown_name_is_an_invalid_parameter_error(tmp_path):
    with pytest.raises(InvalidParameterError, match="'name' parameter of download_dataset must be a str among"):
        download_dataset("imagenet", tmp_path)
    assert not isinstance(InvalidParameterError("x"), DownloadError) and os.listdir(tmp_path) == []


def test_the_module_imports_neither_numpy_nor_torch_itself():
    import ast

    tree = ast.parse(Path(download.__file__).read_text())
    imported = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"numpy", "torch"}


def test_load_dataset_with_download_fetches_a_missing_dataset_and_reads_it(tmp_path, monkeypatch, server, no_data):
    """The whole path: miniature CIFAR-10 files in the published format, archived as the official
    tar.gz, served from 127.0.0.1, downloaded by ``load_dataset(download=True)``, then read."""
    import numpy as np

    from miniature import pattern, write_cifar10
    from ufm.dnn.data import load_dataset

    y = np.repeat(np.arange(10), 2)
    write_cifar10(tmp_path / "src", pattern(20, 3, 32, 32, seed=1), y, pattern(10, 3, 32, 32, seed=2), np.arange(10))
    src = tmp_path / "src" / "cifar-10-batches-py"
    members = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in src.iterdir()}
    serve_source(monkeypatch, server, "cifar10", {"cifar-10-python.tar.gz": tar_gz(members)}, "tar.gz", "cifar-10-batches-py")
    with pytest.raises(FileNotFoundError, match="ufm data download cifar10"):
        load_dataset("cifar10", data_dir=tmp_path / "data")  # without download: nothing is fetched
    assert server.requests == []
    ds = load_dataset("cifar10", data_dir=tmp_path / "data", download=True, val_fraction=0)
    assert len(server.requests) == 1 and ds.x_train.shape == (20, 3, 32, 32)
    assert str(tmp_path / "data" / "cifar-10-batches-py") in ds.source
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-10-batches-py"]


def test_a_failed_placement_keeps_the_verified_files_for_the_next_attempt(tmp_path, monkeypatch, server):
    files = {"train-images-idx3-ubyte.gz": b"a" * 10, "t10k-images-idx3-ubyte.gz": b"b" * 10}
    serve_source(monkeypatch, server, "mnist", files, "files", "mnist")
    real = os.rename

    def refuse(src, dst):
        if Path(dst).name == "mnist":
            raise PermissionError(13, "Permission denied", str(dst))
        return real(src, dst)

    monkeypatch.setattr(download.os, "rename", refuse)
    with pytest.raises(DownloadError, match="cannot move"):
        download_dataset("mnist", tmp_path)
    kept = sorted(p.name for p in (tmp_path / download.PARTIAL).iterdir())
    assert kept == sorted(name + ".part" for name in files)
    monkeypatch.setattr(download.os, "rename", real)
    requests = len(server.requests)
    assert download_dataset("mnist", tmp_path) == tmp_path / "mnist" and len(server.requests) == requests
    assert _tree(tmp_path / "mnist") == files
