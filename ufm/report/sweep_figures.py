"""Standard figures of a sweep, from its store alone (``ufm plot DIR``).

Each line figure draws quantities against alpha, one line per class count K; heatmaps are over
(alpha, K). ``select`` ({key: values}, keys :data:`SELECT_KEYS`) keeps the points taking those
values; ``facet`` (:data:`FACETS`; by default d, when the selected points hold more than one d)
draws one row of panels per value. Any other parameter that still holds several values is fixed
at its most frequent setting, seed at the smallest, and the figure's title states what is fixed and
exactly what was left out (:func:`sweep_title`): nothing is dropped without a word. d is named as
the sweep's spec wrote it (``K-1``, ``K``, ``2K``, an int) where the store records the spec.

Drawn, not decided: points past the threshold are those the store records as ``trivial``
(drawn as crosses, never joined to the collapsed points); each K's threshold alpha is the theory's
(``ufm.theory.closed_form.alpha_threshold``), a dotted vertical line where it falls inside the
plotted alphas. The y-scale of each panel follows ``logy`` (``ufm.report.folders.y_scale``).
"""
from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ufm._core.io import writable_folder  # noqa: E402
from ufm._core.validation import InvalidParameterError, ListOf, Options, OrNone, validate_params  # noqa: E402
from ufm.records.schema import closed_form_column, convergence_steps_column, dim_of, kappa_column  # noqa: E402
from ufm.records.store import SweepStore  # noqa: E402
from ufm.report.folders import FORMATS, LOGY, save_figure, y_scale  # noqa: E402
from ufm.theory.keys import DEFINITIONS  # noqa: E402

__all__ = ["plot_sweep", "sweep_figures", "sweep_layout", "sweep_title", "Selection", "SELECT_KEYS", "FACETS"]

#: a selection's keys -> the configuration column each one selects on
SELECT_KEYS = {"d": "dim", "K": "num_classes", "n": "per_class", "lambda_w": "lambda_w", "lambda_h": "lambda_h",
               "lambda_b": "lambda_b", "alpha": "alpha"}
#: the parameters a figure can draw one row of panels per value of
FACETS = ("d", "n", "lambda_w", "lambda_h", "lambda_b")
#: the parameters fixed (or faceted) in a figure: every one but K (the lines) and alpha (the x-axis)
_SETTING = FACETS
_NAMES = {"d": "d", "K": "K", "n": "n", "lambda_w": r"$\lambda_W$", "lambda_h": r"$\lambda_H$",
          "lambda_b": r"$\lambda_b$", "alpha": r"$\alpha$", "seed": "seed"}
#: the most lines (values of K) one panel draws; the title names the others
MAX_LINES = 8

_CF = [(closed_form_column(q), label) for q, label in (
    ("logit_gap", r"logit gap $\Delta^\star$"), ("p_true", r"$p_{\mathrm{true}}$"), ("w_norm", r"$\|w_k\|$"),
    ("h_norm", r"$\|h_i\|$"), ("objective", r"$f^\star$"))]
_KAPPA = [(kappa_column(d), d) for d in DEFINITIONS] + [(kappa_column("full", with_bias=True), "full, b included")]
#: the convergence tolerance the steps figure shows
_STEPS_EPS = 1e-6
_STEPS = [(convergence_steps_column(q, _STEPS_EPS), f"steps to {name} < {_STEPS_EPS:g}")
          for q, name in (("nc1", "NC1"), ("orbit", "orbit"))]
_HEAT = [(closed_form_column("logit_gap"), "logit gap"), (kappa_column("full"), "kappa (full)"),
         (kappa_column("logits"), "kappa (logits)")]


def _number(text: str):
    """An int when the word is one, else a float (ValueError otherwise, or when not finite)."""
    value = int(text) if text.lstrip("-").isdigit() else float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _value_ok(key: str, v) -> bool:
    if isinstance(v, bool):
        return False
    if key == "d" and isinstance(v, str):
        try:
            dim_of(v, 2)
        except ValueError:
            return False
        return True
    return isinstance(v, (int, float)) and math.isfinite(v) and (key != "d" or isinstance(v, int))


