"""Matplotlib figures from the demo's raw records (dicts read from ``records/*.json``)."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ufm.theory.keys import DEFINITIONS  # noqa: E402

__all__ = ["plot_alpha_sweep", "plot_trajectory", "plot_verify", "plot_conditioning", "plot_convergence", "plot_rates"]

_CE_LS = {"CE": "tab:blue", "LS": "tab:orange"}


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_alpha_sweep(record: dict, path) -> None:
    """Closed form (lines) and numerical solutions (markers) against alpha."""
    cfg, curve, pts = record["config"], record["closed_form_curve"], record["numeric"]
    panels = [("logit_gap", r"logit gap $\Delta$"), ("p_true", r"$p_{\mathrm{true}}$"),
              ("w_norm", r"$\|w_k\|$"), ("h_norm", r"$\|h_i\|$")]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.3))
    for ax, (key, label) in zip(axes, panels):
        ax.plot(curve["alpha"], curve[key], "-", color="0.3", label="closed form")
        ax.plot([p["alpha"] for p in pts], [p[key] for p in pts], "o", mfc="none", color="tab:red",
                label=f"numerical ({cfg['method']})")
        a_crit = curve.get("alpha_threshold")
        if a_crit is not None and a_crit < max(curve["alpha"]):
            ax.axvline(a_crit, ls=":", color="0.5", label="threshold")
        ax.set_xlabel(r"$\alpha$")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"K={cfg['num_classes']}, d={cfg['dim']}, n={cfg['per_class']}, "
                 f"$\\lambda_W$={cfg['lambda_w']}, $\\lambda_H$={cfg['lambda_h']}, $\\lambda_b$={cfg['lambda_b']}",
                 fontsize=9)
    _save(fig, path)


def plot_trajectory(record: dict, path) -> None:
    """f - f*, gradient norm and NC1 along gradient descent, CE vs LS, one line per seed."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    for run in record["runs"]:
        color = _CE_LS["CE" if run["alpha"] == 0 else "LS"]
        name = f"{'CE' if run['alpha'] == 0 else 'LS'} (alpha={run['alpha']})"
        steps = run["step"]
        gap = [max(f - run["f_star"], 1e-17) for f in run["objective"]]
        nc1 = [v if v is not None and v > 0 else float("nan") for v in run["nc1"]]
        label = name if run["seed"] == record["config"]["seeds"][0] else None
        axes[0].semilogy(steps, gap, color=color, alpha=0.8, label=label)
        axes[1].semilogy(steps, run["grad_norm"], color=color, alpha=0.8, label=label)
        axes[2].semilogy(steps, nc1, color=color, alpha=0.8, label=label)
    for ax, title in zip(axes, [r"$f - f^\star$", r"$\|\nabla f\|$", "NC1"]):
        ax.set_xlabel("gradient-descent step")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    c = record["config"]
    fig.suptitle(f"GD, lr={c['lr']}, K={c['num_classes']}, d={c['dim']}, n={c['per_class']}, "
                 f"$\\lambda_W$={c['lambda_w']}, $\\lambda_H$={c['lambda_h']}", fontsize=9)
    _save(fig, path)


def plot_verify(record: dict, path) -> None:
    """Histogram of the worst relative error of each verified point."""
    errs = [r["max_error"] for r in record["rows"] if r["max_error"] is not None]
    tol = record["config"]["tol"]
    logs = [math.log10(max(e, 1e-17)) for e in errs]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(logs, bins=30, color="tab:green")
    ax.axvline(math.log10(tol), color="tab:red", ls="--", label=f"tolerance {tol:g}")
    ax.set_xlabel("log10(max error over checked quantities)")
    ax.set_ylabel("points")
    ax.legend(fontsize=8)
    _save(fig, path)




