"""ARCHITECTURE.md against the code: the import layers it declares, the modules it names, the rules it states.

The layer table is read from ARCHITECTURE.md itself (its ```layers block), so the document and this
test cannot drift apart; there is no exception list.
"""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "ufm"
DOC = (ROOT / "ARCHITECTURE.md").read_text()


def _layers() -> dict:
    """unit (a package or module name) -> layer number, from the ```layers block."""
    block = re.search(r"```layers\n(.*?)```", DOC, re.S).group(1)
    out = {}
    for line in block.strip().splitlines():
        number, *units = line.split()
        out.update({u: int(number) for u in units})
    return out


LAYERS = _layers()


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str):
    """The layer unit a module belongs to: the longest entry of the table that is it or a prefix."""
    best = None
    for unit in LAYERS:
        if module == unit or module.startswith(unit + "."):
            if best is None or len(unit) > len(best):
                best = unit
    return best


def _imports(path: pathlib.Path):
    """(module imported, line, at module level) for every import of a file, relative ones resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            yield mod, node.lineno, id(node) in top
            for a in node.names:  # `from ufm.x import y` may import the module ufm.x.y
                yield f"{mod}.{a.name}", node.lineno, id(node) in top


FILES = sorted(p for p in PKG.rglob("*.py") if "_generated" not in p.parts)


def test_every_module_belongs_to_a_layer():
    missing = [str(p.relative_to(ROOT)) for p in FILES if p != PKG / "__init__.py" and _unit(_module_name(p)) is None]
    assert not missing, f"modules in no layer of ARCHITECTURE.md: {missing}"


def test_the_layer_table_names_only_what_exists():
    for unit in LAYERS:
        path = ROOT / unit.replace(".", "/")
        assert path.is_dir() or path.with_suffix(".py").is_file(), unit


def _is_module(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").is_file()


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_follow_the_layers(path):
    if path == PKG / "__init__.py":
        return  # the public surface: above every layer, lazy
    me = _unit(_module_name(path))
    for mod, line, _ in _imports(path):
        if not (mod == "ufm" or mod.startswith("ufm.")) or not _is_module(mod):
            continue  # another library, or a name imported from a module (its module is checked)
        assert mod != "ufm", f"{path.name}:{line} imports the public package root; import the module itself"
        other = _unit(mod)
        assert other is not None, f"{path.name}:{line} imports {mod}, which is in no layer"
        if other == me:
            continue
        assert LAYERS[other] < LAYERS[me], (f"{path.relative_to(ROOT)}:{line} ({me}, layer {LAYERS[me]}) imports "
                                            f"{mod} ({other}, layer {LAYERS[other]})")


def test_sympy_only_in_the_symbolic_derivations():
    symbolic = PKG / "theory" / "symbolic"
    for path in FILES:
        inside = symbolic in path.parents
        for mod, line, top in _imports(path):
            if mod == "sympy" or mod.startswith("sympy."):
                assert inside, f"{path.relative_to(ROOT)}:{line} imports sympy"
            if mod.startswith("ufm.theory.symbolic") and not inside:
                assert not top, f"{path.relative_to(ROOT)}:{line} imports {mod} at module level (sympy at run time)"


@pytest.mark.parametrize("where", ["ufm/_core/validation.py", "ufm/_core/io.py", "ufm/records"])
def test_record_readers_import_no_torch_at_module_level(where):
    target = ROOT / where
    for path in [target] if target.suffix else sorted(target.rglob("*.py")):
        for mod, line, top in _imports(path):
            if mod == "torch" or mod.startswith("torch."):
                assert not top, f"{path.relative_to(ROOT)}:{line} imports torch at module level"


def test_only_the_entry_modules_at_the_package_root():
    root = sorted(p.stem for p in PKG.glob("*.py"))
    assert root == ["__init__", "__main__", "_version", "losses", "problem"]


def _functions(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_over_80_lines():
    long = [f"{p.relative_to(ROOT)}:{line} {name} ({n} lines)" for p in FILES for name, line, n in _functions(p)
            if n > 80]
    assert not long, long


def test_every_module_named_in_the_document_exists():
    paths = set(re.findall(r"`(ufm/[\w/.]*)`", DOC))
    assert paths, "ARCHITECTURE.md names no module"
    for p in paths:
        assert (ROOT / p).exists(), f"ARCHITECTURE.md names {p}, which does not exist"
    for dotted in set(re.findall(r"`(ufm(?:\.\w+)+)", DOC)):
        parts = dotted.split(".")
        i = max(k for k in range(1, len(parts) + 1) if _is_module(".".join(parts[:k])))
        assert i >= len(parts) - 1 or _is_module(".".join(parts[:i])), dotted
        if i < len(parts):  # an attribute of a module: it must be defined there
            import importlib

            obj = importlib.import_module(".".join(parts[:i]))
            for attr in parts[i:]:
                assert hasattr(obj, attr), f"ARCHITECTURE.md names {dotted}, which does not exist"
                obj = getattr(obj, attr)
