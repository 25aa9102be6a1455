"""Derive the condition numbers of the UFM Hessians at the collapsed minimizer, step by step.

    python derivations/conditioning.py           # print the derivation, regenerate the files
    python derivations/conditioning.py --check   # exit 1 if a committed file is stale

Regenerates ``derivations/conditioning.md`` (the condition numbers of ``logits``, ``features`` and
``classifier`` in closed form as functions of (K, alpha, s, d-regime, lambda_W/lambda_H), which
eigenvalue is the largest and which the smallest, their derivative in alpha, and the pieces of the
``full`` Hessian in units of sqrt(lambda_W lambda_H)) and ``ufm/theory/_generated/conditioning.py``
(what ``ufm.theory.conditioning`` evaluates at run time, so sympy is never imported there). It
reuses the Hessian derivation's collapsed branch, so it takes about as long as
``derivations/hessian.py``.
"""
import sys

from _regenerate import ROOT, run

from ufm.theory.symbolic.conditioning import (conditioning_to_markdown, conditioning_to_python, conditioning_to_text,
                                              derive_conditioning)

OUTPUTS = {
    ROOT / "derivations" / "conditioning.md": conditioning_to_markdown,
    ROOT / "ufm" / "theory" / "_generated" / "conditioning.py": conditioning_to_python,
}


def main(argv=None) -> int:
    return run("conditioning.py", __doc__.splitlines()[0], derive_conditioning, conditioning_to_text, OUTPUTS, argv)


if __name__ == "__main__":
    sys.exit(main())
