"""Experiments (bundled and TOML), executors, resume, figures and the UFM checks of ``ufm validate``."""
import json

import pytest
from problems import TINY_EXPERIMENT as TOML

from ufm import InvalidParameterError
from ufm.dnn.config import TrainConfig
from ufm.dnn.experiment import BUNDLED, load_experiment, run_experiment
from ufm.analysis.networks import AGREE_RTOL, failed_checks, validate
from ufm.report.dnn_figures import FIGURES
from ufm.report.experiment import render_experiment
from ufm.report.validation import validation_markdown



def test_bundled_experiments_are_valid_and_sized_as_documented():
    assert set(BUNDLED) == {"mnist1d-mlp", "fashion-mnist-mlp", "cifar10-resnet18", "cifar100-resnet50",
                            "stl10-resnet50"}
    for name in ("mnist1d-mlp", "fashion-mnist-mlp"):
        runs = load_experiment(name).runs()
        assert sorted({c.alpha for _, c in runs}) == [0.0, 0.05, 0.1, 0.2] and len({c.seed for _, c in runs}) >= 2
        assert len({c.seed for _, c in runs}) >= 5  # the fewest seeds with which the sign test can reach a verdict
    for name in ("cifar10-resnet18", "cifar100-resnet50", "stl10-resnet50"):  # the paper's setting
        runs = load_experiment(name).runs()
        c = runs[0][1]
        assert (c.lr, c.momentum, c.weight_decay, c.batch_size, c.epochs, c.milestones, c.gamma) == (
            0.05, 0.9, 5e-4, 128, 800, (150, 350), 0.1)
        assert sorted(c.alpha for _, c in runs) == [0.0, 0.05]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exp")
    (folder / "tiny.toml").write_text(TOML)
    spec = load_experiment(folder / "tiny.toml")
    result = run_experiment(spec, folder / "out", workers=0, progress=False)
    return folder, spec, result


def test_experiment_runs_every_combination_and_writes_its_outputs(tiny):
    folder, spec, result = tiny
    out = folder / "out"
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == ["alpha=0.0-seed=0", "alpha=0.0-seed=1", "alpha=0.1-seed=0", "alpha=0.1-seed=1"]
    assert len(result["runs"]) == 4 and all(r["resumed_from"] is None for r in result["runs"])
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 3 and rows[0].startswith("run,alpha,seed,split,epoch,loss,error,nc1")
    v = json.loads((out / "validation.json").read_text())
    assert len(v["groups"]) == 1 and v["groups"][0]["alphas"] == [0.0, 0.1]
    paths = render_experiment(out)
    assert [p.name for p in paths] == [*FIGURES, "report.md"] and all(p.stat().st_size > 1000 for p in paths)
    report = (out / "report.md").read_text()
    assert "| 0.1 |" in report and "p_off - alpha/K agrees across alpha" in report


def test_rerun_skips_finished_runs_and_processes_give_the_same_records(tiny, tmp_path):
    folder, spec, first = tiny
    again = run_experiment(spec, folder / "out", workers=0, progress=False)
    assert all(r["resumed_from"] == 4 for r in again["runs"])
    pooled = run_experiment(spec, tmp_path, workers=2, progress=False)
    assert len(pooled["runs"]) == 4
    for name in ("alpha=0.0-seed=1", "alpha=0.1-seed=0"):
        assert (tmp_path / "runs" / name / "metrics.jsonl").read_bytes() == \
            (folder / "out" / "runs" / name / "metrics.jsonl").read_bytes()