class Selection:
    """The constraint of a selection: {key: value or list of values}, keys among :data:`SELECT_KEYS`;
    d an int or an expression in K, the others numbers. On the command line ``d=K-1,n=10`` (a word
    without ``=`` adds a value to the key before it: ``d=K-1,K,n=10``)."""

    def describe(self) -> str:
        return (f"comma-separated KEY=VALUE[,VALUE...] with KEY among {', '.join(SELECT_KEYS)} "
                "(d: an int or K, K-1, 2K, ...; the others numbers)")

    def contains(self, value) -> bool:
        if not isinstance(value, Mapping) or not value:
            return False
        for key, vs in value.items():
            vs = vs if isinstance(vs, (list, tuple)) else [vs]
            if key not in SELECT_KEYS or not vs or not all(_value_ok(key, v) for v in vs):
                return False
        return True

    def parse(self, text: str) -> Dict[str, list]:
        out: Dict[str, list] = {}
        key = None
        for word in (w.strip() for w in text.split(",")):
            if "=" in word:
                key, word = (x.strip() for x in word.split("=", 1))
                if key not in SELECT_KEYS:
                    raise ValueError(key)
            if key is None or not word:
                raise ValueError(text)
            value = word if key == "d" and not word.lstrip("-").isdigit() else _number(word)
            if not _value_ok(key, value):
                raise ValueError(word)
            out.setdefault(key, []).append(value)
        return out


def _label(config: dict, key: str, dims: Sequence) -> str:
    """How a point's value of ``key`` is named: d as the spec's expression giving it, others by value."""
    if key == "d":
        K, d = config["num_classes"], config["dim"]
        return next((str(e) for e in dims if dim_of(e, K) == d), str(d))
    if key == "seed":
        return str(config["seed"])
    return format(config[SELECT_KEYS[key]], "g")


def _ordered(key: str, labels, dims: Sequence) -> List[str]:
    """Labels in order: d in the spec's order (then by name), the others by value."""
    if key == "d":
        order = [str(e) for e in dims]
        return sorted(set(labels), key=lambda s: (order.index(s) if s in order else len(order), s))
    return sorted(set(labels), key=float)


def _matches(config: dict, key: str, value) -> bool:
    if key == "d":
        return config["dim"] == dim_of(value, config["num_classes"])
    return math.isclose(float(config[SELECT_KEYS[key]]), float(value), rel_tol=1e-9, abs_tol=0.0)


def _select(rows: List[dict], select: Mapping, dims: Sequence) -> List[dict]:
    """The rows taking, for every key of ``select``, one of its values; a value no row takes is an error
    naming the key and the values present."""
    select = {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in select.items()}
    for key, values in select.items():
        for v in values:
            if not any(_matches(r["config"], key, v) for r in rows):
                present = ", ".join(_ordered(key, (_label(r["config"], key, dims) for r in rows), dims))
                raise InvalidParameterError(
                    f"The 'select' parameter of plot_sweep selects no point with {key}={v}: {key} takes the values "
                    f"{present} in this sweep.", param="select", value=f"{key}={v}",
                    expected=f"a value of {key} present in the sweep ({present})")
    sel = [r for r in rows if all(any(_matches(r["config"], k, v) for v in vs) for k, vs in select.items())]
    if not sel:
        text = ",".join(f"{k}={','.join(map(str, vs))}" for k, vs in select.items())
        raise InvalidParameterError(f"The 'select' parameter of plot_sweep selects no point: no point takes all of "
                                    f"{text} at once.", param="select", value=text,
                                    expected="values that some point takes together")
    return sel


