"""The public surface: every exported name resolves, `import ufm` is light, and the README uses only exported names."""
import ast
import importlib
import pathlib
import re
import subprocess
import sys

import pytest

import ufm

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_public_names_import():
    for name in ufm.__all__:
        assert getattr(ufm, name) is not None, name


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'frobnicate'"):
        ufm.frobnicate  # noqa: B018


def test_import_ufm_does_not_import_sympy():
    code = "import sys, ufm; ufm.closed_form(ufm.UFMProblem(3, 2, 3)); print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_import_ufm_imports_neither_torch_nor_numpy():
    code = "import sys, ufm; print(sorted({'torch', 'numpy', 'sympy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _readme_python() -> str:
    text = (ROOT / "README.md").read_text()
    return "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))


def test_readme_uses_only_exported_names():
    """`ufm.X` and `from ufm import X` need X in ufm.__all__; `from ufm.sub import X` needs X in that
    module's __all__ (the public namespaces, e.g. ufm.dnn)."""
    tree = ast.parse(_readme_python())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ufm":
            used.add(("ufm", node.attr))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ufm":
            used |= {(node.module, a.name) for a in node.names}
    assert used, "the README has no Python example"
    for module, name in sorted(used):
        exported = importlib.import_module(module).__all__
        assert name in exported, f"the README uses {module}.{name}, which {module}.__all__ does not export"
