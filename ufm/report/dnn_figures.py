"""The figures of a DNN experiment, from its raw records alone (``ufm experiment``, ``ufm plot DIR``).

One function per figure of :data:`FIGURES`, each drawn from the runs that
``ufm.report.experiment.load_runs`` reads (each run's ``config.json`` and ``metrics.jsonl``)
and the experiment's ``validation.json``; never re-runs anything and never edits a record.
Curves are the mean over seeds per alpha, with the range over seeds shaded, except in
``nc1_vs_nc2.png``, which draws every run (one line per seed).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ufm.report.folders import save_figure  # noqa: E402

__all__ = ["FIGURES", "draw_figures", "final_values"]

FIGURES = ("nc_vs_epoch.png", "nc1_vs_nc2.png", "calibration_vs_alpha.png", "reliability.png",
           "norms_vs_alpha.png", "ufm_predictions.png")


def _series(runs, alpha, split, key):
    """(epochs, mean, lo, hi) over the seeds of ``alpha``."""
    per_seed = []
    for r in runs:
        if r["alpha"] == alpha:
            per_seed.append({rec["epoch"]: rec.get(key) for rec in r["records"] if rec["split"] == split})
    epochs = sorted(set.intersection(*(set(s) for s in per_seed))) if per_seed else []
    vals = np.array([[np.nan if s[e] is None else s[e] for e in epochs] for s in per_seed], dtype=float)
    if not epochs:
        return [], np.array([]), np.array([]), np.array([])
    return epochs, np.nanmean(vals, 0), np.nanmin(vals, 0), np.nanmax(vals, 0)


def final_values(runs, alpha, split, key) -> np.ndarray:
    """The last recorded ``key`` of ``split`` in each run of ``alpha`` that has one (one per seed)."""
    vals = []
    for r in runs:
        if r["alpha"] == alpha:
            recs = [rec for rec in r["records"] if rec["split"] == split]
            if recs and recs[-1].get(key) is not None:
                vals.append(recs[-1][key])
    return np.array(vals, dtype=float)


def _label(a):
    return "CE" if a == 0 else f"LS α={a:g}"


def _colors(alphas):
    cmap = plt.get_cmap("viridis")
    return {a: ("tab:red" if a == 0 else cmap(0.15 + 0.7 * i / max(1, len(alphas) - 1))) for i, a in enumerate(alphas)}


def _errorbar(ax, alphas, vals, fmt="-o", **kw):
    """Mean ± std over seeds against alpha."""
    ax.errorbar(alphas, [v.mean() if len(v) else np.nan for v in vals], yerr=[v.std() if len(v) else 0 for v in vals],
                fmt=fmt, ms=4, capsize=3, **kw)


def draw_figures(out, runs: List[dict], validation: dict, formats: Sequence[str] = ("png",)) -> List[Path]:
    """Draw every figure of :data:`FIGURES` into ``out``, in each of ``formats`` (``ufm.report.folders.FORMATS``);
    returns their paths, in that order (each figure's formats together)."""
    out = Path(out)
    alphas = sorted({r["alpha"] for r in runs})
    col = _colors(alphas)
    draw = (_nc_vs_epoch, _nc1_vs_nc2, _calibration_vs_alpha, _reliability, _norms_vs_alpha, _ufm_predictions)
    paths = []
    for name, figure in zip(FIGURES, draw):
        fig = figure(runs, alphas, col, validation)
        paths += save_figure(fig, out / Path(name).stem, formats)
    return paths


def _nc_vs_epoch(runs, alphas, col, validation):
    """NC1 / NC2 / NC3 (train) and test error against epochs."""
    panels = [("train", "nc1", "NC1 (train)", True), ("train", "nc2_h", "NC2 of class means (train)", True),
              ("train", "nc3", "NC3 (train)", True), ("test", "error", "test error", False)]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, (split, key, title, log) in zip(axes, panels):
        for a in alphas:
            e, m, lo, hi = _series(runs, a, split, key)
            ax.plot(e, m, color=col[a], label=_label(a))
            ax.fill_between(e, lo, hi, color=col[a], alpha=0.2, lw=0)
        ax.set_yscale("log" if log else "linear")
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    return fig


def _run_series(run, split, keys):
    """(epochs, one array per key) of the records of ``split`` in one run (null as NaN)."""
    recs = [rec for rec in run["records"] if rec["split"] == split]
    return [rec["epoch"] for rec in recs], [np.array([np.nan if rec.get(k) is None else rec[k] for rec in recs],
                                                     dtype=float) for k in keys]


def _nc1_vs_nc2(runs, alphas, col, validation):
    """NC2 of the class means and of the classifier against NC1 (train), one line per run (seed),
    coloured by alpha; a circle at the first record, a square at the last."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, title in ((axes[0], "nc2_h", "NC2 of class means"), (axes[1], "nc2_w", "NC2 of classifier")):
        for a in alphas:
            for i, r in enumerate(sorted((r for r in runs if r["alpha"] == a), key=lambda r: r["seed"])):
                _, (nc1, nc2) = _run_series(r, "train", ("nc1", key))
                ax.plot(nc1, nc2, "-", lw=1, marker=".", ms=3, color=col[a], label=_label(a) if i == 0 else None)
                if len(nc1):
                    ax.plot(nc1[:1], nc2[:1], "o", ms=4, mfc="none", color=col[a])
                    ax.plot(nc1[-1:], nc2[-1:], "s", ms=4, color=col[a])
        ax.set_xscale("log")
        ax.tick_params(axis="x", which="minor", labelsize=6)
        ax.set_xlabel("NC1 (train)")
        ax.set_ylabel(title + " (train)")
        ax.set_title(f"{title} against NC1", fontsize=9)
    axes[0].legend(fontsize=7)
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in runs}))
    fig.suptitle(f"NC2 against NC1 along training (train split), one line per seed (seeds {seeds}), colour by α; "
                 "circle: first record, square: last", fontsize=9)
    return fig


def _calibration_vs_alpha(runs, alphas, col, validation):
    """ECE and adaptive ECE against alpha, before and after temperature scaling; the temperature."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (key, title) in zip(axes[:2], (("ece", "ECE (test, 15 bins)"), ("adaptive_ece", "adaptive ECE (test)"))):
        for suffix, style, name in (("", "-o", "before scaling"), ("_ts", "--s", "after temperature scaling")):
            _errorbar(ax, alphas, [final_values(runs, a, "test", key + suffix) for a in alphas], style, label=name)
        ax.set_xlabel(r"$\alpha$")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    _errorbar(axes[2], alphas, [final_values(runs, a, "test", "temperature") for a in alphas])
    axes[2].axhline(1, color="0.6", lw=0.8)
    axes[2].set_xlabel(r"$\alpha$")
    axes[2].set_title("fitted temperature (val split)", fontsize=9)
    return fig


def _reliability(runs, alphas, col, validation):
    """Reliability diagrams (test, last epoch, lowest seed of each alpha)."""
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.2 * len(alphas), 3.3), squeeze=False)
    for ax, a in zip(axes[0], alphas):
        r = min((r for r in runs if r["alpha"] == a), key=lambda r: r["seed"])
        last = [rec for rec in r["records"] if rec["split"] == "test"][-1]
        for key, color, name in (("reliability", "tab:blue", "raw"), ("reliability_ts", "tab:orange", "scaled")):
            b = last.get(key)
            if not b:
                continue
            n_bins = len(b["count"])
            centers = (np.arange(n_bins) + 0.5) / n_bins
            acc = np.array([np.nan if v is None else v for v in b["accuracy"]], dtype=float)
            ax.bar(centers, acc, width=1 / n_bins, alpha=0.45, color=color, edgecolor=color,
                   label=f"{name} (ECE {last['ece' if key == 'reliability' else 'ece_ts']:.3f})")
        ax.plot([0, 1], [0, 1], color="0.4", lw=0.8)
        ax.set_xlabel("confidence")
        ax.set_title(f"{_label(a)}, seed {r['seed']}, epoch {last['epoch']}", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    axes[0][0].set_ylabel("accuracy")
    return fig


def _norms_vs_alpha(runs, alphas, col, validation):
    """Norms and logit statistics against alpha (train, last epoch)."""
    keys = [("w_norm", r"mean $\|w_k\|$"), ("h_norm", r"mean $\|\mu_k-\mu_G\|$"), ("logit_gap", "logit gap"),
            ("p_true", r"$p_{\mathrm{true}}$")]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.3))
    for ax, (key, title) in zip(axes, keys):
        _errorbar(ax, alphas, [final_values(runs, a, "train", key) for a in alphas])
        ax.set_xlabel(r"$\alpha$")
        ax.set_title(title + " (train, last epoch)", fontsize=9)
    return fig


