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
