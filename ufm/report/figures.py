"""Matplotlib figures from the demo's raw records (dicts read from ``records/*.json``)."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_alpha_sweep", "plot_trajectory", "plot_verify"]

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
