"""The `ufm` command: every subcommand, JSON outputs, exit codes and one-line errors."""
import json
import subprocess
import sys

import pytest

from ufm import UFMProblem, closed_form


def test_closed_form_json_matches_api(cli):
    code, out, _ = cli("closed-form", "-K", "10", "-n", "20", "-d", "12", "--lambda-w", "1e-3",
                       "--lambda-h", "2e-3", "--alpha", "0.1", "--json")
    assert code == 0
    d = json.loads(out)
    cf = closed_form(UFMProblem(10, 20, 12, 1e-3, 2e-3, 0.0, 0.1))
    for k in ("logit_gap", "p_true", "w_norm", "h_norm", "objective", "trivial"):
        assert d[k] == getattr(cf, k)


def test_closed_form_text_and_latex(cli):
    code, out, _ = cli("closed-form", "--alpha", "0.05", "--latex")
    assert code == 0 and "logit_gap" in out and r"\log" in out and "trivial    no" in out


def test_closed_form_past_threshold(cli):
    code, out, _ = cli("closed-form", "-K", "10", "--lambda-w", "0.1", "--lambda-h", "0.1", "--json")
    d = json.loads(out)
    assert code == 0 and d["trivial"] is True and d["w_norm"] == 0.0


def test_solve_json_agrees_with_closed_form(cli):
    code, out, _ = cli("solve", "-K", "4", "-n", "5", "--alpha", "0.2", "--json", "--device", "cpu")
    assert code == 0
    d = json.loads(out)
    assert d["numeric"]["converged"]
    assert max(d["errors"][k] for k in ("logit_gap", "w_norm", "h_norm", "objective")) < 1e-6
    code, out, _ = cli("solve", "-K", "4", "-n", "5", "--method", "momentum", "--lr", "0.1",
                       "--nc1-variant", "unnormalized")
    assert code == 0 and "converged: yes" in out and "tr, no 1/K" in out


def test_verify_passes_and_fails_honestly(cli):
    code, out, _ = cli("verify", "--classes", "3", "--seeds", "1", "--json")
    d = json.loads(out)
    assert code == 0 and d["passed"] == d["total"] == 45
    code, out, _ = cli("verify", "--classes", "3", "--seeds", "1", "--solver-tol", "1e-3")
    assert code == 1 and "FAIL" in out


def test_derive_prints_steps(cli):
    code, out, _ = cli("derive")
    assert code == 0 and "Stationarity" in out and "s_{\\mathrm{crit}}" in out


@pytest.mark.parametrize("argv, flag", [
    (["closed-form", "--alpha", "1.5"], "--alpha/--alphas must be a float in the range [0, 1). Got 1.5 instead."),
    (["closed-form", "--alpha", "nan"], "--alpha"),
    (["closed-form", "-K", "1"], "-K/--num-classes must be an int in the range [2, inf). Got 1 instead."),
    (["closed-form", "-n", "0"], "-n/--per-class"),
    (["closed-form", "-d", "0"], "-d/--dim"),
    (["closed-form", "--lambda-w", "-1"], "--lambda-w must be a float in the range (0, inf)"),
    (["closed-form", "--lambda-b", "-0.5"], "--lambda-b"),
    (["closed-form", "-K", "x"], "-K/--num-classes"),
    (["solve", "--lr", "0", "--method", "gd"], "--lr"),
    (["solve", "--method", "adam"], "--method"),
    (["solve", "--device", "cuda:7"], "--device"),
    (["verify", "--seeds", "0"], "--seeds"),
    (["verify", "--classes", "3,x"], "--classes"),
    (["report", "/nonexistent/folder"], "not found; run `ufm demo --out /nonexistent/folder` first"),
    (["frobnicate"], "invalid choice"),
    (["verify", "--solver-tol", "0"], "--solver-tol must be a float in the range (0, inf)"),
    (["verify", "--per-class", "0"], "--per-class must be an int in the range [1, inf)"),
    (["solve", "--lr", "0.1"], "--lr must be used with method gd or momentum"),
    (["solve", "--device", "meta"], "--device"),
    (["conditioning", "--alphas", "0,1.5"], "--alphas must be a float in the range [0, 1). Got 1.5 instead."),
    (["conditioning", "--alphas", "0,x"], "--alphas must be comma-separated numbers"),
    (["conditioning", "--definitions", "logits,hessian"], "--definitions must be comma-separated names among"),
    (["conditioning", "-K", "5", "-d", "3"], "-d/--dim must be an int in the range [4, inf). Got 3 instead."),
    (["conditioning", "--null-rtol", "2"], "--null-rtol must be a float in the range (0, 1)"),
    (["convergence", "--eps", "0"], "--eps must be a float in the range (0, 1). Got 0.0 instead."),
    (["convergence", "--rules", "fast"], "--rules must be comma-separated names among local, common"),
    (["convergence", "--seeds", "0"], "--seeds must be an int in the range [1, inf). Got 0 instead."),
    (["conditioning", "--max-gib", "0"], "--max-gib must be a float in the range [9.5367431640625e-07, 1073741824]. Got 0.0 instead."),
    (["convergence", "--init-scale", "0"], "--init-scale must be a float in the range (0, inf)"),
    (["convergence", "--alphas", ""], "--alphas must hold at least one number"),
])
def test_bad_input_exits_2_with_one_line(cli, argv, flag):
    code, out, err = cli(*argv)
    assert code == 2
    assert err.count("\n") == 1 and flag in err and "Traceback" not in err


