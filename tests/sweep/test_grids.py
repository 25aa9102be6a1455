"""A sweep folder holds one grid unless extended; other work is refused; Ctrl-C keeps what was done."""
import csv
import json

import pytest

from ufm.records.store import SweepStore
from ufm.sweep import SweepSpec, run_sweep, sweep_status
from ufm.sweep.grids import SweepFolderError


def _keys(folder):
    with open(folder / "results.csv", newline="") as fh:
        return sorted(r["key"] for r in csv.DictReader(fh))


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}  # -wal, -shm too


def test_another_grid_is_refused_naming_the_keys_that_differ(cli, tmp_path):
    toml = tmp_path / "a.toml"
    toml.write_text("classes = [3]\nalphas = [0.0, 0.1]\n")
    out = tmp_path / "sw"
    assert cli("sweep", "--out", out, "--config", toml)[0] == 0
    before = _snapshot(out)
    code, stdout, err = cli("sweep", "--out", out, "--classes", "5", "--alphas", "0.2")
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "alphas [0.0, 0.1] there, [0.2] here" in err and "classes [3] there, [5] here" in err
    assert "--extend" in err and "lambda_w" not in err  # only the keys that differ
    assert _snapshot(out) == before  # nothing written: results.csv, spec.json and the store as they were
    assert sweep_status(out) == {"total": 2, "done": 2, "errors": 0, "remaining": 0, "what": ["closed-form"],
                                 "grids": 1}


def test_extend_records_every_grid_and_counts_their_union(cli, tmp_path):
    out = tmp_path / "sw"
    first = dict(classes=[3], alphas=[0.0, 0.1])
    second = dict(classes=[3, 5], alphas=[0.1])  # shares the point K=3, alpha=0.1 with the first
    run_sweep(SweepSpec(**first), out)
    summary = run_sweep(SweepSpec(**second), out, extend=True)
    assert (summary["total"], summary["computed"]) == (3, 1)
    expected = sorted({p["key"] for g in (first, second) for p in SweepSpec(**g).points()})
    assert len(expected) == 3 and _keys(out) == expected
    assert json.loads((out / "spec.json").read_text())["grids"] == [SweepSpec(**first).to_dict(),
                                                                   SweepSpec(**second).to_dict()]
    assert cli("sweep", "--status", out)[1].startswith("3/3 points done over 2 grids (closed-form)")
    # rerunning either grid resumes it, and the count stays that of the union
    assert run_sweep(SweepSpec(**first), out)["computed"] == 0
    assert sweep_status(out)["total"] == 3 and sweep_status(out)["remaining"] == 0
    # more components for one grid: its points are not done until they have them
    run_sweep(SweepSpec(**second, what=["closed-form", "conditioning"]), out)
    status = sweep_status(out)
    assert (status["total"], status["done"], status["remaining"]) == (3, 3, 0)
    with SweepStore(out / "sweep.sqlite") as store:
        store.conn.execute("DELETE FROM points WHERE key = ?", (SweepSpec(**second).points()[-1]["key"],))
        store.conn.commit()
    assert sweep_status(out)["remaining"] == 1


def test_the_same_grid_with_other_components_is_not_another_grid(tmp_path):
    spec = dict(classes=[3], alphas=[0.0, 0.1])
    run_sweep(SweepSpec(**spec), tmp_path)
    run_sweep(SweepSpec(**spec, what=["conditioning"]), tmp_path)
    assert sweep_status(tmp_path)["what"] == ["closed-form", "conditioning"]
    with pytest.raises(SweepFolderError, match="per_class"):
        run_sweep(SweepSpec(**spec, per_class=[4]), tmp_path)


def test_a_folder_holding_other_work_is_refused(cli, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    code, _, err = cli("sweep", "--out", tmp_path, "--classes", "3")
    assert code == 2 and "holds other work (config.json)" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_an_interrupted_sweep_says_what_was_kept_and_how_to_resume(cli, tmp_path, monkeypatch):
    """Ctrl-C after the first group: that group is in the store and in results.csv, the message says
    so, and the same command resumes with the other groups only."""
    import ufm.sweep.runner as runner

    real, calls = runner.compute_group, []

    def interrupted_after_one(points, what, device=None):
        if calls:
            raise KeyboardInterrupt
        calls.append(len(points))
        return real(points, what, device)

    monkeypatch.setattr(runner, "compute_group", interrupted_after_one)
    out = tmp_path / "sw"
    args = ["sweep", "--out", out, "--classes", "3,4", "--alphas", "0,0.1", "--what", "solve", "--workers", "0"]
    code, _, err = cli(*args)
    last = err.strip().splitlines()[-1]  # after the line that says what is to be computed
    assert code == 130 and last.startswith("ufm sweep: interrupted: ")
    assert f"interrupted: 2 of 4 points are kept in {out} (results.csv lists them); rerun the same command" in last
    assert len(_keys(out)) == 2 == calls[0]
    monkeypatch.setattr(runner, "compute_group", real)
    code, _, err = cli(*args)
    assert code == 0 and "4 points, 2 already done, 2 to compute" in err and len(_keys(out)) == 4


def test_results_csv_is_rewritten_as_groups_finish(tmp_path, monkeypatch):
    import ufm.sweep.runner as runner

    seen = []
    real = runner.export_csv

    def export(store, path):
        seen.append(store.count())
        real(store, path)

    monkeypatch.setattr(runner, "CSV_EVERY", 0.0)
    monkeypatch.setattr(runner, "export_csv", export)
    monkeypatch.setattr(runner, "GROUP_SIZE", 1)
    run_sweep(SweepSpec(classes=[3], alphas=[0.0, 0.1, 0.2], what=["solve"]), tmp_path, workers=0)
    assert seen[:3] == [1, 2, 3]  # after each group, then once at the end


def test_reading_a_store_leaves_no_file_behind(cli, tmp_path):
    out = tmp_path / "sw"
    assert cli("sweep", "--out", out, "--classes", "3", "--quiet")[0] == 0
    before = _snapshot(out)
    assert cli("sweep", "--status", out)[0] == 0 and cli("claims", out)[0] == 0
    assert _snapshot(out) == before  # no -wal, no -shm


def test_a_damaged_store_is_one_line(cli, tmp_path):
    (tmp_path / "sweep.sqlite").write_text("not a database")
    for argv in (["sweep", "--status", tmp_path], ["plot", tmp_path], ["claims", tmp_path],
                 ["sweep", "--out", tmp_path, "--classes", "3"]):
        code, _, err = cli(*argv)
        assert code == 2 and err.count("\n") == 1 and "is not a sweep store (file is not a database)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.sqlite"]


def test_ctrl_c_before_the_store_exists_says_nothing_was_kept(cli, tmp_path, monkeypatch):
    import ufm.sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ufm.sweep, "run_sweep", interrupted)
    code, _, err = cli("sweep", "--out", tmp_path / "sw", "--classes", "3")
    assert code == 130 and err == f"ufm sweep: interrupted: before any point was stored in {tmp_path / 'sw'}\n"
