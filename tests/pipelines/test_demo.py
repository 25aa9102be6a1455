"""`ufm demo --quick`: every stage writes its record, figures and report; a rerun reuses them; `ufm report` rebuilds."""
import json


def test_demo_quick_writes_records_figures_and_report(cli, tmp_path, capsys, read_only):
    out_dir = tmp_path / "demo"
    code, out, _ = cli("demo", "--quick", "--out", str(out_dir))
    assert code == 0
    for name in ("report.md", "derivation.md", "fig_alpha.png", "fig_trajectory.png", "fig_verify.png",
                 "fig_conditioning.png", "fig_convergence.png", "fig_rates.png", "records/conditioning.json",
                 "records/convergence.json", "records/verify.json", "records/trajectory.json", "records/sweep.json",
                 "sweep/sweep.sqlite", "sweep/results.csv", "sweep/fig_sweep_kappa.png",
                 "records/alpha_sweep.json", "records/experiment.json", "experiment/report.md",
                 "experiment/nc_vs_epoch.png", "experiment/runs/alpha=0.1-seed=0/metrics.jsonl",
                 "experiment-ufm/metrics.jsonl", "records/regimes.json", "records/claims.json", "fig_regimes.png"):
        assert (out_dir / name).is_file(), name
    report = (out_dir / "report.md").read_text()
    assert "points agree with the closed form" in report
    assert "## 5. Conditioning" in report and "## 6. Convergence" in report and "In plain words" in report
    assert "## 8. Networks: CE vs LS" in report and "| w_norm | 1.5997 |" in report
    assert report.index("## Claims of the paper") < report.index("## 1. The closed-form minimizer")
    assert "| `closed-form` | The UFM's global minimizer (LS and CE) is the derived closed form | **holds** |" in report
    assert "![regime map](fig_regimes.png)" in report
    claims = json.loads((out_dir / "records" / "claims.json").read_text())["results"]
    assert [c["id"] for c in claims][:3] == ["closed-form", "conditioning", "ufm-convergence"]
    record = json.loads((out_dir / "records" / "verify.json").read_text())
    assert record["environment"]["torch"] and record["config"]["tol"] == 1e-6
    # A second run reuses every stage but the claims, which are judged again on the records; the report
    # is rebuilt from the records alone.
    code, out, err = cli("demo", "--quick", "--out", str(out_dir))  # the stage lines are progress: stderr
    assert code == 0 and err.count("reusing") == 9 and "[claims] running" in err
    (out_dir / "fig_alpha.png").unlink()
    (out_dir / "report.md").unlink()
    code, out, _ = cli("report", str(out_dir))
    assert code == 0 and (out_dir / "fig_alpha.png").is_file()
    assert (out_dir / "report.md").read_text() == report
    # A read-only demo folder: `ufm report DIR` says it cannot write there, `--out` writes elsewhere
    # the same report (its figures beside it), and `ufm claims DIR` reads it.
    read_only(out_dir)
    code, out, err = cli("report", str(out_dir))
    assert (code, out) == (2, "") and f"cannot write to {out_dir}" in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli("report", str(out_dir), "--out", str(tmp_path / "copy"))
    assert code == 0 and (tmp_path / "copy" / "report.md").read_text() == report
    assert (tmp_path / "copy" / "fig_alpha.png").is_file() and (tmp_path / "copy" / "sweep" / "fig_sweep_kappa.png").is_file()
    assert (tmp_path / "copy" / "experiment" / "report.md").is_file()
    assert cli("claims", str(out_dir))[0] == 0
