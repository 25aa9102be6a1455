"""The paper's bundled experiments end to end on miniature files in the published formats: one epoch
of every run through ``ufm experiment``, with the bundled models at a narrow width, then the run
records, the report and the claims; and ``--plan`` on the same data."""
import csv
import json

import numpy as np
import pytest

from miniature import pattern, write_cifar10, write_cifar100, write_stl10
from ufm.dnn.experiment import load_experiment

#: experiment -> (writer, classes, training and test images per class, image side)
PAPER = {
    "cifar10-resnet18": (write_cifar10, 10, 10, 2, 32),
    "cifar100-resnet50": (write_cifar100, 100, 2, 1, 32),
    "stl10-resnet50": (write_stl10, 10, 3, 2, 96),
}


def write_miniature(root, name: str) -> None:
    writer, K, n_train, n_test, side = PAPER[name]
    y_train = np.random.default_rng(0).permutation(np.repeat(np.arange(K), n_train))
    y_test = np.repeat(np.arange(K), n_test)
    writer(root, pattern(len(y_train), 3, side, side, seed=1), y_train, pattern(len(y_test), 3, side, side, seed=2),
           y_test)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_a_paper_experiment_runs_one_epoch_end_to_end(tmp_path, no_data, cli, name):
    write_miniature(tmp_path / "data", name)
    out = tmp_path / "out"
    code, stdout, err = cli("experiment", name, "--epochs", "1", "--data-dir", tmp_path / "data", "--device", "cpu",
                            "--set", "model_options.width=2", "--workers", "0", "--quiet", "--out", out)
    assert code == 0, err
    spec = load_experiment(name)
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == sorted(n for n, _ in spec.runs()) and len(runs) == 2
    for run in runs:
        meta = json.loads((out / "runs" / run / "config.json").read_text())
        assert meta["config"]["model"] == spec.base["model"] and meta["config"]["model_options"] == {"width": 2}
        assert meta["config"]["epochs"] == 1 and str(tmp_path / "data") in meta["dataset"]["source"]
        records = [json.loads(line) for line in (out / "runs" / run / "metrics.jsonl").read_text().splitlines()]
        assert sorted({r["epoch"] for r in records}) == [0, 1]
        assert all(np.isfinite(r["nc1"]) and np.isfinite(r["loss"]) for r in records)
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["run"] for r in rows} == set(runs) and all(r["epoch"] == "1" for r in rows)
    assert (out / "report.md").is_file() and (out / "report.md").read_text().startswith(f"# Experiment `{name}`")
    claims = json.loads((out / "claims.json").read_text())["results"]
    assert len(claims) >= 9
    # one seed and one epoch, far from the terminal phase: nothing can be decided either way
    assert {c["verdict"] for c in claims} <= {"inconclusive", "not-applicable", "not-evaluated"}
    assert str(out / "report.md") in stdout


def test_plan_names_where_the_data_is_and_estimates_the_time(tmp_path, no_data, cli):
    write_miniature(tmp_path / "data", "cifar10-resnet18")
    code, out, err = cli("experiment", "cifar10-resnet18", "--plan", "--data-dir", tmp_path / "data", "--device",
                         "cpu", "--set", "model_options.width=2")
    assert code == 0, err
    assert f"found: cifar10 python-version files in {tmp_path / 'data' / 'cifar-10-batches-py'}" in out
    assert "timed on cpu (a whole epoch)" in out and "run alpha=0.0-seed=0: 800 epochs, 81 records, about" in out
    assert "total, one run at a time: about" in out
    assert not (tmp_path / "ufm-experiments").exists()
    code, out, err = cli("experiment", "stl10-resnet50", "--plan", "--data-dir", tmp_path / "none")
    assert code == 0 and "dataset stl10: MISSING" in out and "ufm data download stl10" in out
    assert "total: not estimated" in out


@pytest.mark.parametrize("flags, match", [
    (["--set", "nosuch=1"], "--set: Unknown key 'nosuch'"),
    (["--set", "lr=-1"], "--set: The 'lr' parameter of TrainConfig must be a float in the range"),
    (["--set", "epochs.x=1"], "only model_options.KEY and dataset_options.KEY take a dot"),
    (["--set", "width"], "must be KEY=VALUE"),
])
def test_bad_set_values_exit_2_with_one_line(tmp_path, cli, flags, match):
    code, _, err = cli("experiment", "cifar10-resnet18", "--plan", *flags)
    assert code == 2 and err.count("\n") == 1 and match in err, err
