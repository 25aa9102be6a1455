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
