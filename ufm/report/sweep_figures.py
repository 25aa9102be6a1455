"""Standard figures of a sweep, from its store alone (``ufm plot DIR``).

Lines are drawn per class count K over alpha, for one setting of the other parameters (the
most frequent (n, lambda_W, lambda_H, lambda_b) with the smallest d per K, seed 0); heatmaps
are over (alpha, K) for that setting. Figures are written into the sweep's folder.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ufm.records.schema import closed_form_column, convergence_steps_column, kappa_column  # noqa: E402
from ufm.records.store import SweepStore  # noqa: E402
from ufm.theory.keys import DEFINITIONS  # noqa: E402

__all__ = ["plot_sweep"]

_CF = [(closed_form_column(q), label) for q, label in (
    ("logit_gap", r"logit gap $\Delta^\star$"), ("p_true", r"$p_{\mathrm{true}}$"), ("w_norm", r"$\|w_k\|$"),
    ("h_norm", r"$\|h_i\|$"), ("objective", r"$f^\star$"))]
_KAPPA = [(kappa_column(d), d) for d in DEFINITIONS] + [(kappa_column("full", with_bias=True), "full, b included")]
#: the convergence tolerance the steps figure shows
_STEPS_EPS = 1e-6
_STEPS = [(convergence_steps_column(q, _STEPS_EPS), f"steps to {name} < {_STEPS_EPS:g}")
          for q, name in (("nc1", "NC1"), ("orbit", "orbit"))]


def _setting(rows: List[dict]) -> List[dict]:
    """The rows of the most frequent (n, lambdas) setting, seed 0, smallest d per K."""
    c = Counter((r["config"]["per_class"], r["config"]["lambda_w"], r["config"]["lambda_h"], r["config"]["lambda_b"])
                for r in rows)
    n, lw, lh, lb = c.most_common(1)[0][0]
    sel = [r for r in rows if (r["config"]["per_class"], r["config"]["lambda_w"], r["config"]["lambda_h"],
                               r["config"]["lambda_b"]) == (n, lw, lh, lb) and r["config"]["seed"] == 0]
    dmin: Dict[int, int] = {}
    for r in sel:
        K, d = r["config"]["num_classes"], r["config"]["dim"]
        dmin[K] = min(d, dmin.get(K, d))
    return [r for r in sel if r["config"]["dim"] == dmin[r["config"]["num_classes"]]]


def _lines(rows, panels, path, title, max_lines: int = 8) -> bool:
    panels = [(k, label) for k, label in panels if any(r["result"].get(k) is not None for r in rows)]
    if not panels:
        return False
    Ks = sorted({r["config"]["num_classes"] for r in rows})
    if len(Ks) > max_lines:  # evenly spaced subset
        Ks = [Ks[int(i)] for i in np.linspace(0, len(Ks) - 1, max_lines)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.3), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for K in Ks:
            pts = sorted((r["config"]["alpha"], r["result"].get(key)) for r in rows if r["config"]["num_classes"] == K)
            ax.plot([a for a, _ in pts], [np.nan if v is None else v for _, v in pts], "-o", ms=3, label=f"K={K}")
        ax.set_xlabel(r"$\alpha$")
        ax.set_title(label, fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _heatmaps(rows, keys, path, title) -> bool:
    keys = [(k, label) for k, label in keys if any(r["result"].get(k) is not None for r in rows)]
    alphas = sorted({r["config"]["alpha"] for r in rows})
    Ks = sorted({r["config"]["num_classes"] for r in rows})
    if not keys or len(alphas) < 2 or len(Ks) < 2:
        return False
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], keys):
        grid = np.full((len(Ks), len(alphas)), np.nan)
        for r in rows:
            v = r["result"].get(key)
            if v is not None:
                grid[Ks.index(r["config"]["num_classes"]), alphas.index(r["config"]["alpha"])] = v
        half = (alphas[-1] - alphas[0]) / (len(alphas) - 1) / 2  # cells centred on the alphas (evenly spaced)
        im = ax.imshow(grid, aspect="auto", origin="lower", interpolation="nearest",
                       extent=(alphas[0] - half, alphas[-1] + half, 0, len(Ks)))
        ax.set_yticks(np.arange(len(Ks)) + 0.5)
        ax.set_yticklabels([str(K) for K in Ks], fontsize=6 if len(Ks) > 12 else 8)
        if len(Ks) > 20:
            for lab in ax.get_yticklabels()[1::2]:
                lab.set_visible(False)
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel("K")
        ax.set_title(label, fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_sweep(out) -> List[Path]:
    """Write the sweep's figures into ``out`` from ``out/sweep.sqlite``; returns their paths."""
    out = Path(out)
    path = out / "sweep.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no sweep has been run in {out}")
    with SweepStore(path) as store:
        rows = [r for r in store.rows() if r["status"] == "ok"]
    if not rows:
        raise ValueError(f"{path} holds no finished point")
    sel = _setting(rows)
    c = sel[0]["config"]
    title = (f"n={c['per_class']}, d=smallest per K, $\\lambda_W$={c['lambda_w']}, $\\lambda_H$={c['lambda_h']}, "
             f"$\\lambda_b$={c['lambda_b']}, seed 0 (alpha = 0 is CE)")
    made = []
    for name, panels in (("fig_sweep_closed_form.png", _CF), ("fig_sweep_kappa.png", _KAPPA),
                         ("fig_sweep_steps.png", _STEPS)):
        if _lines(sel, panels, out / name, title):
            made.append(out / name)
    if _heatmaps(sel, [(closed_form_column("logit_gap"), "logit gap"), (kappa_column("full"), "kappa (full)"),
                       (kappa_column("logits"), "kappa (logits)")], out / "fig_sweep_heatmap.png", title):
        made.append(out / "fig_sweep_heatmap.png")
    return made
