"""Sweeps: specification (flags and TOML), store and resume after kill -9, errors, status, CSV."""
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from ufm import InvalidParameterError, UFMProblem, closed_form
from ufm.sweep import SweepSpec, run_sweep, sweep_status
from ufm.records.store import SweepStore


def test_points_have_stable_keys_and_dims_in_K():
    spec = SweepSpec(alphas=[0, 0.1], classes=[3, 5], dims=["K-1", "2K", 7], per_class=[4], seeds=2)
    pts = spec.points()
    assert len(pts) == 2 * 2 * 3 * 2
    assert {(p["num_classes"], p["dim"]) for p in pts} == {(3, 2), (3, 6), (3, 7), (5, 4), (5, 10), (5, 7)}
    assert [p["key"] for p in pts] == [p["key"] for p in spec.points()]  # stable
    assert len({p["key"] for p in pts}) == len(pts)


def test_toml_and_flags_give_the_same_points(cli, tmp_path, capsys):
    toml = tmp_path / "sweep.toml"
    toml.write_text('alphas = [0.0, 0.1]\nclasses = [3, 4]\ndims = ["K"]\nper_class = [5]\nlambda_w = [0.005]\n'
                    'lambda_h = [0.005, 0.01]\nlambda_b = [0.0]\nseeds = 2\nwhat = ["closed-form"]\n')
    assert cli("sweep", "--out", str(tmp_path / "a"), "--config", str(toml))[0] == 0
    assert cli("sweep", "--out", str(tmp_path / "b"), "--alphas", "0,0.1", "--classes", "3,4",
               "--per-class", "5", "--lambda-h", "5e-3,1e-2", "--seeds", "2")[0] == 0
    a = (tmp_path / "a" / "results.csv").read_text()
    assert a == (tmp_path / "b" / "results.csv").read_text() and a.count("\n") == 1 + 16


def test_closed_form_column_equals_the_api(tmp_path):
    spec = SweepSpec(alphas=[0.0, 0.3], classes=[10], per_class=[10], lambda_w=[5e-3, 4e-2], lambda_h=[5e-3, 4e-2])
    run_sweep(spec, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 8 and any(r["trivial"] == "True" for r in rows)  # past the threshold: recorded, not failed
    for r in rows:
        cf = closed_form(UFMProblem(10, 10, 10, float(r["lambda_w"]), float(r["lambda_h"]), 0.0, float(r["alpha"])))
        assert float(r["cf_logit_gap"]) == cf.logit_gap and (r["trivial"] == "True") == cf.trivial
        assert r["status"] == "ok"


@pytest.mark.parametrize("toml, match", [
    ("alphas = [0.0, 0.1\n", "not valid TOML"),
    ("alphas = [0.0]\ncolors = [1]\n", "Unknown key 'colors'"),
    ("alphas = []\n", "'alphas' parameter of SweepSpec must be a non-empty list"),
    ("what = ['everything']\n", "'what' parameter of SweepSpec must hold names among"),
])
def test_bad_sweep_files(cli, tmp_path, capsys, toml, match):
    f = tmp_path / "s.toml"
    f.write_text(toml)
    with pytest.raises(InvalidParameterError, match=match):
        SweepSpec.from_toml(f)
    code, out, err = cli("sweep", "--out", str(tmp_path / "out"), "--config", str(f))
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "out").exists()  # nothing written


def test_bad_flags_write_nothing(cli, tmp_path, capsys):
    for argv, msg in ((["--alphas", "0,1.5"], "--alphas must be a float in the range [0, 1). Got 1.5 instead."),
                      (["--classes", "1"], "--classes must be an int in the range [2, inf). Got 1 instead."),
                      (["--dims", "Q"], "--dims must be ints or expressions like K"),
                      (["--what", "plots"], "--what must be comma-separated names among"),
                      (["--classes", ""], "--classes must hold at least one int")):
        code, _, err = cli("sweep", "--out", str(tmp_path / "o"), *argv)
        assert code == 2 and msg in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "o").exists()
    code, _, err = cli("sweep", "--status", str(tmp_path / "none"))
    assert code == 2 and "no sweep has been run" in err


