"""Figures and the report of a DNN experiment, from its raw records alone (``ufm experiment``, ``ufm plot DIR``).

Reads ``experiment.json``, each run's ``config.json`` and ``metrics.jsonl``, and the
experiment's ``validation.json``; never re-runs anything and never edits a record. Curves
are the mean over seeds per alpha, with the range over seeds shaded.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .._io import atomic_write_text  # noqa: E402
from ..dnn.training import read_records  # noqa: E402
from ..dnn.validate import validation_markdown  # noqa: E402

__all__ = ["load_runs", "plot_experiment", "experiment_markdown", "summary_table", "FIGURES"]

FIGURES = ("nc_vs_epoch.png", "nc1_vs_nc2.png", "calibration_vs_alpha.png", "reliability.png",
           "norms_vs_alpha.png", "ufm_predictions.png")


def load_runs(out) -> List[dict]:
    """[{name, alpha, seed, meta, records}] of the experiment folder ``out``, in run order."""
    out = Path(out)
    spec = json.loads((out / "experiment.json").read_text())
    runs = []
    listed = spec.get("runs")  # the experiment's own runs, not every folder left in runs/
    folders = [out / "runs" / n for n in listed] if listed is not None else \
        (sorted((out / "runs").iterdir()) if (out / "runs").is_dir() else [])
    for run in folders:
        if not (run / "config.json").is_file():
            continue
        meta = json.loads((run / "config.json").read_text())
        runs.append({"name": run.name, "alpha": meta["config"]["alpha"], "seed": meta["config"]["seed"],
                     "mode": meta["config"]["mode"], "meta": meta, "records": read_records(run)})
    if not runs:
        raise ValueError(f"{out} holds no runs yet; run `ufm experiment {spec['name']} --out {out}` first")
    return runs


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


def _final(runs, alpha, split, key):
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


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_experiment(out) -> List[Path]:
    """Draw the experiment's figures (:data:`FIGURES`) and write ``report.md``; returns the paths."""
    out = Path(out)
    runs = load_runs(out)
    alphas = sorted({r["alpha"] for r in runs})
    col = _colors(alphas)
    paths = []

    # NC1 / NC2 / NC3 (train) and test error against epochs
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
    paths.append(out / FIGURES[0])
    _save(fig, paths[-1])

    # NC1 against NC2 along training
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, key, title in ((axes[0], "nc2_h", "NC2 of class means"), (axes[1], "nc2_w", "NC2 of classifier")):
        for a in alphas:
            e, nc1, _, _ = _series(runs, a, "train", "nc1")
            _, nc2, _, _ = _series(runs, a, "train", key)
            ax.plot(nc2, nc1, "-o", ms=2, color=col[a], label=_label(a))
            if len(e):
                ax.plot(nc2[-1:], nc1[-1:], "s", color=col[a])
        ax.set_yscale("log")
        ax.set_xlabel(title)
        ax.set_ylabel("NC1")
    axes[0].legend(fontsize=7)
    fig.suptitle("train split, one point per recorded epoch (square: last)", fontsize=9)
    paths.append(out / FIGURES[1])
    _save(fig, paths[-1])

    # calibration against alpha: ECE and adaptive ECE, before and after temperature scaling
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (key, title) in zip(axes[:2], (("ece", "ECE (test, 15 bins)"), ("adaptive_ece", "adaptive ECE (test)"))):
        for suffix, style, name in (("", "-o", "before scaling"), ("_ts", "--s", "after temperature scaling")):
            vals = [_final(runs, a, "test", key + suffix) for a in alphas]
            ax.errorbar(alphas, [v.mean() if len(v) else np.nan for v in vals],
                        yerr=[v.std() if len(v) else 0 for v in vals], fmt=style, ms=4, capsize=3, label=name)
        ax.set_xlabel(r"$\alpha$")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    t = [_final(runs, a, "test", "temperature") for a in alphas]
    axes[2].errorbar(alphas, [v.mean() if len(v) else np.nan for v in t], yerr=[v.std() if len(v) else 0 for v in t],
                     fmt="-o", ms=4, capsize=3)
    axes[2].axhline(1, color="0.6", lw=0.8)
    axes[2].set_xlabel(r"$\alpha$")
    axes[2].set_title("fitted temperature (val split)", fontsize=9)
    paths.append(out / FIGURES[2])
    _save(fig, paths[-1])

    # reliability diagrams (test, last epoch, lowest seed of each alpha)
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
    paths.append(out / FIGURES[3])
    _save(fig, paths[-1])

    # norms and logit statistics against alpha (train, last epoch)
    keys = [("w_norm", r"mean $\|w_k\|$"), ("h_norm", r"mean $\|\mu_k-\mu_G\|$"), ("logit_gap", "logit gap"),
            ("p_true", r"$p_{\mathrm{true}}$")]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.3))
    for ax, (key, title) in zip(axes, keys):
        vals = [_final(runs, a, "train", key) for a in alphas]
        ax.errorbar(alphas, [v.mean() for v in vals], yerr=[v.std() for v in vals], fmt="-o", ms=4, capsize=3)
        ax.set_xlabel(r"$\alpha$")
        ax.set_title(title + " (train, last epoch)", fontsize=9)
    paths.append(out / FIGURES[4])
    _save(fig, paths[-1])

    # UFM predictions against measurements
    validation = json.loads((out / "validation.json").read_text()) if (out / "validation.json").is_file() else {}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    K = runs[0]["meta"]["model"]["num_classes"]
    s = [_final(runs, a, "train", "p_off") - a / K for a in alphas]
    axes[0].errorbar(alphas, [v.mean() for v in s], yerr=[v.std() for v in s], fmt="-o", ms=4, capsize=3,
                     label="measured")
    axes[0].set_xlabel(r"$\alpha$")
    axes[0].set_title(r"$p_{\mathrm{off}} - \alpha/K$ (train, last epoch);" "\nUFM: independent of α", fontsize=9)
    ufm_runs = validation.get("ufm_runs", [])
    for r in ufm_runs:
        for c in r["checks"]:
            e = [p["epoch"] for p in c["curve"]]
            axes[1].plot(e, [np.nan if p["rel_error"] is None else p["rel_error"] for p in c["curve"]],
                         label=f"{Path(r['run']).name}: {c['quantity']}")
    if ufm_runs:
        axes[1].set_yscale("log")
        axes[1].set_xlabel("epoch")
        axes[1].set_title("UFM-style runs: |measured - closed form| / closed form", fontsize=9)
        axes[1].legend(fontsize=6)
    else:
        e_ce = {a: _series(runs, a, "train", "nc1") for a in alphas}
        for a in alphas:
            axes[1].plot(e_ce[a][0], e_ce[a][1], color=col[a], label=_label(a))
        axes[1].set_yscale("log")
        axes[1].set_xlabel("epoch")
        axes[1].set_title("NC1 (train): LS should reach a given NC1 sooner", fontsize=9)
        axes[1].legend(fontsize=7)
    paths.append(out / FIGURES[5])
    _save(fig, paths[-1])

    atomic_write_text(out / "report.md", experiment_markdown(out, runs, validation))
    paths.append(out / "report.md")
    return paths


