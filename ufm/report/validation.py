"""The verdicts of ``ufm.analysis.networks.validate`` as Markdown (``ufm validate``, ``validation.md``).

Renders the result of ``validate`` or the ``validation.json`` written from it (where non-finite
values are null, rendered as ``nan``); decides nothing.
"""
from __future__ import annotations

__all__ = ["validation_markdown"]


def _g(v, spec: str) -> str:
    """``v`` formatted with ``spec``; None (a non-finite value written as null) is NaN."""
    return format(float("nan") if v is None else v, spec)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def validation_markdown(result: dict) -> str:
    """The checks of ``validate`` as Markdown tables (measured values and verdicts)."""
    lines = []
    for r in result["ufm_runs"]:
        lines += [f"**UFM-style run** `{r['run']}` (K = {r['num_classes']}, n = {r['per_class']:g}, "
                  f"alpha = {r['alpha']:g}{', past the threshold: W = H = 0' if r['trivial'] else ''})", "",
                  "| quantity | closed form | measured (last epoch) | relative error | holds (< "
                  f"{result['tolerances']['UFM_RTOL']:g}) |", "|---|---|---|---|---|"]
        lines += [f"| {c['quantity']} | {_g(c['predicted'], '.5g')} | {_g(c['measured'], '.5g')} | "
                  f"{_fmt(c['rel_error'])} | {'yes' if c['holds'] else 'no'} |" for c in r["checks"]]
        lines.append("")
    for g in result["groups"]:
        lines += [f"**Runs compared across alpha** ({len(g['runs'])} runs, alphas "
                  f"{', '.join(f'{a:g}' for a in g['alphas'])}, seeds {', '.join(map(str, g['seeds']))})", "",
                  "| prediction | measured | criterion | holds |", "|---|---|---|---|"]
        lines += [f"| {c['prediction']} | {_measured(c)} | {c['criterion']} | {'yes' if c['holds'] else 'no'} |"
                  for c in g["checks"]]
        lines.append("")
    return "\n".join(lines) if lines else "No runs to validate.\n"


def _measured(c: dict) -> str:
    """The measured values of one cross-run check, in a table cell."""
    measured = c["measured"]
    if c["prediction"].startswith("geometry"):
        text = "; ".join(f"from epoch {v['from_epoch']}: NC2_h {_g(v['nc2_h'][0], '.3g')} -> "
                         f"{_g(v['nc2_h'][1], '.3g')}, NC2_W {_g(v['nc2_w'][0], '.3g')} -> {_g(v['nc2_w'][1], '.3g')}"
                         for v in list(measured.values())[:2])
        return text + (" ..." if len(measured) > 2 else "")
    text = ", ".join(f"alpha={float(a):g}: {_g(v, '.4g')}" for a, v in measured.items())
    if "value" in c:
        text += f" (spread {_g(c['value'], '.3g')})"
    if "target_nc1" in c:
        text = f"target NC1 {_g(c['target_nc1'], '.3g')}; epochs " + text
    return text