def plot_conditioning(record: dict, path) -> None:
    """Condition number against alpha, one panel per definition, one line per K (symbolic)."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    classes = sorted({s["problem"]["num_classes"] for s in record["spectra"]})
    for ax, dfn in zip(axes, DEFINITIONS):
        for K in classes:
            pts = sorted((s["alpha"], s["condition_number"]) for s in record["spectra"]
                         if s["definition"] == dfn and s["source"] == "symbolic" and s["problem"]["num_classes"] == K)
            ax.plot([a for a, _ in pts], [k if k is not None else float("nan") for _, k in pts], "-o", ms=3,
                    label=f"K={K}")
        ax.set_xlabel(r"$\alpha$")
        ax.set_title(f"{dfn}: condition number")
    axes[0].legend(fontsize=8)
    c = record["config"]
    fig.suptitle(f"d=K, n={c['per_class']}, $\\lambda_W$={c['lambda_w']}, $\\lambda_H$={c['lambda_h']}, "
                 f"$\\lambda_b$={c['lambda_b']} (symbolic; alpha=0 is CE)", fontsize=9)
    _save(fig, path)


def plot_convergence(record: dict, path, rule: str = "local") -> None:
    """||grad f||, NC1 and distance to the minimizer orbit along gradient descent, CE vs LS."""
    tr = record["trajectories"][rule]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    seen = set()
    for key in tr["runs"]:
        alpha = float(key.split(",")[0].split("=")[1])
        name = "CE" if alpha == 0 else "LS"
        label = None if (name, alpha) in seen else f"{name} (alpha={alpha:g})"
        seen.add((name, alpha))
        for ax, q in zip(axes, ("grad_norm", "nc1", "orbit")):
            vals = [v if v is not None and v > 0 else float("nan") for v in tr[q][key]]
            ax.semilogy(tr["step"][key], vals, color=_CE_LS[name], alpha=0.8, label=label)
    for ax, title in zip(axes, [r"$\|\nabla f\|$", "NC1", "distance to the minimizer orbit (relative)"]):
        ax.set_xlabel("gradient-descent step")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    lrs = sorted({r["lr"] for r in record["rows"] if r["rule"] == rule})
    p = record["settings"]["problem"]
    fig.suptitle(f"GD, rule {rule} (lr = {', '.join(f'{x:.4g}' for x in lrs)}), K={p['num_classes']}, "
                 f"d={p['dim']}, n={p['per_class']}, $\\lambda_W$={p['lambda_w']}, $\\lambda_H$={p['lambda_h']}",
                 fontsize=9)
    _save(fig, path)


def plot_rates(record: dict, path) -> None:
    """Measured local rate per run against the predicted rates (full-spectrum and 1 - 1/kappa)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    markers = {"logits": "v", "features": "s", "classifier": "D", "full": "o"}
    preds = {(r["rule"], r["alpha"]): r for r in record["predictions"]}
    lo, hi = 1.0, 0.0
    for row in record["rows"]:
        pr = preds[(row["rule"], row["alpha"])]
        if row["rate_measured"] is None:
            continue
        color = _CE_LS["CE" if row["alpha"] == 0 else "LS"]
        x = pr["rate_predicted_full"]
        ax.plot(x, row["rate_measured"], "o", color=color, ms=7)
        lo, hi = min(lo, x, row["rate_measured"]), max(hi, x, row["rate_measured"])
        for dfn, m in markers.items():
            k = pr.get(f"rate_1-1/kappa_{dfn}")
            if k is not None:
                ax.plot(k, row["rate_measured"], m, mfc="none", color=color, ms=6, alpha=0.6)
                lo = min(lo, k)
    ax.plot([lo, hi], [lo, hi], ":", color="0.5")
    handles = [plt.Line2D([], [], marker="o", ls="", color="0.3", label="max|1 - lr mu| (full spectrum, actual lr)")]
    handles += [plt.Line2D([], [], marker=m, ls="", mfc="none", color="0.3", label=f"1 - 1/kappa ({d})")
                for d, m in markers.items()]
    handles += [plt.Line2D([], [], marker="s", ls="", color=c, label=n) for n, c in _CE_LS.items()]
    ax.legend(handles=handles, fontsize=7)
    ax.set_xlabel("predicted rate per step")
    ax.set_ylabel("measured rate per step")
    _save(fig, path)