def test_small_dimension_warning_is_one_line(cli):  # noqa: D103
    code, out, err = cli("closed-form", "-K", "6", "-d", "3")
    assert code == 0 and err.startswith("ufm: warning:") and err.count("\n") == 1


def test_diverging_solve_is_one_line(cli):
    code, out, err = cli("solve", "--method", "gd", "--lr", "100")
    assert code == 1 and "smaller learning rate" in err and err.count("\n") == 1


def test_python_dash_m_is_the_same_command():
    proc = subprocess.run([sys.executable, "-m", "ufm", "closed-form", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["logit_gap"] > 0
    proc = subprocess.run([sys.executable, "-m", "ufm", "closed-form", "--alpha", "2"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_unwritable_output_and_broken_records_are_one_line(cli, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, out, err = cli("demo", "--quick", "--out", str(afile))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    (tmp_path / "r" / "records").mkdir(parents=True)
    code, out, err = cli("report", str(tmp_path / "r"))
    assert code == 2 and "not found" in err and err.count("\n") == 1


def test_warning_is_not_printed_with_an_error(cli):
    code, out, err = cli("solve", "-K", "6", "-d", "2", "--method", "gd", "--lr", "100")
    assert code == 1 and err.count("\n") == 1 and "diverged" in err


def test_readme_example_output_is_what_the_command_prints(cli):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"`ufm closed-form -K 10 --alpha 0\.1` prints\n\n((?:    .*\n)+)", readme).group(1)
    expected = "".join(line[4:] + "\n" for line in block.splitlines())
    code, out, _ = cli("closed-form", "-K", "10", "--alpha", "0.1")
    assert code == 0 and out == expected


@pytest.mark.parametrize("argv, message", [
    (["closed-form", "-K", "2.5"], "-K/--num-classes: must be an int in the range [2, inf). Got '2.5' instead."),
    (["closed-form", "--alpha", "x"], "--alpha/--alphas: must be a float in the range [0, 1). Got 'x' instead."),
])
def test_unparsable_values_state_the_valid_range(cli, argv, message):
    code, out, err = cli(*argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_conditioning_json_records(cli):
    code, out, err = cli("conditioning", "-K", "3", "-n", "2", "-d", "3", "--alphas", "0,0.1", "--numeric",
                         "--json")
    assert code == 0 and err == ""  # no third-party notices on stderr
    records = json.loads(out)
    assert len(records) == 2 * 4 * 2  # alphas x definitions x sources
    keys = {"alpha", "definition", "source", "eigenvalues", "multiplicities", "null_dim", "condition_number"}
    for r in records:
        assert keys <= set(r) and r["definition"] in ("logits", "features", "classifier", "full")
        assert r["source"] in ("symbolic", "numeric") and r["eigenvalues"] == sorted(r["eigenvalues"])
        assert len(r["eigenvalues"]) == len(r["multiplicities"])
    full = [r for r in records if r["definition"] == "full"]
    # d = K = 3: the rotation orbit has dimension (K-1)(2d-K)/2 = 3, in both sources
    assert {r["null_dim"] for r in full} == {3}


def test_conditioning_text_states_the_verdict(cli):
    code, out, _ = cli("conditioning", "-K", "4", "--alphas", "0,0.1")
    assert code == 0 and "logits:           lower with LS" in out and "full:             higher with LS" in out
    assert "full, b included: higher with LS" in out


def test_convergence_json_is_deterministic(cli):
    argv = ["convergence", "-K", "3", "-n", "2", "-d", "3", "--seeds", "1", "--eps", "1e-3,1e-6", "--rules",
            "common", "--json"]
    code, out1, _ = cli(*argv)
    code2, out2, _ = cli(*argv)
    assert code == code2 == 0 and out1 == out2
    data = json.loads(out1)
    assert {r["alpha"] for r in data["rows"]} == {0.0, 0.1}
    assert all(r["steps_orbit_1e-06"] is not None for r in data["rows"])


def test_readme_conditioning_verdicts_are_what_the_command_prints(cli):
    import pathlib
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("Label smoothing vs CE (symbolic condition numbers):\n")[1].split("\n\n")[0]
    code, out, _ = cli("conditioning", "-K", "10", "--alphas", "0,0.05,0.1,0.2")
    printed = out.split("Label smoothing vs CE (symbolic condition numbers):\n")[1]
    assert code == 0
    assert [line.strip() for line in block.splitlines()] == [line.strip() for line in printed.splitlines()]
