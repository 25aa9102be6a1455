"""The committed derivation files are exactly what the derivation script generates."""
import pathlib
import re
import subprocess
import sys

import pytest
import sympy

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["minimizer", "hessian", "conditioning", "convergence"])
def test_committed_derivation_files_are_fresh(name):
    md = (ROOT / "derivations" / f"{name}.md").read_text()
    recorded = re.search(r"with sympy (\S+);", md).group(1)
    if recorded != sympy.__version__:
        pytest.skip(f"files were generated with sympy {recorded}, this is {sympy.__version__}: "
                    "the printed form may differ between versions")
    proc = subprocess.run([sys.executable, str(ROOT / "derivations" / f"{name}.py"), "--check", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_equation_numbers_cited_in_closed_form_match():
    """closed_form.py cites (M14) for Delta*, (M19) for f*, (M22) for the threshold."""
    md = (ROOT / "derivations" / "minimizer.md").read_text()
    tags = dict((m.group(2), m.group(1)) for m in re.finditer(r"^(.*?) = .*\\tag\{(M\d+)\}$", md, re.M))
    assert tags["M14"] == r"\Delta^\star"
    assert tags["M19"] == r"f^\star"
    assert tags["M22"] == r"s_{\mathrm{crit}}"
    assert tags["M17"] == r"\|w_k^\star\|"


def test_pattern_sums_equal_explicit_sums():
    """PatternSums (symbolic K) against plain loops for K = 4..7: a triple sum with named indices."""
    from ufm.theory.symbolic.hessian import PatternSums, K

    def term(i, j, k):  # depends on i, j, k only through equalities and the named indices 1, 2
        e1 = lambda x: 1 if x == ("named", 1) else 0
        e2 = lambda x: 1 if x == ("named", 2) else 0
        eq = lambda x, y: 1 if x == y else 0
        return (3 * e1(i) - e2(j)) * (1 + 2 * eq(i, j)) * (eq(j, k) - sympy.Rational(1, 5) * e1(k)) + eq(i, k)

    S = PatternSums(2)
    expr = S(lambda i, bi: S(lambda j, bj: S(lambda k, bk: term(i, j, k), bj), bi))
    for Kv in range(4, 8):
        idx = [("named", 1), ("named", 2)] + [("free", t) for t in range(Kv - 2)]
        brute = sum(term(i, j, k) for i in idx for j in idx for k in idx)
        assert expr.subs(K, Kv) == brute