def sweep_layout(rows: List[dict], select: Optional[Mapping] = None, facet: Optional[str] = None,
                 dims: Sequence = (), max_lines: int = MAX_LINES) -> dict:
    """What the figures draw from the store's ``ok`` rows: ``facet`` (the key, or None), ``groups``
    ({facet label or None: rows}, in order), ``Ks`` (the lines), ``fixed`` ({key: label}, seed
    included) and ``left_out`` ({key: [labels]}: values present after the selection but not drawn)."""
    rows = _select(rows, select, dims) if select else rows
    if facet is None and len({_label(r["config"], "d", dims) for r in rows}) > 1:
        facet = "d"
    left_out: Dict[str, List[str]] = {}
    seeds = _ordered("seed", (_label(r["config"], "seed", dims) for r in rows), dims)
    rows = [r for r in rows if _label(r["config"], "seed", dims) == seeds[0]]
    if len(seeds) > 1:
        left_out["seed"] = seeds[1:]
    keys = [k for k in _SETTING if k != facet]
    present = {k: _ordered(k, (_label(r["config"], k, dims) for r in rows), dims) for k in keys}
    counts = Counter(tuple(_label(r["config"], k, dims) for k in keys) for r in rows)
    # the most frequent setting; ties: the first in order (d as the spec lists it, the others by value)
    best = min(counts, key=lambda t: (-counts[t], [present[k].index(v) for k, v in zip(keys, t)]))
    fixed = dict(zip(keys, best))
    for k in keys:
        if len(present[k]) > 1:
            left_out[k] = [v for v in present[k] if v != fixed[k]]
    rows = [r for r in rows if all(_label(r["config"], k, dims) == fixed[k] for k in keys)]
    fixed["seed"] = seeds[0]
    Ks = sorted({r["config"]["num_classes"] for r in rows})
    if len(Ks) > max_lines:  # an evenly spaced subset; the title names the others
        kept = [Ks[int(i)] for i in np.linspace(0, len(Ks) - 1, max_lines)]
        left_out["K"] = [str(K) for K in Ks if K not in kept]
        Ks = kept
    groups: Dict[Optional[str], List[dict]] = {None: rows}
    if facet is not None:
        labels = _ordered(facet, (_label(r["config"], facet, dims) for r in rows), dims)
        groups = {v: [r for r in rows if _label(r["config"], facet, dims) == v] for v in labels}
    return {"facet": facet, "groups": groups, "Ks": Ks, "fixed": fixed, "left_out": left_out}


def sweep_title(fixed: Mapping[str, str], left_out: Mapping[str, Sequence[str]], facet: Optional[str],
                axes: str = r"one line per K over $\alpha$") -> str:
    """The title of a sweep figure: what is fixed, the facet, what the ``axes`` are, and exactly
    what was left out."""
    parts = [f"{_NAMES[k]}={v}" if k != "seed" else f"seed {v}" for k, v in fixed.items()]
    head = "fixed: " + ", ".join(parts)
    if facet is not None:
        head += f"; one row of panels per {_NAMES[facet]}"
    head += f"; {axes} " + r"($\alpha$ = 0 is CE)"
    if not left_out:
        return head + "\nnothing left out"
    gone = "; ".join(f"{'seeds' if k == 'seed' else _NAMES[k]}={', '.join(v)}" for k, v in left_out.items())
    return head + f"\nleft out: {gone} (select or facet to draw them)"


@lru_cache(maxsize=None)
def _threshold(K: int, n: float, lambda_w: float, lambda_h: float, loss: str) -> float:
    from ufm.theory.closed_form import alpha_threshold

    return alpha_threshold(K, n, lambda_w, lambda_h, loss=loss)


def _set_scale(ax, values, logy: str, axis: str = "y") -> None:
    scale = y_scale(values, logy)
    setter = ax.set_yscale if axis == "y" else ax.set_xscale
    if scale == "symlog":  # linear below the smallest nonzero magnitude, so that zeros stay visible
        small = [abs(v) for v in values if math.isfinite(v) and v != 0]
        setter("symlog", linthresh=min(small) if small else 1.0)
    else:
        setter(scale)


