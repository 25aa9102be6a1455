"""The command line's lists and files: closed-form over lists (table, CSV, JSON list), verify over
grid flags, and one rule for --config (flags override the file, the resolved configuration is
printed; an error about a key from the file names the file and the key)."""
import csv
import io
import itertools
import json

import pytest

from ufm import UFMProblem, closed_form


def _expected(K, n, d, lw, lh, a):
    """The API's closed form of one problem, which each row must print (its values are checked
    against independent references in tests/theory)."""
    return closed_form(UFMProblem(K, n, d, lw, lh, 0.0, a))


def test_closed_form_over_lists_prints_one_row_per_problem(cli):
    code, out, err = cli("closed-form", "-K", "3,10", "--alphas", "0,0.05,0.1")
    assert code == 0 and err == ""
    header, *rows = out.splitlines()
    assert header.split()[:8] == ["K", "n", "d", "lambda_w", "lambda_h", "lambda_b", "alpha", "logit_gap"]
    assert len(rows) == 6
    for row, (K, a) in zip(rows, itertools.product((3, 10), (0.0, 0.05, 0.1))):
        cells = row.split()
        assert (int(cells[0]), int(cells[2]), float(cells[6])) == (K, K, a)  # d defaults to K
        assert float(cells[7]) == pytest.approx(_expected(K, 10, K, 5e-3, 5e-3, a).logit_gap, rel=1e-5)


def test_closed_form_csv_and_json_lists_hold_full_precision(cli):
    code, out, _ = cli("closed-form", "-K", "4", "-n", "5,20", "--alpha", "0,0.2", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(int(r["n"]), float(r["alpha"])) for r in rows] == [(5, 0.0), (5, 0.2), (20, 0.0), (20, 0.2)]
    for r in rows:
        cf = _expected(4, int(r["n"]), 4, 5e-3, 5e-3, float(r["alpha"]))
        assert float(r["logit_gap"]) == cf.logit_gap and float(r["objective"]) == cf.objective
        # the threshold (1 - alpha)/K is the closed form's, written here from Zhu et al. for CE
        assert float(r["threshold"]) == pytest.approx((1 - float(r["alpha"])) / 4, rel=1e-12)
    code, out, _ = cli("closed-form", "-K", "4", "-n", "5,20", "--alpha", "0,0.2", "--json")
    data = json.loads(out)
    assert code == 0 and isinstance(data, list) and len(data) == 4
    assert [d["problem"]["per_class"] for d in data] == [5, 5, 20, 20]
    assert data[3]["logit_gap"] == float(rows[3]["logit_gap"])
    code, out, _ = cli("closed-form", "-K", "4", "--json")  # one problem: one object, as before
    assert code == 0 and json.loads(out)["problem"]["num_classes"] == 4


def test_closed_form_lists_reject_bad_items_in_one_line(cli):
    code, out, err = cli("closed-form", "-K", "3,1")
    assert (code, out) == (2, "") and err.strip().splitlines() == [
        "ufm closed-form: error: -K/--num-classes must be an int in the range [2, inf). Got 1 instead."]
    assert cli("closed-form", "--csv", "--json")[0] == 2


