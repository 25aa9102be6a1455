"""Derive the Hessian spectra of the UFM at its global minimizers, step by step.

    python derivations/hessian.py           # print the derivation, regenerate the files
    python derivations/hessian.py --check   # exit 1 if a committed file is stale

Regenerates ``derivations/hessian.md`` (the derivation with LaTeX and the spectra of the
four operators, logits, features, classifier and full) and
``ufm/theory/_generated/hessian.py`` (the compiled spectra that ``ufm.theory.spectra``
evaluates at run time, so sympy is never imported there). Takes about a minute.
"""
import sys

from _regenerate import ROOT, run

from ufm.theory.symbolic.hessian import derive_hessian, hessian_to_markdown, hessian_to_python, hessian_to_text

OUTPUTS = {
    ROOT / "derivations" / "hessian.md": hessian_to_markdown,
    ROOT / "ufm" / "theory" / "_generated" / "hessian.py": hessian_to_python,
}


def main(argv=None) -> int:
    return run("hessian.py", __doc__.splitlines()[0], derive_hessian, hessian_to_text, OUTPUTS, argv)


if __name__ == "__main__":
    sys.exit(main())
