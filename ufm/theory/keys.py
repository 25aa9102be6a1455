"""Names shared by the derivation (build time) and the evaluator (run time) of the Hessian spectra.

The symbolic derivation (``ufm.theory.symbolic.hessian``) writes one generated function per
key of :func:`spectrum_key`; the evaluator (``ufm.theory.spectra``) looks the same keys up. Both
import this module, so neither imports the other.
"""
from __future__ import annotations

__all__ = ["DEFINITIONS", "spectrum_key"]

#: the four operators called "the Hessian" (README, "Conditioning")
DEFINITIONS = ("logits", "features", "classifier", "full")


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