def test_a_failing_group_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import ufm.analysis.verify  # noqa: F401  (imported first, so it keeps the real solve when the runner imports it)
    import ufm.numerics.solve as solver

    real = solver.solve

    def flaky(problems, **kw):
        if problems[0].K == 4:
            raise solver.SolverDivergedError("diverged on purpose")
        return real(problems, **kw)

    monkeypatch.setattr(solver, "solve", flaky)
    spec = SweepSpec(alphas=[0.0, 0.1], classes=[3, 4], per_class=[3], what=["closed-form", "solve"])
    summary = run_sweep(spec, tmp_path, workers=0)
    assert summary["errors"] == 2
    rows = {r["config"]["num_classes"]: r for r in SweepStore(tmp_path / "sweep.sqlite").rows()}
    assert rows[4]["status"] == "error" and "diverged on purpose" in rows[4]["error"]
    assert rows[3]["status"] == "ok" and rows[3]["result"]["max_error"] < 1e-6


SWEEP = ["--classes", "3,4,5,6,7,8,9,10", "--alphas", "0,0.1", "--per-class", "20", "--what", "closed-form,solve",
         "--workers", "0"]


def _records(path):
    with sqlite3.connect(str(path)) as conn:
        return sorted(conn.execute("SELECT key, config, result, components, status, error FROM points"))


