"""The public surface, and the one-way flow of imports described in DESIGN.md."""
import ast
import pathlib
import subprocess
import sys

import pytest

import ufm

PKG = pathlib.Path(ufm.__file__).resolve().parent


def test_public_names_import():
    for name in ufm.__all__:
        assert getattr(ufm, name) is not None, name


def test_import_ufm_does_not_import_sympy():
    code = "import sys, ufm; ufm.closed_form(ufm.UFMProblem(3, 2, 3)); print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _imports(path: pathlib.Path):
    """Absolute module names imported by a file of the package (relative imports resolved)."""
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    pkg = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}
            else:
                out.add(node.module)
    return out


# layer -> modules it must never import
FORBIDDEN = {
    "ufm/theory": ["ufm.numerics", "ufm.metrics", "ufm.verify", "ufm.demo", "ufm.report", "ufm.cli"],
    "ufm/metrics": ["ufm.theory", "ufm.numerics", "ufm.verify", "ufm.demo", "ufm.report", "ufm.cli"],
    "ufm/numerics": ["ufm.verify", "ufm.conditioning", "ufm.convergence", "ufm.demo", "ufm.report", "ufm.cli",
                     "sympy"],
    "ufm/report": ["ufm.theory", "ufm.numerics", "ufm.metrics", "ufm.verify", "ufm.demo", "ufm.cli"],
    "ufm/verify.py": ["ufm.demo", "ufm.report", "ufm.cli", "sympy"],
    "ufm/conditioning.py": ["ufm.demo", "ufm.report", "ufm.cli", "sympy"],
    "ufm/convergence.py": ["ufm.demo", "ufm.report", "ufm.cli", "sympy"],
    "ufm/theory/spectra.py": ["sympy"],
    "ufm/sweep": ["ufm.demo", "ufm.report", "ufm.cli", "sympy"],
    "ufm/theory/closed_form.py": ["sympy"],
    "ufm/problem.py": ["ufm.theory", "ufm.numerics", "ufm.metrics", "torch", "sympy"],
    "ufm/dnn": ["ufm.numerics", "ufm.verify", "ufm.conditioning", "ufm.convergence", "ufm.sweep", "ufm.demo",
                "ufm.report", "ufm.cli", "sympy"],
    "ufm/executors.py": ["ufm.theory", "ufm.numerics", "ufm.metrics", "ufm.dnn", "ufm.sweep", "ufm.demo",
                         "ufm.report", "ufm.cli"],
}


@pytest.mark.parametrize("where", sorted(FORBIDDEN))
def test_imports_flow_one_way(where):
    target = PKG.parent / where
    files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    assert files
    for f in files:
        for mod in _imports(f):
            for bad in FORBIDDEN[where]:
                assert not (mod == bad or mod.startswith(bad + ".")), f"{f.name} imports {mod}"
