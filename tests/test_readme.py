"""Every Python block of the README runs as written, in order, in one namespace (in a fresh folder)."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


def test_every_python_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the network examples write run folders here
    namespace = {}
    for i, block in enumerate(BLOCKS):
        exec(compile(block, f"README.md, Python block {i + 1}", "exec"), namespace)
    # the blocks computed what their comments say
    assert namespace["cf"].logit_gap > 0 and namespace["metrics"]["nc1"] < 1e-6
    assert max(namespace["errors"][k] for k in ("logit_gap", "w_norm", "h_norm", "objective")) < 1e-6
    assert all(r["ok"] for r in namespace["rows"])
    assert set(namespace["out"]) >= {"rows", "predictions", "trajectories", "summary"}
    assert namespace["checks"]["groups"] and (tmp_path / "exp" / "summary.csv").is_file()