def _agreement_check(validation: dict):
    """(check, group number, group count) of the first group's ``p_off - alpha/K`` check; None without one."""
    groups = [g for g in validation.get("groups", []) if any(c["prediction"].startswith("p_off") for c in g["checks"])]
    if not groups:
        return None
    return next(c for c in groups[0]["checks"] if c["prediction"].startswith("p_off")), 1, len(groups)


def _limits(ax, values, pad: float = 0.08, log: bool = False) -> None:
    """y-limits holding every finite value of ``values`` (measured values and the band alike)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and (x > 0 or not log)], dtype=float)
    if not v.size:
        return
    if log:
        ax.set_ylim(v.min() / 2, v.max() * 2)
    else:
        span = (v.max() - v.min()) or abs(v.max()) or 1.0
        ax.set_ylim(v.min() - pad * span, v.max() + pad * span)


def _p_off_panel(ax, runs, alphas, validation) -> None:
    """p_off - alpha/K (mean ± std over seeds) with the check's band: the values its criterion calls equal,
    within AGREE_RTOL of the largest magnitude below the largest value."""
    K = runs[0]["meta"]["model"]["num_classes"]
    vals = [final_values(runs, a, "train", "p_off") - a / K for a in alphas]
    _errorbar(ax, alphas, vals, label="measured (mean ± std over seeds)")
    shown = [x for v in vals if len(v) for x in (v.mean() - v.std(), v.mean() + v.std())]
    found = _agreement_check(validation)
    title = r"$p_{\mathrm{off}} - \alpha/K$ (train, last epoch); UFM: independent of α"
    if found is None:
        title += "\n(no p_off check in validation.json: no band)"
    else:
        check, i, n = found
        rtol = validation["tolerances"]["AGREE_RTOL"]
        m = [float(v) for v in check["measured"].values() if v is not None and np.isfinite(v)]
        if m:
            top, scale = max(m), max(abs(x) for x in m)
            ax.axhline(top, color="0.3", lw=0.8, gid="prediction", label="a constant (the largest value)")
            ax.axhspan(top - rtol * scale, top, color="tab:green", alpha=0.15, gid="band",
                       label=f"agreement band: spread < {rtol:g}")
            shown += [top - rtol * scale, top]
        verdict = "holds" if check["holds"] else "does not hold"
        title += f"\ncheck: {check['criterion']}, spread {_g(check.get('value'))}: {verdict}" + \
                 (f" (group {i} of {n})" if n > 1 else "")
    _limits(ax, shown)
    ax.set_xlabel(r"$\alpha$")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6)


def _g(v) -> str:
    return "nan" if v is None else f"{v:.3g}"


def _ufm_predictions(runs, alphas, col, validation):
    """The UFM's predictions against the measurements, each on an axis holding the prediction's
    tolerance band and the measured values: p_off - alpha/K against alpha (:func:`_p_off_panel`),
    and the UFM-style runs' relative errors against epochs with the tolerance UFM_RTOL (without
    such runs: NC1 against epochs)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    _p_off_panel(axes[0], runs, alphas, validation)
    ufm_runs = validation.get("ufm_runs", [])
    shown = []
    for r in ufm_runs:
        for c in r["checks"]:
            e = [p["epoch"] for p in c["curve"]]
            errors = [np.nan if p["rel_error"] is None else p["rel_error"] for p in c["curve"]]
            axes[1].plot(e, errors, label=f"{Path(r['run']).name}: {c['quantity']}")
            shown += errors
    if ufm_runs:
        rtol = validation["tolerances"]["UFM_RTOL"]
        axes[1].axhline(rtol, color="tab:green", ls="--", lw=1, gid="band", label=f"tolerance {rtol:g}")
        axes[1].set_yscale("log")
        _limits(axes[1], shown + [rtol], log=True)
        axes[1].set_xlabel("epoch")
        axes[1].set_title("UFM-style runs: |measured - closed form| / closed form\n(holds below the tolerance at the "
                          "last epoch)", fontsize=8)
        axes[1].legend(fontsize=6)
    else:
        for a in alphas:
            e, m, _, _ = _series(runs, a, "train", "nc1")
            axes[1].plot(e, m, color=col[a], label=_label(a))
        axes[1].set_yscale("log")
        axes[1].set_xlabel("epoch")
        axes[1].set_title("NC1 (train): LS should reach a given NC1 sooner", fontsize=9)
        axes[1].legend(fontsize=7)
    return fig
