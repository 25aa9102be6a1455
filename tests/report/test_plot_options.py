"""`ufm plot DIR` options: --select, --facet, --logy, --format; titles that say what is fixed and
what was left out; trivial points and the threshold; the agreement figure's axis.

The sweeps are made through the API (`run_sweep`) or the command line, and the expected values
are read back from the SQLite file with sqlite3 and json directly, not through the figure code.
"""
import json
import math
import sqlite3

import numpy as np
import pytest

from ufm.report import dnn_figures
from ufm.report.folders import y_scale
from ufm.report.sweep_figures import Selection, plot_sweep, sweep_figures, sweep_title
from ufm.sweep import SweepSpec, run_sweep

WHAT = ["closed-form", "conditioning"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """K in {3, 4}, d in {K-1, K}, alpha in {0, 0.05, 0.1}: no point past the threshold."""
    out = tmp_path_factory.mktemp("small")
    run_sweep(SweepSpec(alphas=[0.0, 0.05, 0.1], classes=[3, 4], dims=["K-1", "K"], what=WHAT), out, workers=0)
    return out


@pytest.fixture(scope="module")
def trivial(tmp_path_factory):
    """lambda_W = lambda_H = 0.05, n in {10, 20}: the larger alphas are past the threshold."""
    out = tmp_path_factory.mktemp("trivial")
    run_sweep(SweepSpec(alphas=[0.0, 0.2, 0.4, 0.6], classes=[3, 4], dims=["K-1", "K"], per_class=[10, 20],
                        lambda_w=[0.05], lambda_h=[0.05], what=WHAT), out, workers=0)
    return out


def _raw(out):
    """Every stored point as (config, result), read with sqlite3 and json only."""
    con = sqlite3.connect(str(out / "sweep.sqlite"))
    rows = [(json.loads(c), json.loads(r)) for c, r in con.execute("SELECT config, result FROM points")]
    con.close()
    return rows


def _value(out, key, **config):
    """The stored ``key`` at the point matching ``config`` (exactly one)."""
    hits = [r[key] for c, r in _raw(out) if all(c[k] == v for k, v in config.items())]
    assert len(hits) == 1, (config, hits)
    return hits[0]


def _curve(ax, K):
    """The (alphas, values) of the solid line of K in a panel."""
    line = next(ln for ln in ax.get_lines() if ln.get_label() == f"K={K}")
    return list(line.get_xdata()), list(line.get_ydata())


def _close(figs):
    for fig in figs.values():
        dnn_figures.plt.close(fig)


def test_every_d_gets_its_own_row_of_panels_by_default(small):
    figs = sweep_figures(small)
    assert set(figs) == {"fig_sweep_closed_form", "fig_sweep_kappa", "fig_sweep_heatmap"}  # no convergence data
    fig = figs["fig_sweep_kappa"]
    assert len(fig.axes) == 2 * 5  # rows d = K-1, d = K; five definitions
    title = fig._suptitle.get_text()
    assert "fixed: n=10" in title and "seed 0" in title and "one row of panels per d" in title
    assert "nothing left out" in title
    for row, (d_label, offset) in enumerate((("K-1", -1), ("K", 0))):
        ax = fig.axes[row * 5 + 1]  # kappa_features
        assert ax.get_title() == f"features, d={d_label}"
        for K in (3, 4):
            x, y = _curve(ax, K)
            assert x == [0.0, 0.05, 0.1]
            expected = [_value(small, "kappa_features", num_classes=K, dim=K + offset, alpha=a) for a in x]
            np.testing.assert_allclose(y, expected, rtol=0, atol=0)
    # kappa_features depends on d: the d = K row differs from the d = K-1 row at alpha = 0.1
    assert _curve(fig.axes[1], 3)[1][-1] != _curve(fig.axes[6], 3)[1][-1]
    _close(figs)


def test_select_keeps_the_selected_points_and_the_title_says_so(small):
    figs = sweep_figures(small, select={"d": ["K-1"]})
    fig = figs["fig_sweep_closed_form"]
    assert len(fig.axes) == 5  # one row: d is fixed by the selection
    title = fig._suptitle.get_text()
    assert "fixed: d=K-1, n=10" in title and "nothing left out" in title
    x, y = _curve(fig.axes[0], 4)
    assert y == [_value(small, "cf_logit_gap", num_classes=4, dim=3, alpha=a) for a in x]
    _close(figs)
    figs = sweep_figures(small, select=Selection().parse("d=3,K=3,4,alpha=0,0.1"))  # d = 3: K = 3 (d=K), K = 4 (d=K-1)
    fig = figs["fig_sweep_closed_form"]
    assert [ax.get_title() for ax in fig.axes[::5]] == [r"logit gap $\Delta^\star$, d=K-1",
                                                         r"logit gap $\Delta^\star$, d=K"]
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["K=4"]
    assert [ln.get_label() for ln in fig.axes[5].get_lines()] == ["K=3"]
    assert _curve(fig.axes[0], 4)[0] == [0.0, 0.1]
    _close(figs)


def test_the_selection_word_parses_keys_values_and_expressions():
    assert Selection().parse("d=K-1,n=10") == {"d": ["K-1"], "n": [10]}
    assert Selection().parse("d=K-1,K,2K,4,lambda_w=5e-3") == {"d": ["K-1", "K", "2K", 4], "lambda_w": [0.005]}
    for bad in ("x=1", "n", "d=K*", "n=", "alpha=nan", "=3", "d=1.5"):
        with pytest.raises(ValueError):
            Selection().parse(bad)


def test_what_is_left_out_is_named_and_facet_draws_each_value(trivial):
    figs = sweep_figures(trivial)
    title = figs["fig_sweep_kappa"]._suptitle.get_text()
    assert "fixed: n=10" in title and "left out: n=20" in title
    _close(figs)
    figs = sweep_figures(trivial, facet="n")
    fig = figs["fig_sweep_closed_form"]
    assert [ax.get_title() for ax in fig.axes[::5]] == [r"logit gap $\Delta^\star$, n=10",
                                                         r"logit gap $\Delta^\star$, n=20"]
    title = fig._suptitle.get_text()
    assert "fixed: d=K-1" in title and "one row of panels per n" in title and "left out: d=K" in title
    x, y = _curve(fig.axes[5], 3)  # n = 20, d = K-1; NaN (a gap in the line) past the threshold
    config = dict(num_classes=3, dim=2, per_class=20)
    expected = [np.nan if _value(trivial, "trivial", alpha=a, **config) else
                _value(trivial, "cf_logit_gap", alpha=a, **config) for a in x]
    np.testing.assert_array_equal(y, expected)
    assert np.isnan(expected).sum() == 2
    _close(figs)
    assert sweep_title({"n": "10", "seed": "0"}, {"d": ["K", "2K"], "seed": ["1"]}, None).endswith(
        "left out: d=K, 2K; seeds=1 (select or facet to draw them)")


def test_trivial_points_stand_apart_and_the_threshold_is_marked(trivial):
    figs = sweep_figures(trivial, select={"d": "K", "n": 10})
    ax = figs["fig_sweep_closed_form"].axes[0]
    n, lam = 10, 0.05
    for K in (3, 4):
        flags = {a: _value(trivial, "trivial", num_classes=K, dim=K, per_class=n, alpha=a) for a in (0, .2, .4, .6)}
        # independent reference (tests/problems.py, Zhu et al.): s_crit = (1 - alpha)/K = sqrt(n lambda_W lambda_H)
        thr = 1 - K * math.sqrt(n * lam * lam)
        assert [a for a, t in flags.items() if t] == [a for a in flags if a >= thr] != []
        x, y = _curve(ax, K)
        assert all(np.isnan(v) == flags[a] for a, v in zip(x, y))  # the solid line skips trivial points
        color = next(ln for ln in ax.get_lines() if ln.get_label() == f"K={K}").get_color()
        crosses = [ln for ln in ax.get_lines() if ln.get_gid() == "trivial" and ln.get_color() == color]
        assert len(crosses) == 1 and crosses[0].get_linestyle() == "None" and crosses[0].get_marker() == "x"
        assert list(crosses[0].get_xdata()) == [a for a, t in flags.items() if t]
        np.testing.assert_array_equal(crosses[0].get_ydata(), 0.0)  # logit gap 0 at W = H = 0
        vline = [ln for ln in ax.get_lines() if ln.get_gid() == "threshold" and ln.get_color() == color]
        assert len(vline) == 1 and vline[0].get_xdata()[0] == pytest.approx(thr, abs=1e-12)
    _close(figs)


def test_logy_auto_follows_the_span_of_each_panel_and_on_off_force_it(trivial):
    sel = {"d": "K", "n": 10}
    spans = {}
    for key in ("kappa_logits", "kappa_features", "kappa_classifier", "kappa_full", "kappa_full_with_bias"):
        v = [r[key] for c, r in _raw(trivial) if c["dim"] == c["num_classes"] and c["per_class"] == 10]
        spans[key] = max(v) / min(v)
    expected = ["log" if s > 10 else "linear" for s in spans.values()]
    assert "log" in expected and "linear" in expected  # the case of the issue: one panel spans over a decade
    figs = sweep_figures(trivial, select=sel)
    assert [ax.get_yscale() for ax in figs["fig_sweep_kappa"].axes] == expected
    _close(figs)
    figs = sweep_figures(trivial, select=sel, logy="off")
    assert {ax.get_yscale() for f in figs.values() for ax in f.axes if ax.get_label() != "<colorbar>"} == {"linear"}
    _close(figs)
    figs = sweep_figures(trivial, select=sel, logy="on")
    assert [ax.get_yscale() for ax in figs["fig_sweep_kappa"].axes] == ["log"] * 5
    # the logit gap is 0 past the threshold: a symmetric log axis keeps those points in view
    assert figs["fig_sweep_closed_form"].axes[0].get_yscale() == "symlog"
    _close(figs)


def test_y_scale_rule():
    assert y_scale([1.0, 10.5]) == "log" and y_scale([1.0, 10.0]) == "linear"  # more than a decade
    assert y_scale([0.0, 100.0]) == "linear" and y_scale([-1.0, 100.0], "on") == "symlog"
    assert y_scale([1.0, 2.0], "on") == "log" and y_scale([1.0, 1e6], "off") == "linear"
    assert y_scale([float("nan"), 1.0, 20.0]) == "log" and y_scale([]) == "linear"


def test_formats_write_files_of_their_type(small):
    paths = plot_sweep(small, select={"d": "K"}, formats=["png", "pdf", "svg"])
    names = sorted(p.name for p in paths)
    assert names == sorted(f"fig_sweep_{f}.{e}" for f in ("closed_form", "kappa", "heatmap")
                           for e in ("png", "pdf", "svg"))
    for p in paths:
        head = p.read_bytes()[:512]
        if p.suffix == ".png":
            assert head.startswith(b"\x89PNG\r\n\x1a\n")
        elif p.suffix == ".pdf":
            assert head.startswith(b"%PDF")
        else:
            assert b"<svg" in head


def test_cli_plot_takes_the_options(cli, tmp_path):
    out = tmp_path / "s"
    code, _, _ = cli("sweep", "--out", out, "--classes", "3,4", "--dims", "K-1,K", "--alphas", "0,0.05,0.1",
                     "--workers", "0")
    assert code == 0
    code, stdout, _ = cli("plot", out, "--select", "d=K-1,n=10", "--logy", "off", "--format", "pdf,svg")
    assert code == 0
    assert sorted(line.rsplit("/", 1)[1] for line in stdout.split()) == [
        "fig_sweep_closed_form.pdf", "fig_sweep_closed_form.svg", "fig_sweep_heatmap.pdf", "fig_sweep_heatmap.svg"]
    assert (out / "fig_sweep_closed_form.pdf").read_bytes().startswith(b"%PDF")
    code, stdout, _ = cli("plot", out, "--facet", "d")
    assert code == 0 and "fig_sweep_closed_form.png" in stdout


@pytest.mark.parametrize("argv, message", [
    (["--select", "x=1"], "argument --select: must be comma-separated KEY=VALUE"),
    (["--select", "d=K+5"], "--select must be a value of d present in the sweep (K-1, K). Got 'd=K+5' instead."),
    (["--select", "n=30"], "--select must be a value of n present in the sweep (10). Got 'n=30' instead."),
    (["--select", "alpha=0.2"], "--select must be a value of alpha present in the sweep (0, 0.05, 0.1)."),
    (["--select", "d=2,K=4"], "--select must be values that some point takes together. Got 'd=2,K=4' instead."),
    (["--facet", "K"], "--facet must be a str among"),
    (["--logy", "maybe"], "--logy must be a str among {'auto', 'off', 'on'}. Got 'maybe' instead."),
    (["--format", "png,gif"], "--format must be comma-separated names among png, pdf, svg."),
])
def test_cli_bad_options_are_one_line_exit_2(cli, small, argv, message):
    code, _, err = cli("plot", small, *argv)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_sweep_options_on_an_experiment_folder_are_one_line(cli, tmp_path):
    (tmp_path / "experiment.json").write_text("{}")
    code, _, err = cli("plot", tmp_path, "--select", "n=10")
    assert code == 2 and "applies to a sweep's figures" in err and err.count("\n") == 1


def _runs(K, p_off_by_alpha):
    """Hand-written runs: the last train record of each (alpha, seed) holds the given p_off."""
    runs = []
    for a, values in p_off_by_alpha.items():
        for seed, p in enumerate(values):
            records = [{"epoch": 0, "split": "train", "p_off": 0.5, "nc1": 1.0},
                       {"epoch": 1, "split": "train", "p_off": p, "nc1": 0.5}]
            runs.append({"alpha": a, "seed": seed, "meta": {"model": {"num_classes": K}}, "records": records})
    return runs


def test_agreement_figure_shows_the_band_and_the_measurements_on_one_axis():
    K, rtol = 10, 0.25
    p_off = {0.0: [0.0318, 0.0320], 0.05: [0.0371, 0.0369], 0.1: [0.0425, 0.0427]}
    excess = {a: float(np.mean(v)) - a / K for a, v in p_off.items()}  # 0.0319, 0.032, 0.0326
    spread = (max(excess.values()) - min(excess.values())) / max(abs(v) for v in excess.values())
    curve = [{"epoch": e, "rel_error": r} for e, r in ((0, 0.9), (1, 0.2), (2, 0.01))]
    validation = {"tolerances": {"AGREE_RTOL": rtol, "UFM_RTOL": 0.05},
                  "groups": [{"checks": [{"prediction": "p_off - alpha/K agrees across alpha", "measured": excess,
                                          "value": spread, "criterion": f"relative spread < {rtol}",
                                          "holds": spread < rtol}]}],
                  "ufm_runs": [{"run": "u", "checks": [{"quantity": "w_norm", "curve": curve}]}]}
    runs = _runs(K, p_off)
    alphas = sorted(p_off)
    fig = dnn_figures._ufm_predictions(runs, alphas, dnn_figures._colors(alphas), validation)
    left, right = fig.axes[0], fig.axes[1]
    lo, hi = left.get_ylim()
    top = max(excess.values())
    band = (top - rtol * top, top)  # every value within rtol of the largest: what the check calls equal
    measured = [float(np.mean(v)) - a / K + s * float(np.std(v)) for a, v in p_off.items() for s in (-1, 1)]
    assert lo <= min(band[0], *measured) and hi >= max(band[1], *measured)
    assert hi - lo >= rtol * top  # not zoomed in on the measurements alone
    span = next(p for p in left.patches if p.get_gid() == "band")
    ys = span.get_transform().transform(span.get_path().vertices)[:, 1]
    y0, y1 = left.transData.inverted().transform([[0, ys.min()], [0, ys.max()]])[:, 1]
    assert (y0, y1) == pytest.approx(band, rel=1e-9)
    assert "holds" in left.get_title() and f"{spread:.3g}" in left.get_title()
    lo, hi = right.get_ylim()
    assert right.get_yscale() == "log" and lo <= 0.01 and hi >= 0.9
    tol = [ln for ln in right.get_lines() if ln.get_gid() == "band"]
    assert len(tol) == 1 and tol[0].get_ydata()[0] == 0.05 and lo <= 0.05 <= hi
    dnn_figures.plt.close(fig)
    fig = dnn_figures._ufm_predictions(runs, alphas, dnn_figures._colors(alphas), {})
    assert "no band" in fig.axes[0].get_title()
    dnn_figures.plt.close(fig)


def test_the_api_checks_its_options(small):
    from ufm._core.validation import InvalidParameterError
    from ufm.report.folders import plot_folder

    for kwargs, name in (({"logy": "maybe"}, "logy"), ({"facet": "K"}, "facet"), ({"formats": ["gif"]}, "formats"),
                         ({"select": {"x": [1]}}, "select"), ({"select": {"d": [1.5]}}, "select")):
        with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of plot_sweep") as e:
            plot_sweep(small, **kwargs)
        assert e.value.param == name
    with pytest.raises(InvalidParameterError, match="The 'formats' parameter of plot_folder"):
        plot_folder(small, formats=["jpg"])
    with pytest.raises(InvalidParameterError, match="selects no point with K=5: K takes the values 3, 4"):
        plot_sweep(small, select={"K": 5})


def test_heatmap_cells_sit_on_unevenly_spaced_alphas_and_an_extended_grid_draws(cli, tmp_path):
    from ufm.report.sweep_figures import _cell_edges, sweep_figures

    assert _cell_edges([0.0, 0.05, 0.1, 0.2, 0.3]).tolist() == pytest.approx([-0.025, 0.025, 0.075, 0.15, 0.25, 0.35])
    out = tmp_path / "sw"
    assert cli("sweep", "--out", out, "--classes", "3,5", "--alphas", "0,0.1", "--dims", "K", "--quiet")[0] == 0
    assert cli("sweep", "--out", out, "--classes", "3,5", "--alphas", "0.2", "--dims", "2K", "--extend",
               "--quiet")[0] == 0
    code, stdout, err = cli("plot", out)  # the d = 2K row has one alpha
    assert code == 0 and "fig_sweep_heatmap.png" in stdout and "Traceback" not in err
    mesh = [c for ax in sweep_figures(out)["fig_sweep_heatmap"].axes for c in ax.collections
            if type(c).__name__ == "QuadMesh"][0]
    xs = sorted(set(np.round(mesh.get_coordinates()[0, :, 0], 12)))
    assert xs == pytest.approx([-0.05, 0.05, 0.15])  # cells centred on alpha = 0 and 0.1


def test_a_run_without_records_is_one_line_and_writes_nothing(cli, tmp_path):
    import torch

    import ufm

    x, y = torch.randn(12, 4), torch.arange(12) % 3
    ufm.Tracker(torch.nn.Linear(4, 3), tmp_path / "run", train=(x, y)).close()  # no record yet
    code, _, err = cli("plot", tmp_path / "run", "--out", tmp_path / "figs")
    assert code == 2 and "holds no records yet" in err and err.count("\n") == 1
    assert not (tmp_path / "figs").exists()