def test_kill_and_resume_gives_the_records_of_an_uninterrupted_run(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    cmd = [sys.executable, "-m", "ufm", "sweep", *SWEEP]
    subprocess.run(cmd + ["--out", str(whole)], check=True, capture_output=True)
    proc = subprocess.Popen(cmd + ["--out", str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db, t0 = cut / "sweep.sqlite", time.time()
    while time.time() - t0 < 120:  # kill -9 once some, not all, groups are stored
        if db.exists():
            try:
                n = SweepStore(db).count()
            except sqlite3.Error:
                n = 0
            if 0 < n < 16:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = SweepStore(db).count()
    assert 0 < partial < 16, partial
    status = sweep_status(cut)
    assert status["done"] == partial and status["remaining"] == 16 - partial
    out = subprocess.run(cmd + ["--out", str(cut)], check=True, capture_output=True, text=True)
    assert f"{16 - partial} to compute" in out.stderr
    assert _records(db) == _records(whole / "sweep.sqlite")  # same records, no duplicates
    assert (cut / "results.csv").read_text() == (whole / "results.csv").read_text()


def test_local_dask_cluster_equals_local_processes(tmp_path):
    pytest.importorskip("distributed")
    spec = SweepSpec(alphas=[0.0, 0.1], classes=[3, 4], per_class=[3], seeds=2, what=["closed-form", "solve"])
    run_sweep(spec, tmp_path / "procs", workers=2)
    run_sweep(spec, tmp_path / "dask", cluster="local-dask", workers=2)
    assert _records(tmp_path / "procs" / "sweep.sqlite") == _records(tmp_path / "dask" / "sweep.sqlite")


def test_unreachable_scheduler_is_one_line_and_writes_nothing(cli, tmp_path, capsys):
    pytest.importorskip("distributed")
    code, _, err = cli("sweep", "--out", str(tmp_path / "o"), "--what", "solve", "--cluster",
                       "dask://127.0.0.1:9")
    assert code == 2 and "cannot be reached" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
    code, _, err = cli("sweep", "--out", str(tmp_path / "o"), "--cluster", "yarn")
    assert code == 2 and "--cluster must be local-dask or dask://HOST:PORT" in err


def test_plots_build_from_the_store_alone(cli, tmp_path, capsys):
    spec = SweepSpec(alphas=[0.0, 0.1], classes=[3, 4], per_class=[3], what=["closed-form", "conditioning",
                                                                            "convergence"])
    run_sweep(spec, tmp_path, workers=0)
    for name in ("results.csv", "spec.json"):
        (tmp_path / name).unlink()  # only the store is needed
    code, out, _ = cli("plot", str(tmp_path))
    assert code == 0
    for name in ("fig_sweep_closed_form.png", "fig_sweep_kappa.png", "fig_sweep_steps.png", "fig_sweep_heatmap.png"):
        assert (tmp_path / name).is_file() and name in out
    rows = {(r["config"]["num_classes"], r["config"]["alpha"]): r["result"]
            for r in SweepStore(tmp_path / "sweep.sqlite").rows()}
    from ufm.analysis.conditioning import conditioning
    s = {x.definition: x.condition_number for x in conditioning(UFMProblem(4, 3, 4, alpha=0.1))}
    assert rows[(4, 0.1)]["kappa_full"] == s["full"] and rows[(4, 0.1)]["conv_steps_nc1_1e-06"] > 0


def test_the_key_hashes_the_canonical_json_of_the_configuration():
    import json as _json

    spec = SweepSpec(alphas=[0.0, 1 / 3, 0.1], classes=[2, 7], dims=["K", "2K+1"], lambda_w=[1e-3, 2.5e-2],
                     lambda_b=[0, 1e-4], seeds=2)
    from ufm.sweep.spec import point_key
    for p in spec.points():
        config = {k: v for k, v in p.items() if k not in ("key", "config_json")}
        assert p["config_json"] == _json.dumps(config, sort_keys=True) and p["key"] == point_key(config)


def test_parquet_table_when_pyarrow_is_installed(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is optional; results.parquet needs it")
    run_sweep(SweepSpec(alphas=[0.0, 0.1], classes=[3], per_class=[2]), tmp_path)
    table = pq.read_table(tmp_path / "results.parquet").to_pylist()
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["key"] for r in table] == [r["key"] for r in rows]
    assert [r["cf_logit_gap"] for r in table] == [float(r["cf_logit_gap"]) for r in rows]


def _rows_of_records(records):
    """The stored rows of records written the per-record way (``put_many``: json.dumps of each dict)."""
    return sorted((r["key"], r["config_json"], json.dumps(r["result"]), json.dumps(sorted(set(r["components"]))),
                   r["status"], r["error"]) for r in records)


# both branches; d = 1 < K - 1 at K = 3, 5: no closed form; at K = 2, d = 1 = K - 1: a repeated point
MIXED = dict(alphas=[0.0, 0.1, 0.3], classes=[2, 3, 5], dims=[1, "K-1", "K+1"], per_class=[2, 500],
             lambda_w=[5e-3, 0.2], lambda_b=[0.0, 1e-2], seeds=2)


@pytest.mark.parametrize("what", [["closed-form"], ["closed-form", "conditioning"], ["conditioning"]])
def test_the_vectorized_sweep_writes_the_records_of_the_per_point_path(tmp_path, what):
    """The driver's columns, formatted once for the store and the CSV, against the per-point records
    (``compute_group``, one point at a time, dicts through json.dumps and csv.writer): the same rows
    byte for byte (kappa only where the closed form applies, kappa_full_with_bias where lambda_b = 0),
    and results.csv equal to the table export_csv writes from the store."""
    from ufm.sweep.runner import compute_group, export_csv

    spec = SweepSpec(**MIXED, what=what)
    run_sweep(spec, tmp_path)
    expected = _rows_of_records([compute_group([p], what)[0] for p in spec.points()])
    assert _records(tmp_path / "sweep.sqlite") == expected
    with SweepStore(tmp_path / "sweep.sqlite") as store:
        export_csv(store, tmp_path / "from_store.csv")
    assert (tmp_path / "results.csv").read_bytes() == (tmp_path / "from_store.csv").read_bytes()
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == len(spec.points()) and {r["status"] for r in rows} == {"ok"}
    if "conditioning" in what:
        no_cf = [r for r in rows if int(r["dim"]) < int(r["num_classes"]) - 1]
        assert no_cf and all(r["kappa_full"] == "" for r in no_cf)
        assert all((r["kappa_full_with_bias"] == "") == (float(r["lambda_b"]) > 0 or r in no_cf) for r in rows)


def test_a_component_added_to_stored_points_is_merged(tmp_path):
    """closed-form first, then closed-form and conditioning over a larger grid: the stored points gain
    the new columns (their results merged), the new ones are written whole; the same rows and CSV as
    one run of the second sweep into a fresh folder."""
    small = SweepSpec(**{**MIXED, "alphas": [0.0, 0.1]})
    run_sweep(small, tmp_path / "two")
    both = SweepSpec(**MIXED, what=["closed-form", "conditioning"])
    assert run_sweep(both, tmp_path / "two", extend=True)["computed"] == len(both.points())
    run_sweep(both, tmp_path / "one")
    assert _records(tmp_path / "two" / "sweep.sqlite") == _records(tmp_path / "one" / "sweep.sqlite")
    assert (tmp_path / "two" / "results.csv").read_bytes() == (tmp_path / "one" / "results.csv").read_bytes()


def test_a_finished_sweep_reruns_without_recomputing(tmp_path):
    """A rerun of a finished sweep computes nothing and rewrites nothing but spec.json; another grid,
    another component, or a missing results.csv is looked at point by point again."""
    spec = SweepSpec(**MIXED)
    first = run_sweep(spec, tmp_path)
    records, table = _records(tmp_path / "sweep.sqlite"), (tmp_path / "results.csv").read_bytes()
    again = run_sweep(spec, tmp_path)
    assert (again["total"], again["computed"], again["errors"]) == (first["total"], 0, 0)
    assert _records(tmp_path / "sweep.sqlite") == records and (tmp_path / "results.csv").read_bytes() == table
    assert run_sweep(SweepSpec(**{**MIXED, "seeds": 3}), tmp_path, extend=True)["computed"] == first["total"] // 2
    assert run_sweep(spec, tmp_path)["computed"] == 0  # its points are all still there
    (tmp_path / "results.csv").unlink()
    assert run_sweep(spec, tmp_path)["computed"] == 0 and (tmp_path / "results.csv").is_file()
    assert run_sweep(SweepSpec(**MIXED, what=["closed-form", "conditioning"]), tmp_path)["computed"] > 0
    assert sweep_status(tmp_path)["remaining"] == 0


def test_kill_and_resume_of_a_vectorized_sweep(tmp_path):
    """kill -9 during a closed-form sweep written in many transactions (CHUNK set small): every
    committed chunk is whole, and the resumed sweep has the records and results.csv of a run that was
    never interrupted."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    code = ("import sys, ufm.sweep.runner as r; r.CHUNK = 200; from ufm.cli.main import main; "
            "sys.exit(main(sys.argv[1:]))")
    args = ["sweep", "--classes", ",".join(map(str, range(2, 42))), "--alphas",
            ",".join(str(i / 1000) for i in range(100)), "--lambda-h", "5e-3,1e-2,2e-2", "--seeds", "2"]
    total = 40 * 100 * 3 * 2
    cmd = [sys.executable, "-c", code, *args]
    subprocess.run(cmd + ["--out", str(whole)], check=True, capture_output=True)
    proc = subprocess.Popen(cmd + ["--out", str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db, t0 = cut / "sweep.sqlite", time.time()
    while time.time() - t0 < 120:
        if db.exists():
            try:
                n = SweepStore(db).count()
            except sqlite3.Error:
                n = 0
            if 0 < n < total:
                break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = SweepStore(db).count()
    assert 0 < partial < total and partial % 200 == 0, partial  # whole transactions only
    out = subprocess.run(cmd + ["--out", str(cut)], check=True, capture_output=True, text=True)
    assert f"{total - partial} to compute" in out.stderr
    assert _records(db) == _records(whole / "sweep.sqlite")
    assert (cut / "results.csv").read_bytes() == (whole / "results.csv").read_bytes()
