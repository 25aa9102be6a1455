"""The committed derivation files are exactly what the derivation script generates."""
import pathlib
import re
import subprocess
import sys

import pytest
import sympy

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_committed_derivation_files_are_fresh():
    md = (ROOT / "derivations" / "minimizer.md").read_text()
    recorded = re.search(r"with sympy (\S+);", md).group(1)
    if recorded != sympy.__version__:
        pytest.skip(f"files were generated with sympy {recorded}, this is {sympy.__version__}: "
                    "the printed form may differ between versions")
    proc = subprocess.run([sys.executable, str(ROOT / "derivations" / "minimizer.py"), "--check", "--quiet"],
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
