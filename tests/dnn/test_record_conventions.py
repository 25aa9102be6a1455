"""The NC convention of a run's records (``TrainConfig.nc_convention``, ``ufm train --nc-convention``)."""
import json

import pytest

from ufm.dnn import TrainConfig, train

BASE = dict(dataset="gaussian", dataset_options={"num_classes": 4, "dim": 8, "train_size_per_class": 30,
                                                 "test_size_per_class": 10},
            model="mlp", model_options={"width": 16, "depth": 1}, epochs=1, seed=3)


def _records(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_guo2025_records_are_ufms_without_the_1_over_K_and_with_nc3_squared(tmp_path):
    """Same seed, same network: the authors' convention is NC1 without 1/K and NC3 squared (its
    global mean, the mean of the class means, is ufm's), so K nc1 and nc3^2 of the ufm records."""
    train(TrainConfig(**BASE), tmp_path / "ufm", progress=False)
    train(TrainConfig(**BASE, nc_convention="guo2025"), tmp_path / "guo", progress=False)
    for a, b in zip(_records(tmp_path / "ufm"), _records(tmp_path / "guo")):
        assert (a["epoch"], a["split"]) == (b["epoch"], b["split"]) and a["loss"] == b["loss"]
        assert b["nc1"] == pytest.approx(4 * a["nc1"], rel=1e-9)
        assert b["nc3"] == pytest.approx(a["nc3"] ** 2, rel=1e-9)
        assert b["nc2_h"] == pytest.approx(a["nc2_h"], rel=1e-9) and b["ece"] == a["ece"]
    assert json.loads((tmp_path / "guo" / "config.json").read_text())["config"]["nc_convention"] == "guo2025"


def test_an_unknown_convention_is_one_line_on_the_command_line(cli, tmp_path):
    code, out, err = cli("train", "--out", tmp_path / "r", "--dataset", "gaussian", "--nc-convention", "zhu")
    assert (code, out) == (2, "") and "--nc-convention" in err and "zhu2021" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
