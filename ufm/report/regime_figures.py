"""The regime map of the conditioning claim as a figure: the sign of kappa(alpha) - kappa(0) over (s K, alpha).

One panel per definition and d-regime (d = K - 1, d >= K) at one K and one lambda_W / lambda_H:
blue where label smoothing lowers the condition number against CE, red where it raises it, grey
where it leaves it unchanged, white past the threshold alpha >= 1 - s K (no collapsed branch). The
dashed lines are the crossovers of ``ufm.analysis.regimes.regime_map`` over (0, alpha_max], with
each regime's verdict written above the panel (derivations/conditioning.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from ufm.analysis.regimes import D_REGIMES, MAP_DEFINITIONS, regime_map, verdict_grid  # noqa: E402

__all__ = ["regime_figure"]

_CMAP = ListedColormap(["#4a7fc1", "#bdbdbd", "#d0473c"])  # -1 lower, 0 equal, +1 higher
_SHORT = {"lower": "L", "higher": "H", "mixed": "M", "equal": "="}


def _panel(ax, definition, K, d_regime, ratio, per_class, alpha_max, regimes, sK, alphas):
    signs = verdict_grid(definition, K, d_regime, sK, alphas, ratio, per_class)
    ax.imshow(signs, origin="lower", aspect="auto", cmap=_CMAP, vmin=-1, vmax=1, interpolation="nearest",
              extent=(0, 1, 0, alphas[-1]))
    ax.axhline(alpha_max, color="k", lw=0.6)
    mine = [r for r in regimes if r["definition"] == definition and r["d_regime"] == d_regime]
    for r in mine:
        if r["sK_from"] > 0:
            ax.axvline(r["sK_from"], color="k", ls="--", lw=0.8)
        mid = (r["sK_from"] + r["sK_to"]) / 2
        ax.text(mid, alphas[-1] * 1.01, _SHORT[r["verdict"]], ha="center", va="bottom", fontsize=7)
    where = "d = K-1" if d_regime == "K-1" else "d >= K"
    ax.set_title(f"{definition}, {where}", fontsize=9, pad=12)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, alphas[-1])


def regime_figure(out, K: int = 10, lambda_ratio: float = 1.0, per_class: int = 10, alpha_max: float = 0.3,
                  definitions: Sequence[str] = MAP_DEFINITIONS, alpha_top: Optional[float] = None,
                  resolution: int = 200) -> Path:
    """Draw the regime map at one K and lambda_W / lambda_H (module docstring) and save it as PNG.

    Args:
        out: the PNG's path (its folder is created).
        K, lambda_ratio, per_class: what is fixed (n enters ``full, b included`` only).
        alpha_max: the alpha range the map's verdicts and crossovers are taken over (a line marks it).
        alpha_top: the largest alpha drawn (default min(1, 1.5 alpha_max)).
        resolution: points along s K (and along alpha, a third as many plus one).

    Returns:
        The path of the PNG.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    regimes = regime_map(classes=[K], alpha_max=alpha_max, lambda_ratios=[lambda_ratio],
                         definitions=list(definitions), per_class=per_class)
    sK = (np.arange(resolution) + 0.5) / resolution
    alphas = np.linspace(0, min(1.0, 1.5 * alpha_max) if alpha_top is None else alpha_top,
                         resolution // 3 + 1)[1:]
    fig, axes = plt.subplots(len(definitions), len(D_REGIMES), figsize=(8.0, 2.3 * len(definitions)),
                             squeeze=False, sharex=True)
    for row, definition in zip(axes, definitions):
        for ax, d_regime in zip(row, D_REGIMES):
            _panel(ax, definition, K, d_regime, lambda_ratio, per_class, alpha_max, regimes, sK, alphas)
        row[0].set_ylabel("alpha")
    for ax in axes[-1]:
        ax.set_xlabel("s K,  s = sqrt(n lambda_W lambda_H)")
    fig.suptitle(f"sign of kappa(alpha) - kappa(0): K = {K}, lambda_W/lambda_H = {lambda_ratio:g}, n = {per_class} "
                 "(n enters 'full, b included' only)\nblue: LS lower, red: LS higher, grey: equal, white: past the "
                 f"threshold alpha >= 1 - s K\ndashed: the map's crossovers over alpha in (0, {alpha_max:g}] (solid "
                 "line); L, H, M, =: its verdicts lower, higher, mixed, equal", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
