"""The experiment figures drawn from hand-written records."""
import numpy as np

from ufm.report import dnn_figures


def _run(alpha, seed, nc1, nc2_h, nc2_w):
    records = [{"epoch": e, "split": s, "nc1": a if s == "train" else 99.0, "nc2_h": b, "nc2_w": c}
               for e, (a, b, c) in enumerate(zip(nc1, nc2_h, nc2_w)) for s in ("train", "test")]
    return {"name": f"alpha={alpha}-seed={seed}", "alpha": alpha, "seed": seed, "records": records}


def test_nc1_vs_nc2_draws_nc2_against_nc1_one_line_per_seed():
    runs = [_run(0.0, 0, (5.0, 1.0, 0.5), (0.9, 0.6, 0.5), (0.8, 0.7, 0.6)),
            _run(0.0, 1, (4.0, 2.0, 0.4), (0.9, 0.5, 0.4), (0.8, 0.6, 0.5)),
            _run(0.1, 0, (5.0, 0.3, None), (0.9, 0.4, 0.3), (0.8, 0.5, 0.4)),
            _run(0.1, 1, (6.0, 0.2, 0.1), (0.9, 0.3, 0.2), (0.8, 0.4, 0.3))]
    alphas = [0.0, 0.1]
    col = dnn_figures._colors(alphas)
    fig = dnn_figures._nc1_vs_nc2(runs, alphas, col, {})
    axes = fig.axes
    assert len(axes) == 2 and "one line per seed" in fig._suptitle.get_text()
    for ax, key in zip(axes, ("nc2_h", "nc2_w")):
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "NC1 (train)" and "against NC1" in ax.get_title()
        curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]  # one per run, markers apart
        assert len(curves) == 4
        for line, r in zip(curves, runs):  # NC1 of the train split on x, NC2 on y, null as NaN
            train = [rec for rec in r["records"] if rec["split"] == "train"]
            x = [np.nan if rec["nc1"] is None else rec["nc1"] for rec in train]
            np.testing.assert_array_equal(line.get_xdata(), x)
            np.testing.assert_array_equal(line.get_ydata(), [rec[key] for rec in train])
            assert line.get_color() == col[r["alpha"]]
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["CE", "LS α=0.1"]  # one entry per alpha
    dnn_figures.plt.close(fig)
