"""Names shared by the derivations (build time) and the evaluators (run time) of the Hessian spectra
and of the condition numbers.

The symbolic derivations (``ufm.theory.symbolic.hessian``, ``ufm.theory.symbolic.conditioning``)
write one generated function per key of :func:`spectrum_key` and :func:`conditioning_key`; the
evaluators (``ufm.theory.spectra``, ``ufm.theory.conditioning``) look the same keys up. Both
import this module, so neither imports the other.
"""
from __future__ import annotations

__all__ = ["DEFINITIONS", "WITH_BIAS", "MAP_DEFINITIONS", "D_REGIMES", "spectrum_key", "conditioning_key"]

#: the four operators called "the Hessian" (README, "Conditioning")
DEFINITIONS = ("logits", "features", "classifier", "full")
#: the full Hessian with b as a variable although lambda_b = 0 (its shift b0 1 null), the verdict
#: ``summarize`` reports next to ``full``
WITH_BIAS = "full, b included"
#: every condition number the conditioning claim is put to (derivations/conditioning.md)
MAP_DEFINITIONS = DEFINITIONS + (WITH_BIAS,)
#: the two regimes of the feature dimension at a collapsed minimizer: d = K - 1 (the features fill
#: the span of the ETF) and d >= K (directions orthogonal to the span exist)
D_REGIMES = ("K-1", ">=K")


def spectrum_key(definition: str, trivial: bool, bias: bool, binary: bool) -> str:
    """Key of a derived spectrum: ``full`` depends on whether b is a variable; the span
    blocks take a special form at K = 2 (the standard representation of S_2 appears once,
    not twice, in W and in the class means)."""
    parts = [definition, "trivial" if trivial else "collapsed"]
    if definition == "full":
        parts.append("bias" if bias else "nobias")
    if definition in ("classifier", "features", "full"):
        parts.append("binary" if binary else "multiclass")
    return "/".join(parts)


def conditioning_key(definition: str, d_regime: str, binary: bool) -> str:
    """Key of a derived condition number (``logits``, ``features``, ``classifier``: a closed form)
    or of the normalized pieces of the full Hessian (``full``, ``full, b included``: no d in the
    key, the d-regime enters through the multiplicities). K = 2 has its own forms, as in
    :func:`spectrum_key`."""
    kind = "binary" if binary else "multiclass"
    if definition in ("full", WITH_BIAS):
        return f"{definition}/{kind}"
    return f"{definition}/d{'=' if d_regime == 'K-1' else ''}{d_regime}/{kind}"
