"""``ufm claims``: exit codes, the table, ``--json``, and a finished experiment read without torch."""
import json
import subprocess
import sys

import pytest
from problems import TINY_EXPERIMENT as TOML



@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ufm.dnn.experiment import load_experiment, run_experiment

    folder = tmp_path_factory.mktemp("exp")
    (folder / "tiny.toml").write_text(TOML)
    run_experiment(load_experiment(folder / "tiny.toml"), folder / "out", workers=0, progress=False)
    return folder / "out"


def _failing_experiment(folder):
    """An experiment folder written by hand in which LS has the higher test error for five seeds."""
    names = []
    for seed in range(5):
        for alpha in (0.0, 0.1):
            run = folder / "runs" / f"alpha={alpha}-seed={seed}"
            run.mkdir(parents=True)
            config = {"dataset": "gaussian", "model": "mlp", "alpha": alpha, "seed": seed, "mode": "standard",
                      "lambda_w": 5e-4, "lambda_h": 5e-4, "epochs": 1}
            (run / "config.json").write_text(json.dumps({"config": config, "dataset": {"sizes": {"train": 90}},
                                                         "model": {"num_classes": 3, "feature_dim": 8}}))
            records = [{"epoch": 1, "split": "train", "error": 0.0, "nc1": 0.1, "nc2_h": 0.5, "nc2_w": 0.5,
                        "p_off": 0.01},
                       {"epoch": 1, "split": "test", "error": 0.1 + alpha, "ece": 0.1, "ece_ts": 0.1}]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            names.append(run.name)
    (folder / "experiment.json").write_text(json.dumps({"name": "failing", "runs": names}))
    return folder


def test_failing_claims_exit_0(cli, tmp_path):
    code, out, err = cli("claims", _failing_experiment(tmp_path / "f"))
    assert code == 0 and err == ""
    row = next(line for line in out.splitlines() if line.startswith("generalization"))
    assert "LS lowers the test error" in row and "fails" in row and "-0.1 [-0.1, -0.1]" in row
    assert f"{tmp_path / 'f'} (10 runs)" in row
    assert "generalization: 5 seeds, sign test: 90% interval [-0.1, -0.1] below 0" in out
    code, strict_out, err = cli("claims", tmp_path / "f", "--strict")
    assert code == 1 and strict_out == out
    assert err.startswith("ufm claims: ") and "generalization" in err and len(err.strip().splitlines()) == 1


def test_strict_claims_exit_0_when_nothing_fails(cli, tiny):
    code, out, err = cli("claims", tiny, "--strict")  # one seed, one epoch: inconclusive or not applicable
    assert code == 0 and err == "" and " fails " not in out


def test_a_folder_without_records_exits_2_with_one_line(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = cli("claims", tmp_path / "empty")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"ufm claims: error: {tmp_path / 'empty'} holds none of the records")
    assert "sweep.sqlite" in err
    code, _, err = cli("claims", tmp_path / "missing")
    assert code == 2 and "is not a folder" in err and err.count("\n") == 1


def test_json_lists_every_claim_with_its_keys(cli, tiny):
    code, out, _ = cli("claims", tiny, "--json")
    assert code == 0
    results = json.loads(out)
    assert [r["id"] for r in results][:3] == ["closed-form", "conditioning", "ufm-convergence"] and len(results) == 10
    for r in results:
        assert {"id", "statement", "verdict", "reason", "evidence"} <= set(r) and r["reason"]
        assert r["verdict"] in ("holds", "fails", "inconclusive", "not-applicable", "not-evaluated")
    by_id = {r["id"]: r for r in results}
    assert by_id["closed-form"]["verdict"] == "not-evaluated" and f"{tiny} (4 runs)" == by_id["calibration"]["evidence"]
    assert by_id["calibration"]["verdict"] == "inconclusive"  # two seeds


def test_claims_on_a_finished_experiment_reads_no_torch(tiny):
    code = (f"import sys\nfrom ufm.cli.main import main\ncode = main(['claims', {str(tiny)!r}])\n"
            "print(code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[-1] == "0 False"
    assert any(line.startswith("nc-strength") for line in lines) and lines[0].startswith("id")


def test_markdown_renders_the_same_results(tiny):
    from ufm.analysis.claims import evaluate_claims
    from ufm.report.claims import claims_markdown

    md = claims_markdown(evaluate_claims([tiny]))
    assert md.startswith("| id | statement | verdict | effect [90% interval] | evidence |")
    assert "| `generalization` | LS lowers the test error | **inconclusive** |" in md
    assert "- `generalization`: 2 seeds: fewer than 3, never conclusive" in md