def test_verify_takes_the_grid_flags_of_sweep(cli):
    code, out, _ = cli("verify", "--classes", "3", "--dims", "K-1,K", "--alphas", "0,0.1", "--per-class", "4",
                       "--seeds", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["total"] == 4 and data["passed"] == 4
    assert sorted((r["num_classes"], r["dim"], r["alpha"]) for r in data["rows"]) == [(3, 2, 0.0), (3, 2, 0.1), (3, 3, 0.0),
                                                                           (3, 3, 0.1)]


def test_verify_reads_a_grid_file_and_flags_override_it(cli, tmp_path):
    toml = tmp_path / "g.toml"
    toml.write_text('classes = [3]\ndims = ["K"]\nalphas = [0.0, 0.1, 0.2]\nper_class = [4]\nseeds = 1\n')
    code, out, err = cli("verify", "--config", toml, "--alphas", "0.3", "--json")
    data = json.loads(out)
    assert code == 0 and [r["alpha"] for r in data["rows"]] == [0.3]
    assert "with --alphas from the command line" in err and '"alphas": [0.3]' in err


def test_sweep_flags_override_the_config_and_the_resolution_is_printed(cli, tmp_path):
    toml = tmp_path / "a.toml"
    toml.write_text("classes = [3]\nalphas = [0.0, 0.1]\n")
    code, _, err = cli("sweep", "--out", tmp_path / "sw", "--config", toml, "--alphas", "0.2,0.3")
    spec = json.loads((tmp_path / "sw" / "spec.json").read_text())
    assert code == 0 and spec["alphas"] == [0.2, 0.3] and spec["classes"] == [3]
    line = next(ln for ln in err.splitlines() if "from the command line" in ln)
    assert line.startswith(f"ufm sweep: {toml} with --alphas from the command line: ")
    assert json.loads(line.split("from the command line: ", 1)[1]) == spec


@pytest.mark.parametrize("text, message", [
    ("seeds = 0\n", "key 'seeds' must be an int in the range [1, inf). Got 0 instead."),
    ("seeds = [0, 0]\n", "key 'seeds' must be a count >= 1 or a list of distinct ints >= 0. Got [0, 0] instead."),
    ("alphas = [-0.1]\n", "key 'alphas' must be a float in the range [0, 1). Got -0.1 instead."),
    ("lambda_h = [0.0]\n", "key 'lambda_h' must be a float in the range (0, inf). Got 0.0 instead."),
])
def test_an_error_in_a_sweep_file_names_the_file_and_the_key(cli, tmp_path, text, message):
    toml = tmp_path / "bad.toml"
    toml.write_text("classes = [3]\n" + text)
    code, out, err = cli("sweep", "--out", tmp_path / "sw", "--config", toml)
    assert (code, out) == (2, "") and err == f"ufm sweep: error: {toml}: {message}\n"
    assert not (tmp_path / "sw").exists()


def test_a_sweep_file_takes_seeds_as_a_count_or_a_list(cli, tmp_path):
    (tmp_path / "a.toml").write_text("classes = [3]\nalphas = [0.0]\nseeds = [0, 4]\n")
    (tmp_path / "b.toml").write_text("classes = [3]\nalphas = [0.0]\nseeds = [0, 1]\n")
    assert cli("sweep", "--out", tmp_path / "a", "--config", tmp_path / "a.toml")[0] == 0
    with open(tmp_path / "a" / "results.csv", newline="") as fh:
        assert sorted(int(r["seed"]) for r in csv.DictReader(fh)) == [0, 4]
    assert cli("sweep", "--out", tmp_path / "b", "--config", tmp_path / "b.toml")[0] == 0
    # seeds [0, 1] is the count 2: the same grid as --seeds 2, so that folder accepts it
    assert cli("sweep", "--out", tmp_path / "b", "--classes", "3", "--alphas", "0", "--seeds", "2")[0] == 0


def test_an_error_in_a_run_file_names_the_file_and_a_flag_names_the_flag(cli, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('dataset = "gaussian"\nepochs = -1\n')
    code, _, err = cli("train", "--out", tmp_path / "r", "--config", toml)
    assert code == 2 and err == f"ufm train: error: {toml}: key 'epochs' must be an int in the range [1, inf). Got -1 instead.\n"
    code, _, err = cli("train", "--out", tmp_path / "r", "--config", toml, "--epochs", "0")
    assert code == 2 and err == "ufm train: error: --epochs must be an int in the range [1, inf). Got 0 instead.\n"
    assert not (tmp_path / "r").exists()


def test_an_abbreviated_flag_overrides_the_config_too(cli, tmp_path):
    """argparse takes --alpha for --alphas and --per for --per-class: written all the same."""
    toml = tmp_path / "a.toml"
    toml.write_text("classes = [3]\nalphas = [0.0, 0.1]\nper_class = [10]\n")
    code, _, err = cli("sweep", "--out", tmp_path / "sw", "--config", toml, "--alpha", "0.3", "--per", "4")
    spec = json.loads((tmp_path / "sw" / "spec.json").read_text())
    assert code == 0 and (spec["alphas"], spec["per_class"]) == ([0.3], [4])
    assert "with --alphas, --per-class from the command line" in err


def test_seeds_beyond_64_bits_are_refused_in_one_line(cli):
    code, _, err = cli("solve", "-K", "3", "-n", "2", "--seed", str(2**63))
    assert code == 2 and "--seed must be an int in the range [0, 9223372036854775807]" in err
    code, _, err = cli("solve", "-K", "3", "-n", "2", "--seed", str(2**63 - 1), "--seeds", "2")
    assert code == 2 and "reaches seed 9223372036854775808" in err and err.count("\n") == 1
    from ufm.sweep import SweepSpec

    with pytest.raises(Exception, match="'seeds'"):
        SweepSpec(seeds=[2**64])
    assert SweepSpec(seeds=[1, 0]).seeds == 2 and SweepSpec(seeds=[5, 3]).seeds == [3, 5]
