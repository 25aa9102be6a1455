"""``ufm data download NAME``: the folder on stdout, step lines on stderr, one-line errors with exit 2;
the files come from a loopback server (never the internet)."""
import os

import pytest

from loopback import loopback_server, serve_source, tar_gz
from ufm.dnn.data.download import SOURCES

MEMBERS = {"cifar-10-batches-py/data_batch_1": b"one batch", "cifar-10-batches-py/test_batch": b"the test batch"}


@pytest.fixture
def served(monkeypatch):
    """A loopback server holding a miniature CIFAR-10 archive at /kriz/, which ``SOURCES["cifar10"]`` points to."""
    with loopback_server() as httpd:
        serve_source(monkeypatch, httpd, "cifar10", {"cifar-10-python.tar.gz": tar_gz(MEMBERS)}, "tar.gz",
                     "cifar-10-batches-py", base=httpd.url + "/kriz/")
        httpd.files["/kriz/cifar-10-python.tar.gz"] = httpd.files.pop("/data/cifar-10-python.tar.gz")
        yield httpd


def test_download_prints_the_folder_and_places_the_dataset(cli, served, tmp_path):
    code, out, err = cli("data", "download", "cifar10", "--data-dir", tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    assert code == 0 and out == f"{folder}\n"
    assert (folder / "data_batch_1").read_bytes() == b"one batch" and os.listdir(tmp_path) == [folder.name]
    lines = err.splitlines()  # the steps (no progress bar: stderr is not a terminal)
    assert lines[0].startswith(f"downloading {served.url}/kriz/cifar-10-python.tar.gz to ")
    assert lines[-1] == f"extracted cifar-10-batches-py in {folder}"


def test_quiet_prints_only_the_folder_and_a_second_download_makes_no_request(cli, served, tmp_path):
    code, out, err = cli("data", "download", "cifar10", "--data-dir", tmp_path, "--quiet")
    assert (code, out, err) == (0, f"{tmp_path / 'cifar-10-batches-py'}\n", "")
    code, out, err = cli("data", "download", "cifar10", "--data-dir", tmp_path)
    assert code == 0 and out == f"{tmp_path / 'cifar-10-batches-py'}\n"
    assert err == f"cifar10 is already in {tmp_path / 'cifar-10-batches-py'}\n" and len(served.requests) == 1


def test_the_data_folder_defaults_to_ufm_data(cli, served, tmp_path, monkeypatch):
    monkeypatch.setenv("UFM_DATA", str(tmp_path))
    code, out, _ = cli("data", "download", "cifar10", "--quiet")
    assert code == 0 and out == f"{tmp_path / 'cifar-10-batches-py'}\n"


def test_mirror_is_where_the_files_come_from(cli, served, tmp_path):
    served.files["/elsewhere/cifar-10-python.tar.gz"] = served.files["/kriz/cifar-10-python.tar.gz"]
    code, out, _ = cli("data", "download", "cifar10", "--data-dir", tmp_path, "--mirror", served.url + "/elsewhere",
                       "--quiet")
    assert code == 0 and out == f"{tmp_path / 'cifar-10-batches-py'}\n"
    assert [r[0] for r in served.requests] == ["/elsewhere/cifar-10-python.tar.gz"]


def test_an_unknown_name_exits_2_with_one_line_naming_the_valid_ones(cli, tmp_path):
    code, out, err = cli("data", "download", "imagenet", "--data-dir", tmp_path)
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ufm data: error: NAME must be") and "'imagenet'" in err
    assert all(repr(name) in err for name in SOURCES) and os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv, words", [(["download"], "download needs NAME, one of mnist, fashion-mnist"),
                                         (["upload", "cifar10"], "invalid choice: 'upload'"),
                                         ([], "ACTION")])
def test_a_missing_name_or_an_unknown_action_exits_2_with_one_line(cli, argv, words):
    code, out, err = cli("data", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and words in err and err.startswith("ufm data: error:")


def test_a_failed_download_exits_2_with_one_line(cli, served, tmp_path):
    served.files["/kriz/cifar-10-python.tar.gz"] += b"tampered"
    code, out, err = cli("data", "download", "cifar10", "--data-dir", tmp_path, "--quiet")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ufm data: error: ") and "wrong MD5 checksum" in err and os.listdir(tmp_path) == []
    del served.files["/kriz/cifar-10-python.tar.gz"]
    code, out, err = cli("data", "download", "cifar10", "--data-dir", tmp_path, "--quiet")
    assert code == 2 and err.count("\n") == 1 and "cifar-10-python.tar.gz: HTTP 404" in err


def test_data_is_listed_after_the_network_commands():
    from ufm.cli import build_parser

    names = list(build_parser().commands)
    assert names.index("data") == names.index("validate") + 1


def test_a_mirror_without_a_scheme_exits_2_naming_the_flag(cli, tmp_path):
    code, out, err = cli("data", "download", "cifar10", "--data-dir", tmp_path, "--mirror", "example.com/data")
    assert code == 2 and err.count("\n") == 1 and "http://, https:// or file://" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