def _panel(ax, rows: List[dict], key: str, Ks: List[int], logy: str) -> None:
    """One panel: ``key`` against alpha, one line per K; trivial points as crosses on their own."""
    alphas = sorted({r["config"]["alpha"] for r in rows})
    values, marked = [], set()
    for j, K in enumerate(Ks):
        pts = sorted(((r["config"]["alpha"], np.nan if r["result"].get(key) is None else float(r["result"][key]),
                       bool(r["result"].get("trivial")), r["config"]) for r in rows if r["config"]["num_classes"] == K),
                     key=lambda p: p[0])
        if not pts:
            continue
        color = f"C{j % 10}"
        ax.plot([p[0] for p in pts], [np.nan if p[2] else p[1] for p in pts], "-o", ms=3, color=color,
                label=f"K={K}")
        trivial = [p for p in pts if p[2]]
        if trivial:
            ax.plot([p[0] for p in trivial], [p[1] for p in trivial], linestyle="none", marker="x", ms=5,
                    color=color, gid="trivial", label="_" if "trivial" in marked else "W = H = 0 (trivial)")
            marked.add("trivial")
        c = pts[0][3]
        thr = _threshold(K, c["per_class"], c["lambda_w"], c["lambda_h"], c.get("loss", "label_smoothing"))
        if alphas[0] <= thr <= alphas[-1]:
            ax.axvline(thr, color=color, ls=":", lw=1, gid="threshold",
                       label="_" if "threshold" in marked else r"threshold $\alpha$")
            marked.add("threshold")
        values += [p[1] for p in pts]
    _set_scale(ax, values, logy)
    ax.set_xlabel(r"$\alpha$")


def _present(layout: dict, panels):
    return [(k, label) for k, label in panels
            if any(r["result"].get(k) is not None for rows in layout["groups"].values() for r in rows)]


def _grid(layout: dict, n_cols: int, width: float, height: float):
    groups = layout["groups"]
    return plt.subplots(len(groups), n_cols, figsize=(width * n_cols, height * len(groups) + 0.8), squeeze=False)


def _panel_title(label: str, layout: dict, value: Optional[str]) -> str:
    return label if value is None else f"{label}, {_NAMES[layout['facet']]}={value}"


def _legend(axes) -> None:
    """One legend, in the first panel, of every entry of every panel: the lines (K) first."""
    entries = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = sorted(entries, key=lambda s: not s.startswith("K="))
    axes[0][0].legend([entries[k] for k in labels], labels, fontsize=7)


def _lines(layout: dict, panels, logy: str):
    """A figure of line panels (columns) per facet value (rows); None when no panel has data."""
    panels = _present(layout, panels)
    if not panels:
        return None
    fig, axes = _grid(layout, len(panels), 3.2, 3.0)
    for row, (value, rows) in zip(axes, layout["groups"].items()):
        for ax, (key, label) in zip(row, panels):
            _panel(ax, rows, key, layout["Ks"], logy)
            ax.set_title(_panel_title(label, layout, value), fontsize=9)
    _legend(axes)
    fig.suptitle(sweep_title(layout["fixed"], layout["left_out"], layout["facet"]), fontsize=8)
    return fig


