"""Derive the UFM global minimizer under CE and label smoothing, step by step.

    python derivations/minimizer.py           # print the derivation, regenerate the files
    python derivations/minimizer.py --check   # exit 1 if a committed file is stale

Regenerates ``derivations/minimizer.md`` (the derivation with LaTeX) and
``ufm/theory/_generated/minimizer.py`` (the compiled closed forms that
``ufm.theory.closed_form`` evaluates at run time, so sympy is never imported there).
"""
import sys

from _regenerate import ROOT, run

from ufm.theory.symbolic.minimizer import derive_minimizer, to_markdown, to_python, to_text

OUTPUTS = {
    ROOT / "derivations" / "minimizer.md": to_markdown,
    ROOT / "ufm" / "theory" / "_generated" / "minimizer.py": to_python,
}


def main(argv=None) -> int:
    return run("minimizer.py", __doc__.splitlines()[0], lambda: derive_minimizer("label_smoothing"), to_text, OUTPUTS, argv)


if __name__ == "__main__":
    sys.exit(main())
