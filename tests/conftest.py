"""Shared helpers of the test suite.

This folder is on ``sys.path`` (pytest puts a conftest's folder there), so every test module,
in any subfolder, imports the exact cases and references with ``from problems import ...``.
"""
import pytest


@pytest.fixture
def cli(capsys):
    """Run the ``ufm`` command in this process: ``cli(*argv) -> (exit code, stdout, stderr)``."""
    from ufm.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No dataset anywhere ufm looks: ``$UFM_DATA`` unset, ``$HOME`` (hence ``~/.cache/ufm``) an
    empty folder, no system folders. Returns that home folder."""
    from ufm.dnn.data import idx

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("UFM_DATA", raising=False)
    monkeypatch.setattr(idx, "FASHION_MNIST_DIRS", ())
    return home


@pytest.fixture
def read_only():
    """``make(folder)``: ``folder`` (and all below it) read-only until the test ends: a read-only bind
    mount when running as root (permission bits do not stop root), else permission bits. Skips the
    test where neither can be done."""
    import os
    import stat
    import subprocess

    mounted, modes = [], []

    def make(folder):
        folder = str(folder)
        if os.geteuid() == 0:
            done = subprocess.run(["mount", "--bind", "-o", "ro", folder, folder], capture_output=True)
            if done.returncode != 0:
                pytest.skip(f"a read-only bind mount is not possible here: {done.stderr.decode().strip()}")
            mounted.append(folder)
            return
        for root, dirs, files in os.walk(folder):
            for path in [root, *(os.path.join(root, f) for f in files)]:
                mode = os.stat(path).st_mode
                modes.append((path, mode))
                os.chmod(path, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    yield make
    import gc

    gc.collect()  # files a failed test left open
    for folder in reversed(mounted):
        if subprocess.run(["umount", folder], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", folder], check=True)  # still busy: detach it now
    for path, mode in reversed(modes):
        os.chmod(path, mode)