def _fake_run(folder, alpha, seed, p_off, nc1, errors=(0.5, 0.0, 0.0), nc2=(0.9, 0.5, 0.4)):
    """A run folder written by hand: config.json and three train records."""
    cfg = TrainConfig(dataset="gaussian", alpha=alpha, seed=seed, epochs=2)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "dataset": {"sizes": {"train": 100}},
                                                    "model": {"num_classes": 10, "feature_dim": 16}}))
    lines = [json.dumps({"epoch": e, "split": "train", "p_off": p_off, "nc1": n, "nc2_h": g, "nc2_w": g,
                         "error": err}) for e, (n, g, err) in enumerate(zip(nc1, nc2, errors))]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_a_tie_in_epochs_to_the_target_nc1_is_not_support(tmp_path):
    """CE and LS first reach the target NC1 (0.5, the largest final value) at the same epoch: the
    check does not hold (a tie is never support), whereas one epoch fewer for LS does."""
    tie = [_fake_run(tmp_path / "a", 0.0, 0, 0.010, (5.0, 1.0, 0.5)),
           _fake_run(tmp_path / "b", 0.1, 0, 0.020, (5.0, 1.0, 0.5))]
    [g] = validate(tie)["groups"]
    fewer = {c["prediction"]: c for c in g["checks"]}["LS reaches a given NC1 in fewer epochs"]
    assert fewer["measured"] == {0.0: 2.0, 0.1: 2.0} and not fewer["holds"]
    ahead = [_fake_run(tmp_path / "c", 0.0, 0, 0.010, (5.0, 1.0, 0.5)),
             _fake_run(tmp_path / "d", 0.1, 0, 0.020, (5.0, 0.5, 0.5))]
    [g] = validate(ahead)["groups"]
    fewer = {c["prediction"]: c for c in g["checks"]}["LS reaches a given NC1 in fewer epochs"]
    assert fewer["measured"] == {0.0: 2.0, 0.1: 1.0} and fewer["holds"]


def test_validate_cross_run_checks_on_hand_written_records(tmp_path):
    # p_off - alpha/K: 0.010 (CE) and 0.02 - 0.01 = 0.010, 0.0115 (LS): spread 0.0015/0.0115 = 0.13 < 0.25
    runs = [_fake_run(tmp_path / "a", 0.0, 0, 0.010, (5.0, 1.0, 0.5)),
            _fake_run(tmp_path / "b", 0.1, 0, 0.020, (5.0, 0.4, 0.2)),
            _fake_run(tmp_path / "c", 0.1, 1, 0.023, (5.0, 0.6, 0.3))]
    [g] = validate(runs)["groups"]
    checks = {c["prediction"]: c for c in g["checks"]}
    agree = checks["p_off - alpha/K agrees across alpha"]
    assert agree["measured"] == pytest.approx({0.0: 0.010, 0.1: 0.0115})
    assert agree["value"] == pytest.approx(0.0015 / 0.0115) and agree["holds"] == (0.0015 / 0.0115 < AGREE_RTOL)
    # target NC1 = max final = 0.5; CE reaches it at epoch 2, LS runs at epochs 1 and 2 (mean 1.5)
    fewer = checks["LS reaches a given NC1 in fewer epochs"]
    assert fewer["target_nc1"] == 0.5 and fewer["measured"] == {0.0: 2.0, 0.1: 1.5} and fewer["holds"]
    assert checks["LS collapses more (lower final NC1)"]["measured"] == pytest.approx({0.0: 0.5, 0.1: 0.25})
    geometry = checks["geometry approaches the simplex ETF"]  # from epoch 1 (zero error): 0.5 -> 0.4
    assert geometry["holds"] and geometry["measured"][str(tmp_path / "a")]["from_epoch"] == 1
    assert "| LS collapses more (lower final NC1) |" in validation_markdown(validate(runs))


def test_validate_reports_a_failed_prediction_as_such(tmp_path):
    runs = [_fake_run(tmp_path / "a", 0.0, 0, 0.001, (5.0, 0.3, 0.1), nc2=(0.9, 0.5, 0.6)),
            _fake_run(tmp_path / "b", 0.2, 0, 0.040, (5.0, 1.0, 0.4))]  # 0.001 vs 0.02: disagree
    checks = {c["prediction"]: c["holds"] for c in validate(runs)["groups"][0]["checks"]}
    assert checks == {"p_off - alpha/K agrees across alpha": False, "geometry approaches the simplex ETF": False,
                      "LS reaches a given NC1 in fewer epochs": False, "LS collapses more (lower final NC1)": False}


