"""Derive the asymptotic rate of NC1 under gradient descent near the UFM minimizer, step by step.

    python derivations/convergence.py           # print the derivation, regenerate the file
    python derivations/convergence.py --check   # exit 1 if the committed file is stale

Regenerates ``derivations/convergence.md``: the first-order modes, the second-order product
mode that drives the in-span within-class scatter at d >= K, a check on an explicit point, and
the rate ``ufm.analysis.convergence`` predicts.
"""
import sys

from _regenerate import ROOT, run

from ufm.theory.symbolic.convergence import convergence_to_markdown, convergence_to_text, derive_nc1_rate

OUTPUTS = {ROOT / "derivations" / "convergence.md": convergence_to_markdown}


def main(argv=None) -> int:
    return run("convergence.py", __doc__.splitlines()[0], derive_nc1_rate, convergence_to_text, OUTPUTS, argv)


if __name__ == "__main__":
    sys.exit(main())
