"""Read-only folders: commands that only read work on them; commands that write say so in one line
and write nothing (the folders are made read-only for real: a read-only mount as root, else
permission bits)."""
import json

CLI_DATA = ["--dataset", "gaussian", "--dataset-option", "num_classes=3", "--dataset-option", "dim=8",
            "--dataset-option", "train_size_per_class=20", "--dataset-option", "test_size_per_class=10",
            "--model-option", "width=8", "--model-option", "depth=1"]


def _one_line_cannot_write(code, stdout, err, folder):
    assert code == 2 and stdout == "" and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()]
    reason = err.strip().split(f"cannot write to {folder}: ")[1]
    assert reason in ("read-only file system", "permission denied")  # the latter under permission bits


def test_a_read_only_sweep_reports_its_status_and_refuses_to_be_written(cli, tmp_path, read_only):
    out = tmp_path / "sw"
    args = ["sweep", "--out", out, "--classes", "3,4", "--alphas", "0,0.1"]
    assert cli(*args)[0] == 0
    read_only(tmp_path)
    code, stdout, err = cli("sweep", "--status", out)
    assert (code, err) == (0, "") and stdout.startswith("4/4 points done (closed-form)")
    _one_line_cannot_write(*cli(*args), out)
    _one_line_cannot_write(*cli("sweep", "--out", tmp_path / "new", "--classes", "3"), tmp_path / "new")


def test_training_into_a_read_only_folder_is_one_line(cli, tmp_path, read_only):
    read_only(tmp_path)
    _one_line_cannot_write(*cli("train", "--out", tmp_path / "run", *CLI_DATA, "--epochs", "1", "--quiet"),
                           tmp_path / "run")
    _one_line_cannot_write(*cli("train", "--out", tmp_path, *CLI_DATA, "--epochs", "1", "--quiet"), tmp_path)


def test_an_experiment_into_a_read_only_folder_is_one_line(cli, tmp_path, read_only):
    spec = tmp_path / "e.toml"
    spec.write_text('name = "e"\n[base]\ndataset = "gaussian"\nepochs = 1\n[grid]\nalpha = [0.0]\nseed = [0]\n')
    read_only(tmp_path)
    code, stdout, err = cli("experiment", spec, "--out", tmp_path / "exp", "--workers", "0", "--quiet")
    _one_line_cannot_write(code, stdout, err, tmp_path / "exp")


def test_a_read_only_run_folder_can_be_validated(cli, tmp_path, read_only):
    run = tmp_path / "run"
    assert cli("train", "--out", run, *CLI_DATA, "--epochs", "2", "--quiet")[0] == 0
    before = sorted(p.name for p in run.iterdir())
    read_only(tmp_path)
    code, stdout, err = cli("validate", run, "--json")
    assert code in (0, 1) and "Traceback" not in err
    assert json.loads(stdout)["groups"] and sorted(p.name for p in run.iterdir()) == before


def test_a_read_only_sweep_is_plotted_elsewhere(cli, tmp_path, read_only):
    out = tmp_path / "sw"
    assert cli("sweep", "--out", out, "--classes", "3,4", "--dims", "K-1,K", "--alphas", "0,0.1")[0] == 0
    read_only(out)
    _one_line_cannot_write(*cli("plot", out), out)
    code, stdout, err = cli("plot", out, "--out", tmp_path / "figs", "--format", "png,svg", "--select", "d=K")
    assert code == 0 and "Traceback" not in err
    written = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert "fig_sweep_closed_form.png" in written and "fig_sweep_closed_form.svg" in written
    assert sorted(stdout.splitlines()) == [str(tmp_path / "figs" / name) for name in written]
    assert cli("claims", out)[0] == 0


def test_a_read_only_run_folder_is_plotted_elsewhere(cli, tmp_path, read_only):
    run = tmp_path / "run"
    assert cli("train", "--out", run, *CLI_DATA, "--epochs", "2", "--quiet")[0] == 0
    read_only(run)
    code, stdout, err = cli("plot", run, "--out", tmp_path / "figs")
    assert code == 0 and (tmp_path / "figs" / "report.md").is_file() and (tmp_path / "figs" / "nc_vs_epoch.png").is_file()