def test_validate_exits_1_when_a_check_does_not_hold_and_0_when_all_hold(tmp_path, cli):
    bad = [_fake_run(tmp_path / "a", 0.0, 0, 0.001, (5.0, 0.3, 0.1), nc2=(0.9, 0.5, 0.6)),
           _fake_run(tmp_path / "b", 0.2, 0, 0.040, (5.0, 1.0, 0.4))]
    code, out, err = cli("validate", *bad)
    assert code == 1 and err.startswith("ufm validate: 4 check(s) do not hold: group 1: p_off - alpha/K agrees")
    assert err.count("\n") == 1 and "| p_off - alpha/K agrees across alpha |" in out
    good = [_fake_run(tmp_path / "c", 0.0, 0, 0.010, (5.0, 1.0, 0.5)),
            _fake_run(tmp_path / "d", 0.1, 0, 0.020, (5.0, 0.4, 0.2)),
            _fake_run(tmp_path / "e", 0.1, 1, 0.023, (5.0, 0.6, 0.3))]
    assert failed_checks(validate(good)) == []
    code, _, err = cli("validate", *good)
    assert code == 0 and err == ""


def test_cli_experiment_validate_and_bad_input(cli, tiny, tmp_path, capsys):
    folder, _, _ = tiny
    code, out, _ = cli("experiment", "--list")
    assert code == 0 and "mnist1d-mlp" in out and "cifar10-resnet18" in out
    code, out, _ = cli("experiment", str(folder / "tiny.toml"), "--out", str(tmp_path / "e"),
                       "--workers", "0", "--epochs", "2", "--seeds", "1", "--quiet")
    assert code == 0 and "report.md" in out
    assert sorted(p.name for p in (tmp_path / "e" / "runs").iterdir()) == ["alpha=0.0-seed=0", "alpha=0.1-seed=0"]
    runs = sorted((tmp_path / "e" / "runs").iterdir())
    code, out, err = cli("validate", *map(str, runs))
    failed = failed_checks(validate(runs))
    assert code == (1 if failed else 0) and "Runs compared across alpha" in out
    assert all(f in err for f in failed)
    bad = tmp_path / "bad.toml"
    for text, match in (("[base]\nepochs = 0\n[grid]\nseed = [0]\n", "'epochs' parameter of TrainConfig must be an int"),
                        ("[base]\nwidth = 3\n[grid]\nseed = [0]\n", "Unknown key 'width'"),
                        ("[base\n", "not valid TOML"),
                        ("[base]\n[grid]\nalpha = []\n", "'grid.alpha' entry of experiment 'bad' must be a non-empty")):
        bad.write_text(text)
        code, _, err = cli("experiment", str(bad), "--out", str(tmp_path / "x"))
        assert code == 2 and err.count("\n") == 1 and match in err, err
    code, _, err = cli("experiment", "cifar9")
    assert code == 2 and err.count("\n") == 1 and "unknown experiment 'cifar9': the bundled ones are cifar10-resnet18, " in err
    assert "mnist1d-mlp" in err and "or give the path of an experiment FILE.toml" in err
    code, _, err = cli("validate", str(tmp_path))
    assert code == 2 and "is not a run folder" in err


def test_experiment_spec_errors_name_the_problem(tmp_path):
    with pytest.raises(InvalidParameterError, match="experiment file .* does not exist"):
        load_experiment(tmp_path / "none.toml")


def test_validate_survives_null_records_and_reports_the_checks_as_not_holding(tmp_path):
    """Non-finite values are written as null: the checks that need them do not hold, nothing crashes."""
    runs = [_fake_run(tmp_path / "a", 0.0, 0, None, (5.0, None, None), nc2=(0.9, None, None)),
            _fake_run(tmp_path / "b", 0.1, 0, 0.02, (5.0, 0.4, 0.2))]
    checks = {c["prediction"]: c["holds"] for c in validate(runs)["groups"][0]["checks"]}
    assert checks == {"p_off - alpha/K agrees across alpha": False, "geometry approaches the simplex ETF": False,
                      "LS reaches a given NC1 in fewer epochs": False, "LS collapses more (lower final NC1)": False}
    assert "| LS collapses more (lower final NC1) | alpha=0: nan" in validation_markdown(validate(runs))
    # a folder whose config.json is not a run's: one clear error
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text('{"config": {"epochs": 2}}')
    with pytest.raises(ValueError, match="is not the configuration of a training run"):
        validate([tmp_path / "c"])


