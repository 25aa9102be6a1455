"""Atomic writes, JSON of tensors and non-finite floats, TOML errors, the recorded environment."""
import json
import math

import numpy as np
import pytest
import torch

from ufm._core.io import atomic_write, atomic_write_text, environment, read_json, read_toml, to_jsonable, write_json
from ufm._core.validation import InvalidParameterError


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "old")

    def broken(fh):
        fh.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]


def test_binary_writes_and_json_round_trip(tmp_path):
    atomic_write(tmp_path / "a.npy", lambda fh: np.save(fh, np.arange(3)), binary=True)
    assert np.load(tmp_path / "a.npy").tolist() == [0, 1, 2]
    write_json(tmp_path / "r.json", {"t": torch.tensor([1.5, math.nan]), "a": np.float64(2.0), 3: (math.inf,)})
    assert read_json(tmp_path / "r.json") == {"t": [1.5, None], "a": 2.0, "3": [None]}
    assert json.loads((tmp_path / "r.json").read_text())["t"][1] is None


def test_to_jsonable_leaves_plain_values():
    assert to_jsonable({"s": "x", "n": [1, 2.5, None, True]}) == {"s": "x", "n": [1, 2.5, None, True]}


def test_toml_errors_name_the_file_and_the_parameter(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("alphas = [0.0, 0.1\n")
    with pytest.raises(InvalidParameterError, match=r"The sweep file .*bad\.toml' is not valid TOML") as e:
        read_toml(bad, "sweep file", "config")
    assert e.value.param == "config"
    with pytest.raises(InvalidParameterError, match="cannot be read"):
        read_toml(tmp_path / "none.toml", "sweep file", "config")
    good = tmp_path / "good.toml"
    good.write_text("alphas = [0.0, 0.1]\n")
    assert read_toml(good, "sweep file", "config") == {"alphas": [0.0, 0.1]}


def test_environment_records_versions_without_importing_sympy_itself():
    env = environment()
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__ and env["ufm"]
    assert "sympy" in env


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomically_written_files_respect_the_umask(tmp_path, umask, mode):
    import os
    import stat

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.md", "x")
        write_json(tmp_path / "config.json", {"a": 1})
        atomic_write(tmp_path / "checkpoint.pt", lambda fh: fh.write(b"\0"), binary=True)
        reference = tmp_path / "plain"
        reference.write_text("x")  # what open() gives a new file under this umask
    finally:
        os.umask(old)
    for name in ("report.md", "config.json", "checkpoint.pt", "plain"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
