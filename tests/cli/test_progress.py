"""Progress of long work: the solver loop's hook, its rendering (ufm.report.progress) and --quiet.

The hook only reads (a solve is bit-identical with and without it), reports the step and the
largest ||grad f|| of the configurations still running (checked against the trajectory recorded
at every step); the renderer writes on stderr only (stdout is the same with and without
--quiet), a bar when forced, lines when not a terminal, nothing with --quiet.
"""
import io
import json
import re

import pytest
import torch

from ufm.numerics import solve as numerics
from ufm.problem import UFMProblem
from ufm.report import progress as progress_module
from ufm.report.progress import Progress

PROBLEM = UFMProblem(3, 2, 3, 5e-3, 5e-3, 0.0, 0.0)


class _Calls:
    """An on_step hook that keeps every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, step, max_steps, grad_norm, tol):
        self.calls.append((step, max_steps, grad_norm, tol))


@pytest.mark.parametrize("method, options", [("gd", {"lr": 0.5, "tol": 1e-6}), ("lbfgs", {"tol": 1e-10})])
def test_a_solve_is_bit_identical_with_and_without_the_hook(method, options):
    problems = [PROBLEM, PROBLEM.replace(alpha=0.1)]
    plain = numerics.solve(problems, method=method, seeds=[0, 1], device="cpu", **options)
    hooked = numerics.solve(problems, method=method, seeds=[0, 1], device="cpu", on_step=_Calls(), **options)
    for name in ("W", "H", "b", "objective", "grad_norm", "steps"):
        assert torch.equal(getattr(plain, name), getattr(hooked, name)), name
    assert plain.status == hooked.status


def test_the_hook_sees_every_step_and_the_largest_running_grad_norm():
    problems = [PROBLEM, PROBLEM.replace(alpha=0.1), PROBLEM.replace(lambda_w=1e-2)]
    calls, tol = _Calls(), 1e-6
    res = numerics.solve(problems, method="gd", lr=0.5, tol=tol, seeds=[0, 1, 2], device="cpu", record_every=1,
                         on_step=calls)
    steps = int(res.steps.max())
    assert [c[0] for c in calls.calls] == list(range(steps + 1))
    assert all(c[1] == 100000 and c[3] == tol for c in calls.calls)  # gd's default step cap, the tolerance
    g = res.trajectory["grad_norm"]  # (T, B): the norms recorded at every step, independently of the hook
    assert g.shape[0] == steps + 1
    for t, (_, _, seen, _) in enumerate(calls.calls):
        running = g[t] >= tol  # no stall in these few gd steps: a configuration runs until it is below tol
        expected = g[t][running].max() if bool(running.any()) else g[t].max()
        assert seen == float(expected), t
    assert calls.calls[-1][2] == float(res.grad_norm.max()) < tol


def test_parts_restart_the_steps_and_show_as_parts(monkeypatch):
    monkeypatch.setattr(numerics, "PART_BYTES", 1)  # one configuration a part
    stream = io.StringIO()
    with Progress(stream=stream, bar=False, every=0.0) as progress:
        res = numerics.solve([PROBLEM, PROBLEM.replace(alpha=0.2)], tol=1e-10, seeds=[0, 1], device="cpu",
                             on_step=progress.solver())
    text = stream.getvalue()
    assert "solve: step 0/5000" in text and "solve, part 2: step 0/5000" in text
    last = text.splitlines()[-1]
    assert last.startswith(f"solve, part 2: step {int(res.steps[1])}/5000, ||grad f|| {float(res.grad_norm[1]):.2e}")


def test_lines_show_the_step_the_grad_norm_and_the_eta_of_a_geometric_decrease(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    for max_steps, eta in ((1000, "ETA 1.0 s"), (150, "ETA <= 500 ms")):
        stream = io.StringIO()
        with Progress(stream=stream, bar=False, every=0.0) as progress:
            hook = progress.solver()
            for step in range(101):  # 100 steps/s, ||grad f|| divided by 10 every 10 steps
                clock[0] = step / 100
                hook(step, max_steps, 10.0 ** (-step / 10), 1e-20)
            # 100 more steps reach 1e-20 at this rate: 1 s; or the cap, 50 steps away: 0.5 s
            last = stream.getvalue().splitlines()[-1]
        assert last == f"solve: step 100/{max_steps}, ||grad f|| 1.00e-10 (tol 1e-20), 100 steps/s, {eta}"


def test_a_bar_when_forced_and_nothing_off_a_terminal_within_line_every(monkeypatch):
    monkeypatch.setattr(progress_module, "LINE_EVERY", 1e9)  # "within LINE_EVERY" however slow the machine
    stream = io.StringIO()
    with Progress(stream=stream, bar=True) as progress:
        res = numerics.solve(PROBLEM, tol=1e-10, device="cpu", on_step=progress.solver())
    text = stream.getvalue()
    assert text.startswith("\rsolve, step 0/5000, ||grad f|| ") and "%|" in text  # redrawn every 0.1 s, then cleared
    assert text.endswith("\r") and text.splitlines()[-1].strip() == "" and int(res.steps[0]) > 0  # cleared
    stream = io.StringIO()  # not a terminal: lines, the first after LINE_EVERY seconds
    with Progress(stream=stream) as progress:
        assert not progress.bar
        numerics.solve(PROBLEM, tol=1e-10, device="cpu", on_step=progress.solver())
    assert stream.getvalue() == ""
    with Progress(quiet=True, stream=stream) as progress:
        assert progress.solver() is None and progress.counter("x", "items") is None
        progress.line("a stage")
    assert stream.getvalue() == ""


def test_a_counter_counts_done_of_total():
    stream = io.StringIO()
    with Progress(stream=stream, bar=False, every=0.0) as progress:
        hook = progress.counter("conditioning", "numeric spectra")
        for done in range(4):
            hook(done, 3)
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [f"conditioning: {i}/3 numeric spectra" for i in range(4)] + \
        ["conditioning: 3/3 numeric spectra"]  # the last state, again when it ends


def _without_seconds(out: str) -> dict:
    d = json.loads(out)
    d["solver"].pop("seconds")
    return d


@pytest.fixture
def lines_every_call(monkeypatch):
    """Off a terminal (the tests' stderr), a progress line at every call instead of every 10 s."""
    monkeypatch.setattr(progress_module, "LINE_EVERY", 0.0)


def test_solve_progress_on_stderr_and_quiet(cli, lines_every_call):
    argv = ("solve", "-K", "3", "-n", "2", "--device", "cpu", "--json")
    code, out, err = cli(*argv)
    assert code == 0
    d = json.loads(out)["numeric"]
    lines = err.splitlines()
    assert lines[0].startswith("solve: step 0/5000, ||grad f|| ")
    assert lines[-1].startswith(f"solve: step {d['steps']}/5000, ||grad f|| {d['grad_norm']:.2e} (tol 1e-10)")
    assert len(lines) == d["steps"] + 2  # every step, and the last state when the solve ends
    code, quiet_out, quiet_err = cli(*argv, "--quiet")
    assert code == 0 and quiet_err == "" and _without_seconds(quiet_out) == _without_seconds(out)


def test_numeric_conditioning_reports_each_spectrum(cli, lines_every_call):
    argv = ("conditioning", "-K", "3", "-n", "2", "--alphas", "0,0.1", "--definitions", "logits,features",
            "--numeric", "--device", "cpu")
    code, out, err = cli(*argv)
    assert code == 0
    assert "conditioning: solve: step 0/5000" in err
    assert [f"conditioning: {i}/4 numeric spectra" in err for i in range(5)] == [True] * 5
    code, quiet_out, quiet_err = cli(*argv, "--quiet")
    assert code == 0 and quiet_err == "" and quiet_out == out


def test_convergence_progress_and_quiet(cli, lines_every_call):
    argv = ("convergence", "-K", "3", "-n", "2", "-d", "3", "--alphas", "0,0.1", "--seeds", "1", "--rules", "local",
            "--max-steps", "300", "--device", "cpu")
    code, out, err = cli(*argv)
    assert code == 0
    assert "convergence: gradient descent: step 0/300, ||grad f||" in err and "(tol" not in err  # no tolerance
    assert "convergence: gradient descent, part 2: step 300/300" in err  # one batch per local step size
    code, quiet_out, quiet_err = cli(*argv, "--quiet")
    assert code == 0 and quiet_err == "" and quiet_out == out


def test_demo_stage_lines_on_stderr_and_quiet(cli, monkeypatch, tmp_path):
    from ufm.pipelines import demo

    def fake_demo(out, *, quick, force, log):  # the wiring only; tests/pipelines runs the real stages
        log("[verify] running ...")
        log("[verify] done in 1.0 s -> x")
        return tmp_path / "report.md"

    monkeypatch.setattr(demo, "run_demo", fake_demo)
    code, out, err = cli("demo", "--out", str(tmp_path))
    assert code == 0 and err == "[verify] running ...\n[verify] done in 1.0 s -> x\n"
    assert out == f"report: {tmp_path / 'report.md'}\n"
    code, quiet_out, quiet_err = cli("demo", "--out", str(tmp_path), "--quiet")
    assert code == 0 and quiet_err == "" and quiet_out == out


def test_the_numerics_import_no_renderer():
    text = open(numerics.__file__).read()
    assert not re.search(r"^\s*(import|from)\s+(tqdm|ufm\.report)", text, re.M)


def test_sweep_progress_counts_points_and_quiet_silences_it(cli, lines_every_call, tmp_path):
    argv = ("sweep", "--classes", "3,4", "--alphas", "0,0.1", "--what", "solve", "--workers", "0")
    code, out, err = cli(*argv, "--out", tmp_path / "a")
    counts = [line for line in err.splitlines() if line.startswith("sweep: ")]
    assert code == 0 and counts[0] == "sweep: 0/4 points" and counts[-1].startswith("sweep: 4/4 points")
    assert "sweep: 2/4 points" in "\n".join(counts)  # one group of 2 points (K = 3) stored, then the other
    code, quiet_out, quiet_err = cli(*argv, "--out", tmp_path / "b", "--quiet")
    assert code == 0 and quiet_err == ""
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()


def test_verify_progress_and_quiet(cli, lines_every_call):
    argv = ("verify", "--classes", "3", "--dims", "K", "--alphas", "0", "--seeds", "1", "--per-class", "3")
    code, out, err = cli(*argv)
    assert code == 0 and err.splitlines()[0].startswith("verify: solve: step 0/5000, ||grad f|| ")
    code, quiet_out, quiet_err = cli(*argv, "--quiet")
    assert code == 0 and quiet_err == ""
    assert quiet_out.splitlines()[:-1] == out.splitlines()[:-1]  # the last line holds the seconds


def test_solve_from_several_seeds_reports_their_spread(cli):
    code, out, _ = cli("solve", "-K", "3", "-n", "4", "--alpha", "0.1", "--seed", "5", "--seeds", "3", "--json",
                       "--quiet")
    d = json.loads(out)
    assert code == 0 and [r["seed"] for r in d["runs"]] == [5, 6, 7] and d["converged"] == 3
    import numpy as np

    for q, s in d["spread"].items():
        v = np.array([r[q] for r in d["runs"]], dtype=float)
        assert (s["mean"], s["min"], s["max"]) == (v.mean(), v.min(), v.max()) and s["std"] == pytest.approx(v.std())
    # each seed's solve is that seed's own one-seed solve, to the solver's tolerance
    for r in d["runs"]:
        code, one, _ = cli("solve", "-K", "3", "-n", "4", "--alpha", "0.1", "--seed", r["seed"], "--json", "--quiet")
        assert json.loads(one)["numeric"]["logit_gap"] == pytest.approx(r["logit_gap"], rel=1e-8)
    assert d["worst_error"] < 1e-6 and d["spread"]["logit_gap"]["max"] - d["spread"]["logit_gap"]["min"] < 1e-8
    code, text, _ = cli("solve", "-K", "3", "-n", "4", "--alpha", "0.1", "--seeds", "3", "--quiet")
    assert code == 0 and text.startswith("solved from 3 seeds (0..2) with lbfgs")


def test_an_interrupted_demo_says_its_stages_are_kept(cli, monkeypatch, tmp_path):
    import ufm.pipelines.demo as demo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", interrupted)
    code, _, err = cli("demo", "--out", tmp_path / "d")
    assert code == 130 and err == (f"ufm demo: interrupted: the finished stages are kept in {tmp_path / 'd'}/records; "
                                   "rerun the same command to resume (it reuses them)\n")