def test_spec_rejects_repeated_grid_values_and_a_base_that_is_not_a_table(tmp_path):
    from ufm.dnn.experiment import ExperimentSpec

    with pytest.raises(InvalidParameterError, match="'grid.alpha' entry .* without repeats"):
        ExperimentSpec("x", {"dataset": "gaussian"}, {"alpha": [0.1, 0.10]})
    with pytest.raises(InvalidParameterError, match="'base' table of experiment 'x' must map"):
        ExperimentSpec("x", 3, {"seed": [0]})


def test_experiment_writes_records_and_the_report_renders_validation_md(tiny, tmp_path):
    import shutil
    import subprocess
    import sys

    folder, _, result = tiny
    shutil.copytree(folder / "out", tmp_path / "out")
    for name in ("validation.md", "report.md"):
        (tmp_path / "out" / name).unlink(missing_ok=True)
    render_experiment(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert (tmp_path / "out" / "validation.md").read_text() == validation_markdown(saved)
    assert validation_markdown(saved) == validation_markdown(result["validation"])
    code = "import sys, ufm.dnn.experiment; print(sorted(m for m in sys.modules if m.startswith('ufm.report')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_with_seeds_replaces_the_grids_seeds_and_keeps_the_rest(tmp_path):
    from ufm.dnn.experiment import ExperimentSpec

    spec = ExperimentSpec("x", {"dataset": "gaussian", "epochs": 2}, {"alpha": [0.0, 0.1], "seed": [5]}, "d")
    three = spec.with_seeds(3)
    assert three.grid == {"alpha": [0.0, 0.1], "seed": [0, 1, 2]} and spec.grid["seed"] == [5]
    assert (three.name, three.base, three.description) == (spec.name, spec.base, spec.description)
    assert [n for n, _ in three.runs()] == [f"alpha={a}-seed={s}" for a in (0.0, 0.1) for s in range(3)]
    no_seed = ExperimentSpec("x", {"dataset": "gaussian"}, {"alpha": [0.0, 0.1]}).with_seeds(2)
    assert no_seed.grid == {"alpha": [0.0, 0.1], "seed": [0, 1]}
    assert spec.override(epochs=1).with_seeds(1).base == {"dataset": "gaussian", "epochs": 1}
    with pytest.raises(InvalidParameterError, match=r"The 'seeds' parameter of ExperimentSpec.with_seeds must be "
                                                    r"an int in the range \[1, inf\)\. Got 0 instead\.") as info:
        spec.with_seeds(0)
    assert info.value.param == "seeds"


def test_figures_use_the_experiments_own_runs_not_stale_folders(tiny, tmp_path):
    import shutil

    from ufm.report.experiment import load_runs

    folder, spec, _ = tiny
    shutil.copytree(folder / "out", tmp_path / "out")
    one_seed = spec.with_seeds(1)
    run_experiment(one_seed, tmp_path / "out", workers=0, progress=False)  # the seed-1 folders stay on disk
    assert sorted(r["name"] for r in load_runs(tmp_path / "out")) == ["alpha=0.0-seed=0", "alpha=0.1-seed=0"]


def test_with_epochs_scales_the_milestones_and_keeps_the_rest():
    from ufm.dnn.experiment import ExperimentSpec, scale_milestones

    spec = load_experiment("mnist1d-mlp")  # 200 epochs, milestones [100, 150], records every 5
    for epochs, milestones in ((50, [25, 38]), (10, [5, 8]), (3, [2]), (2, [1]), (1, []), (200, [100, 150]),
                               (400, [200, 300])):
        short = spec.with_epochs(epochs)
        assert short.base == {**spec.base, "epochs": epochs, "milestones": milestones}, epochs
        assert short.grid == spec.grid and {c.milestones for _, c in short.runs()} == {tuple(milestones)}
    assert spec.base["milestones"] == [100, 150] and spec.with_epochs(10).base["eval_every"] == 5
    assert scale_milestones([1, 2, 3, 40], 40, 4) == [1, 3] and scale_milestones([10], 20, 3) == [2]  # 1.5 -> 2
    # a grid of milestone lists is scaled list by list (repeats merged); a grid of epochs is left alone
    grid = ExperimentSpec("x", {"dataset": "gaussian", "epochs": 20}, {"milestones": [[10], [11]], "seed": [0]})
    assert grid.with_epochs(4).grid == {"milestones": [[2]], "seed": [0]}
    varied = ExperimentSpec("x", {"dataset": "gaussian", "milestones": [5]}, {"epochs": [10, 20]})
    assert varied.with_epochs(4).base == {"dataset": "gaussian", "milestones": [5], "epochs": 4}
    assert ExperimentSpec("x", {"milestones": [15]}, {"seed": [0]}).with_epochs(10).base["milestones"] == [5]  # of 30
    with pytest.raises(InvalidParameterError, match=r"'epochs' parameter of ExperimentSpec.with_epochs must be"):
        spec.with_epochs(0)


def test_cli_epochs_scales_the_milestones_and_says_so(cli, tmp_path):
    toml = tmp_path / "m.toml"
    toml.write_text(TOML.replace("eval_every = 2", "eval_every = 2\nmilestones = [2, 3]").replace(
        "alpha = [0.0, 0.1]", "alpha = [0.0]"))
    code, _, err = cli("experiment", str(toml), "--out", str(tmp_path / "e"), "--workers", "0", "--epochs", "2",
                       "--seeds", "1", "--quiet")
    assert code == 0
    lines = [line for line in err.splitlines() if "milestones" in line]
    assert lines == ["ufm experiment: --epochs 2: the learning-rate milestones are scaled from [2, 3] (of 4 epochs) "
                     "to [1]"], err
    config = json.loads((tmp_path / "e" / "runs" / "alpha=0.0-seed=0" / "config.json").read_text())["config"]
    assert (config["epochs"], config["milestones"], config["eval_every"]) == (2, [1], 2)


def test_the_experiment_judges_the_claims_on_its_runs_and_its_report_shows_them(tiny):
    folder, spec, result = tiny
    out = folder / "out"
    claims = json.loads((out / "claims.json").read_text())["results"]
    from ufm.analysis.claims import CLAIMS

    assert [c["id"] for c in claims] == [c.id for c in CLAIMS]
    assert {c["id"]: c["verdict"] for c in claims}["closed-form"] == "not-evaluated"  # no UFM evidence in a run
    from ufm.report.experiment import render_experiment

    render_experiment(out)
    assert "## Claims of the paper, judged on these runs" in (out / "report.md").read_text()


def test_a_folder_holding_other_work_is_refused_and_left_as_it_was(cli, tmp_path):
    toml = tmp_path / "e.toml"
    toml.write_text(TOML)
    other = tmp_path / "other"
    other.mkdir()
    (other / "experiment.json").write_text('{"name": "other", "runs": ["old"]}')
    code, out, err = cli("experiment", toml, "--out", other, "--workers", "0", "--quiet")
    assert code == 2 and "holds another experiment ('other')" in err and err.count("\n") == 1
    assert (other / "experiment.json").read_text() == '{"name": "other", "runs": ["old"]}'
    assert sorted(p.name for p in other.iterdir()) == ["experiment.json"]
    sweep = tmp_path / "sw"
    assert cli("sweep", "--out", sweep, "--classes", "3", "--quiet")[0] == 0
    before = sorted(p.name for p in sweep.iterdir())
    code, _, err = cli("experiment", toml, "--out", sweep, "--workers", "0", "--quiet")
    assert code == 2 and "holds a sweep (sweep.sqlite)" in err
    code, _, err = cli("train", "--out", sweep, "--dataset", "gaussian", "--epochs", "1", "--quiet")
    assert code == 2 and "holds a sweep (sweep.sqlite), not a run" in err
    assert sorted(p.name for p in sweep.iterdir()) == before