def summary_table(runs: List[dict]) -> List[str]:
    """Markdown rows: per alpha, the last records (mean ± std over seeds): train and test error,
    train NC1-NC4, test ECE before and after temperature scaling, and the temperature."""
    lines = ["| alpha | train error | test error | NC1 (train) | NC2 means | NC2 W | NC3 | NC4 | test ECE | "
             "test ECE scaled | T |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(a, split, key, fmt=".3g"):
        v = _final(runs, a, split, key)
        if not len(v):
            return "–"
        return f"{v.mean():{fmt}} ± {v.std():.1g}" if len(v) > 1 else f"{v.mean():{fmt}}"

    for a in sorted({r["alpha"] for r in runs}):
        lines.append(f"| {a:g} | {ms(a, 'train', 'error')} | {ms(a, 'test', 'error')} | {ms(a, 'train', 'nc1')} | "
                     f"{ms(a, 'train', 'nc2_h')} | {ms(a, 'train', 'nc2_w')} | {ms(a, 'train', 'nc3')} | "
                     f"{ms(a, 'train', 'nc4')} | {ms(a, 'test', 'ece')} | {ms(a, 'test', 'ece_ts')} | "
                     f"{ms(a, 'test', 'temperature')} |")
    return lines


def experiment_markdown(out, runs: List[dict], validation: Dict) -> str:
    """The experiment's report: the last records per alpha (mean ± std over seeds), the
    UFM checks and the figures."""
    out = Path(out)
    spec = json.loads((out / "experiment.json").read_text())
    alphas = sorted({r["alpha"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    last_epoch = max(rec["epoch"] for r in runs for rec in r["records"])
    lines = [f"# Experiment `{spec['name']}`", "", spec.get("description", ""), "",
             f"{len(runs)} runs (alphas {', '.join(f'{a:g}' for a in alphas)}; seeds {', '.join(map(str, seeds))}), "
             f"last recorded epoch {last_epoch}. Mean ± std over seeds of the last record of each run.", ""]
    lines += summary_table(runs)
    lines += ["", "## UFM predictions against the measurements", ""]
    lines += [validation_markdown(validation) if validation else "(no validation.json yet)", ""]
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in FIGURES] + [""]
    return "\n".join(lines)