def _cell_edges(values: List[float]) -> np.ndarray:
    """Edges of cells centred on sorted ``values`` (the midpoints between neighbours; one value gets a
    cell of width 0.01 or 2% of its size)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        half = max(abs(v[0]) * 0.02, 0.005)
        return np.array([v[0] - half, v[0] + half])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _heatmap(ax, fig, rows: List[dict], key: str, logy: str) -> None:
    """``key`` over (alpha, K): a cell per point, crosses on the trivial ones, the threshold per K row."""
    from matplotlib.colors import LogNorm, SymLogNorm

    alphas = sorted({r["config"]["alpha"] for r in rows})
    Ks = sorted({r["config"]["num_classes"] for r in rows})
    grid = np.full((len(Ks), len(alphas)), np.nan)
    for r in rows:
        if r["result"].get(key) is not None:
            grid[Ks.index(r["config"]["num_classes"]), alphas.index(r["config"]["alpha"])] = r["result"][key]
    finite = grid[np.isfinite(grid)]
    scale = y_scale(finite.tolist(), logy)
    small = np.abs(finite[finite != 0])
    norm = (LogNorm() if scale == "log" else
            SymLogNorm(linthresh=float(small.min()) if small.size else 1.0) if scale == "symlog" else None)
    im = ax.pcolormesh(_cell_edges(alphas), np.arange(len(Ks) + 1), np.ma.masked_invalid(grid), norm=norm,
                       shading="flat")  # a cell around each alpha, however the alphas are spaced
    for r in rows:
        if r["result"].get("trivial"):
            ax.plot(r["config"]["alpha"], Ks.index(r["config"]["num_classes"]) + 0.5, "x", color="w", gid="trivial")
    for i, K in enumerate(Ks):
        c = next(r["config"] for r in rows if r["config"]["num_classes"] == K)
        thr = _threshold(K, c["per_class"], c["lambda_w"], c["lambda_h"], c.get("loss", "label_smoothing"))
        if alphas[0] <= thr <= alphas[-1]:
            ax.vlines(thr, i, i + 1, colors="w", linestyles=":", gid="threshold")
    ax.set_yticks(np.arange(len(Ks)) + 0.5)
    ax.set_yticklabels([str(K) for K in Ks], fontsize=6 if len(Ks) > 12 else 8)
    if len(Ks) > 20:
        for lab in ax.get_yticklabels()[1::2]:
            lab.set_visible(False)
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel("K")
    fig.colorbar(im, ax=ax)


def _heatmaps(layout: dict, keys, logy: str):
    """Heatmaps over (alpha, K) (columns) per facet value (rows); None without two alphas and two Ks."""
    keys = _present(layout, keys)
    rows_all = [r for rows in layout["groups"].values() for r in rows]
    if not keys or len({r["config"]["alpha"] for r in rows_all}) < 2 or \
            len({r["config"]["num_classes"] for r in rows_all}) < 2:
        return None
    fig, axes = _grid(layout, len(keys), 4.6, 3.4)
    for row, (value, rows) in zip(axes, layout["groups"].items()):
        for ax, (key, label) in zip(row, keys):
            _heatmap(ax, fig, rows, key, logy)
            ax.set_title(_panel_title(label, layout, value), fontsize=9)
    left_out = {k: v for k, v in layout["left_out"].items() if k != "K"}  # a heatmap draws every K
    fig.suptitle(sweep_title(layout["fixed"], left_out, layout["facet"], r"over (K, $\alpha$)"), fontsize=8)
    return fig


def _read(out: Path):
    path = out / "sweep.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no sweep has been run in {out}")
    with SweepStore(path, readonly=True) as store:  # a store in a read-only folder can be drawn
        rows = [r for r in store.rows() if r["status"] == "ok"]
        grids = store.grids()  # every grid the folder holds
    if not rows:
        raise ValueError(f"{path} holds no finished point")
    return rows, list(dict.fromkeys(d for g in grids for d in g.get("dims") or ()))


_CONSTRAINTS = {"select": OrNone(Selection()), "facet": OrNone(Options(FACETS)), "logy": Options(LOGY)}


@validate_params(_CONSTRAINTS)
def sweep_figures(out, select: Optional[Mapping] = None, facet: Optional[str] = None, logy: str = "auto") -> dict:
    """The sweep's figures, drawn from ``out/sweep.sqlite`` alone, neither laid out nor saved (see
    :func:`plot_sweep`): {file stem: matplotlib Figure} (``fig_sweep_closed_form``, ``fig_sweep_kappa``, ``fig_sweep_steps``,
    ``fig_sweep_heatmap``; a figure without data is absent). See the module docstring for
    ``select``, ``facet`` and ``logy``."""
    rows, dims = _read(Path(out))
    layout = sweep_layout(rows, select, facet, dims)
    figs = {"fig_sweep_closed_form": _lines(layout, _CF, logy), "fig_sweep_kappa": _lines(layout, _KAPPA, logy),
            "fig_sweep_steps": _lines(layout, _STEPS, logy), "fig_sweep_heatmap": _heatmaps(layout, _HEAT, logy)}
    return {name: fig for name, fig in figs.items() if fig is not None}


@validate_params({**_CONSTRAINTS, "formats": ListOf(Options(FORMATS))})
def plot_sweep(out, select: Optional[Mapping] = None, facet: Optional[str] = None, logy: str = "auto",
               formats: Sequence[str] = ("png",), to=None) -> List[Path]:
    """Write the figures (:func:`sweep_figures`) of the sweep in ``out`` into ``to`` (None: ``out``)
    in each of ``formats``; returns their paths. The store is only read, so ``out`` may be
    read-only when ``to`` is another folder.

    Raises:
        NotWritableError: ``to`` cannot be written to; raised before any figure is drawn.
    """
    out = Path(out)
    figs = sweep_figures(out, select, facet, logy)  # bad selections are errors before anything is checked or written
    to = writable_folder(out if to is None else to)
    return [path for name, fig in figs.items() for path in save_figure(fig, to / name, formats)]
