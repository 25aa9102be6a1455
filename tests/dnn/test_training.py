"""Training runs: records against independent computations, resume after kill -9, NaN stop,
DDP against one process, a UFM-style run against the closed form, and bad input."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ufm import InvalidParameterError, closed_form_arrays, nc_metrics
from ufm.dnn.config import TrainConfig
from ufm.dnn.data import load_dataset
from ufm.dnn.models import build_model
from ufm.analysis.networks import UFM_RTOL, validate
from ufm.dnn.evaluate import NOISE_KEYS, NOISE_SIGMAS, evaluate, input_noise, noise_errors
from ufm.dnn.training import RECORD_KEYS, TEST_RECORD_KEYS, RunMismatchError, TrainingDivergedError, train
from ufm.metrics.logits import logit_statistics
from ufm.records.runs import read_records
from ufm.metrics.calibration import fit_temperature

GAUSS = dict(num_classes=4, dim=16, train_size_per_class=60, test_size_per_class=30)
CLI_DATA = ["--dataset", "gaussian", "--dataset-option", "num_classes=4", "--dataset-option", "dim=16",
            "--dataset-option", "train_size_per_class=60", "--dataset-option", "test_size_per_class=30",
            "--model-option", "width=32", "--model-option", "depth=2"]


def small(**changes) -> TrainConfig:
    base = dict(dataset="gaussian", dataset_options=GAUSS, model="mlp", model_options=dict(width=32, depth=2),
                epochs=3, batch_size=32, lr=0.05)
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-epoch run, its records and the model rebuilt from its checkpoint."""
    out = tmp_path_factory.mktemp("run")
    cfg = small()
    train(cfg, out, progress=False)
    ds = load_dataset("gaussian", seed=0, val_fraction=cfg.val_fraction, **GAUSS)
    model = build_model("mlp", input_shape=ds.input_shape, num_classes=4, width=32, depth=2)
    model.load_state_dict(torch.load(out / "checkpoint.pt", weights_only=False)["model"])
    model.eval()
    return out, read_records(out), ds, model


def test_records_have_the_documented_keys_and_epochs(finished):
    out, records, _, _ = finished
    assert [(r["epoch"], r["split"]) for r in records] == [(e, s) for e in range(4) for s in ("train", "val", "test")]
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"] == small().to_dict() and meta["model"]["feature_dim"] == 32
    assert meta["dataset"]["sizes"] == {"train": 216, "val": 24, "test": 120}
    assert meta["dataset"]["class_counts"] == {"train": [54] * 4, "val": [6] * 4, "test": [30] * 4}
    assert "torch" in json.dumps(meta["environment"])


@pytest.mark.parametrize("split", ["train", "test"])
def test_streaming_nc_metrics_equal_nc_metrics_on_the_stored_features(finished, split):
    _, records, ds, model = finished
    x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
    with torch.no_grad():
        z, h = model(x, return_features=True)
    ref = nc_metrics(h, y, model.classifier.weight.detach(), model.classifier.bias.detach())
    rec = [r for r in records if r["split"] == split][-1]
    for key in ("nc1", "nc2_h", "nc2_w", "nc3", "nc4", "nc2_h_equinorm", "nc2_w_equiangular"):
        assert rec[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    # logit statistics, written out directly
    Z = z.double()
    p = torch.softmax(Z, 1)
    onehot = torch.nn.functional.one_hot(y, 4).bool()
    assert rec["error"] == pytest.approx(float((Z.argmax(1) != y).double().mean()), abs=0)
    assert rec["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(Z, y)), rel=1e-9)
    assert rec["p_true"] == pytest.approx(float(p[onehot].mean()), rel=1e-9)
    assert rec["p_off"] == pytest.approx(float(p[~onehot].mean()), rel=1e-9)
    gap = np.mean([float(Z[i, y[i]] - (Z[i].sum() - Z[i, y[i]]) / 3) for i in range(len(y))])
    assert rec["logit_gap"] == pytest.approx(gap, rel=1e-9)
    means = torch.stack([h[y == k].double().mean(0) for k in range(4)])
    assert rec["h_norm"] == pytest.approx(float((means - means.mean(0)).norm(dim=1).mean()), rel=1e-9)
    assert rec["w_norm"] == pytest.approx(float(model.classifier.weight.detach().double().norm(dim=1).mean()), rel=1e-9)


def _ece_loop(Z, y, n_bins=15, T=1.0):
    p = np.exp(Z / T - (Z / T).max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    conf, pred = p.max(1), Z.argmax(1)
    total = 0.0
    for j in range(n_bins):
        lo, hi = j / n_bins, (j + 1) / n_bins
        inside = [i for i in range(len(y)) if (lo < conf[i] <= hi) or (j == 0 and conf[i] == 0)]
        if inside:
            total += len(inside) / len(y) * abs(np.mean([pred[i] == y[i] for i in inside]) - np.mean(conf[inside]))
    return total


def test_ece_and_temperature_scaling_in_the_records(finished):
    _, records, ds, model = finished
    with torch.no_grad():
        Z = model(ds.x_test).double().numpy()
    rec = [r for r in records if r["split"] == "test"][-1]
    assert rec["ece"] == pytest.approx(_ece_loop(Z, ds.y_test.numpy()), abs=1e-12)
    assert rec["ece_ts"] == pytest.approx(_ece_loop(Z, ds.y_test.numpy(), T=rec["temperature"]), abs=1e-12)
    assert sum(rec["reliability"]["count"]) == 120
    with torch.no_grad():
        Zv = model(ds.x_val).double()
    val = [r for r in records if r["split"] == "val"]
    # fitted on the val split (an independent fit on the rebuilt model's val logits), not on test
    assert val[-1]["temperature"] == rec["temperature"]
    assert rec["temperature"] == pytest.approx(fit_temperature(Zv, ds.y_val), rel=1e-6)
    nll_at = lambda T: float(torch.nn.functional.cross_entropy(Zv / T, ds.y_val))  # noqa: E731
    assert val[-1]["nll"] == pytest.approx(nll_at(1.0), rel=1e-9)
    assert val[-1]["nll_ts"] == pytest.approx(nll_at(rec["temperature"]), rel=1e-9) and \
        val[-1]["nll_ts"] < val[-1]["nll"]  # temperature scaling lowers the NLL on the val split


def test_record_logit_statistics_are_those_of_metrics_logits(finished):
    """evaluate's logit statistics are logit_statistics of the logits it returns, and both equal a
    recomputation with plain torch ops (p_off as the mean of the off-class probabilities)."""
    _, records, ds, model = finished
    rec, Z, labels = evaluate(model, ds.x_train, ds.y_train, 4, 0.0)
    assert Z.dtype == torch.float64 and Z.shape == (216, 4) and torch.equal(labels, ds.y_train)
    for key, value in logit_statistics(Z, labels).items():
        assert rec[key] == value, key
    p = torch.exp(Z - Z.logsumexp(1, keepdim=True))  # (N, K)
    true = torch.zeros_like(Z, dtype=torch.bool)
    true[torch.arange(len(labels)), labels] = True
    assert rec["p_true"] == pytest.approx(float(p[true].mean()), rel=1e-12)
    assert rec["p_off"] == pytest.approx(float(p[~true].view(-1, 3).mean(1).mean()), rel=1e-12)
    gap = Z[true] - Z[~true].view(-1, 3).mean(1)  # (N,)
    assert rec["logit_gap"] == pytest.approx(float(gap.mean()), rel=1e-12)
    last = [r for r in records if r["split"] == "train"][-1]  # the training loop's record: the same numbers
    for key in ("logit_gap", "p_true", "p_off", "loss", "error"):
        assert last[key] == pytest.approx(rec[key], rel=1e-12), key


def test_noise_records_are_on_every_test_record_only(finished):
    _, records, _, _ = finished
    assert NOISE_KEYS == ("error_noise_0.1", "error_noise_0.25", "error_noise_0.5") and NOISE_SIGMAS == (0.1, 0.25, 0.5)
    for r in records:
        if r["split"] == "test":
            assert set(TEST_RECORD_KEYS) <= set(r) and all(0 <= r[k] <= 1 for k in NOISE_KEYS), r["epoch"]
        else:
            assert not set(TEST_RECORD_KEYS) & set(r), (r["epoch"], r["split"])
    assert not set(TEST_RECORD_KEYS) & set(RECORD_KEYS)


def test_noise_records_equal_an_independent_computation_and_sigma_0_gives_the_error(finished):
    """The noise written out for the whole test split, added, and the network's errors counted by hand;
    the same numbers whatever the evaluation batch size, and 0 noise is the clean error."""
    _, records, ds, model = finished
    last = [r for r in records if r["split"] == "test"][-1]
    x, y = ds.x_test, ds.y_test
    for key, sigma in zip(NOISE_KEYS, NOISE_SIGMAS):
        eps = input_noise(tuple(x.shape[1:]), 0, len(y), sigma, 0)  # (120, 16)
        with torch.no_grad():
            wrong = (model(x + sigma * eps).argmax(1) != y).sum().item()
        assert last[key] == wrong / len(y), key
    assert noise_errors(model, x, y, NOISE_SIGMAS, batch_size=7) == {k: last[k] for k in NOISE_KEYS}
    rec, _, _ = evaluate(model, x, y, 4, 0.0, noise=(0.0,))
    assert rec["error_noise_0"] == rec["error"] == last["error"]
    assert set(NOISE_KEYS).isdisjoint(evaluate(model, x, y, 4, 0.0)[0])  # without noise levels, no noise keys


def test_input_noise_is_a_function_of_the_seed_the_level_and_the_sample_index():
    whole = input_noise((3, 4), 0, 700, 0.25, 5)  # (700, 3, 4), three blocks of 256
    assert whole.shape == (700, 3, 4) and whole.dtype == torch.float32
    assert torch.equal(input_noise((3, 4), 250, 530, 0.25, 5), whole[250:530])  # any slice: the same rows
    assert torch.equal(torch.cat([input_noise((3, 4), a, b, 0.25, 5) for a, b in ((0, 11), (11, 700))]), whole)
    assert input_noise((3, 4), 9, 9, 0.25, 5).shape == (0, 3, 4)
    for other in (input_noise((3, 4), 0, 700, 0.5, 5), input_noise((3, 4), 0, 700, 0.25, 6)):  # level, data seed
        assert not torch.equal(other, whole)
    assert abs(whole.double().mean().item()) < 0.05 and abs(whole.double().std().item() - 1) < 0.05


def test_more_input_noise_gives_more_test_errors_on_a_trained_network(tmp_path):
    """A weak check that the noise reaches the network: trained for 15 epochs, the test error averaged
    over the records from epoch 5 is no lower under noise (to one sample of 120: each level has its own
    draw) and clearly higher at sigma 0.5."""
    train(small(epochs=15), tmp_path, progress=False)
    tests = [r for r in read_records(tmp_path) if r["split"] == "test" and r["epoch"] >= 5]
    clean, *noisy = [np.mean([r[k] for r in tests]) for k in ("error", *NOISE_KEYS)]
    assert min(noisy) >= clean - 1 / 120 and noisy[-1] > clean + 0.02, (clean, noisy)


def test_progress_sidecar_matches_the_checkpoint_and_records_read_without_torch(finished, tmp_path):
    out, records, _, _ = finished
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    progress = json.loads((out / "progress.json").read_text())
    assert progress == {"epoch": state["epoch"], "records_bytes": state["records_bytes"]} and progress["epoch"] == 3
    assert progress["records_bytes"] == (out / "metrics.jsonl").stat().st_size
    code = ("import json, sys, ufm.records.runs as r; recs = r.read_records(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(json.dumps(recs))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(json.dumps(records))
    # a folder written before progress.json existed: its checkpoint says what is covered
    old = tmp_path / "old"
    shutil.copytree(out, old)
    (old / "progress.json").unlink()
    with open(old / "metrics.jsonl", "ab") as fh:
        fh.write(b'{"epoch": 4, "spl')
    assert read_records(old) == records


def test_progress_sidecar_when_checkpointing_every_few_epochs_and_on_resume(tmp_path):
    from ufm.records.runs import begin_records

    train(small(epochs=3, checkpoint_every=2), tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert json.loads((tmp_path / "progress.json").read_text()) == {"epoch": 3,
                                                                    "records_bytes": state["records_bytes"]}
    # a record after the checkpoint and a stale sidecar behind it (a crash between the two writes):
    # the reader keeps what the sidecar covers, the resume what the checkpoint covers
    first = [r for r in read_records(tmp_path) if r["epoch"] <= 2]
    covered = sum(len(line) for line in (tmp_path / "metrics.jsonl").read_bytes().splitlines(keepends=True)[:9])
    (tmp_path / "progress.json").write_text(json.dumps({"epoch": 2, "records_bytes": covered}))
    with open(tmp_path / "metrics.jsonl", "ab") as fh:
        fh.write(b'{"epoch": 4, "spl')
    assert read_records(tmp_path) == first
    assert train(small(epochs=3, checkpoint_every=2), tmp_path, progress=False)["resumed_from"] == 3
    assert json.loads((tmp_path / "progress.json").read_text())["records_bytes"] == state["records_bytes"]
    assert len(read_records(tmp_path)) == 12
    # a new run's sidecar covers nothing before its first checkpoint
    begin_records(tmp_path)
    assert read_records(tmp_path) == [] and (tmp_path / "metrics.jsonl").read_bytes() == b""


def test_train_config_from_toml_with_overrides(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('dataset = "gaussian"\nepochs = 7\nlr = 0.2\n'
                    'dataset_options = { num_classes = 3, dim = 5 }\nmodel_options = { width = 8 }\n')
    cfg = TrainConfig.from_toml(toml, {"epochs": 2, "alpha": 0.1, "dataset_options": {"dim": 9, "noise": 0.5},
                                       "model_options": {"depth": 1}})
    assert (cfg.dataset, cfg.epochs, cfg.lr, cfg.alpha) == ("gaussian", 2, 0.2, 0.1)  # flags win, the rest stays
    assert cfg.dataset_options == {"num_classes": 3, "dim": 9, "noise": 0.5}  # merged key by key
    assert cfg.model_options == {"width": 8, "depth": 1}
    assert TrainConfig.from_toml(toml) == TrainConfig.from_toml(toml, {})
    assert TrainConfig.from_toml(None, {"epochs": 4}) == TrainConfig(epochs=4)
    with pytest.raises(InvalidParameterError, match=r"Unknown key 'widht' in .*run.toml"):
        TrainConfig.from_toml(toml, {"widht": 3})
    with pytest.raises(InvalidParameterError, match="'epochs' parameter of TrainConfig must be an int"):
        TrainConfig.from_toml(toml, {"epochs": 0})


def test_learning_rate_is_a_pure_function_of_the_epoch():
    cfg = TrainConfig(lr=0.05, milestones=[150, 350], epochs=800)
    assert [cfg.learning_rate(e) for e in (1, 150, 151, 350, 351, 800)] == pytest.approx(
        [0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005])
    cos = TrainConfig(lr=0.1, schedule="cosine", epochs=10)
    assert cos.learning_rate(1) == 0.1 and cos.learning_rate(6) == pytest.approx(0.05)
    assert TrainConfig(epochs=10, eval_every=4).record_epochs() == [0, 4, 8, 10]


def test_same_seed_same_records_and_other_seed_differs(tmp_path):
    a, b, c = (train(small(seed=s), tmp_path / n, progress=False) for s, n in ((0, "a"), (0, "b"), (1, "c")))
    assert (tmp_path / "a" / "metrics.jsonl").read_bytes() == (tmp_path / "b" / "metrics.jsonl").read_bytes()
    assert a["final"]["train"]["nc1"] != c["final"]["train"]["nc1"]
    assert set(NOISE_KEYS) <= set(a["final"]["test"])  # the noise records are among the identical bytes


def test_kill_9_and_resume_gives_the_records_of_an_uninterrupted_run(tmp_path):
    args = [sys.executable, "-m", "ufm", "train", *CLI_DATA, "--epochs", "60", "--quiet"]
    subprocess.run(args + ["--out", str(tmp_path / "whole")], check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a few epochs are checkpointed, while training goes on
        if (killed / "checkpoint.pt").is_file() and len(read_records(killed)) >= 3 * 4:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(read_records(killed)) // 3 - 1
    assert 3 <= done < 60, f"the kill came at epoch {done}; the test needs it mid-run"
    resumed = subprocess.run(args + ["--out", str(killed)], check=True, capture_output=True, text=True)
    assert "resuming after epoch" in resumed.stderr
    assert (killed / "metrics.jsonl").read_bytes() == (tmp_path / "whole" / "metrics.jsonl").read_bytes()
    tests = [r for r in read_records(killed) if r["split"] == "test"]  # the noise records resume too
    assert len(tests) == 61 and all(set(NOISE_KEYS) <= set(r) for r in tests)


def test_a_torn_last_line_and_a_record_after_the_checkpoint_are_dropped(tmp_path):
    cfg = small(epochs=2)
    train(cfg, tmp_path / "a", progress=False)
    whole = (tmp_path / "a" / "metrics.jsonl").read_bytes()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    # an epoch that finished after its checkpoint, then a half-written line
    with open(tmp_path / "b" / "metrics.jsonl", "ab") as fh:
        fh.write(whole.splitlines(keepends=True)[-1] + b'{"epoch": 3, "spl')
    assert read_records(tmp_path / "b") == read_records(tmp_path / "a")
    train(cfg, tmp_path / "b", progress=False)  # finished: resumes, truncates, trains nothing
    assert (tmp_path / "b" / "metrics.jsonl").read_bytes() == whole


@pytest.mark.parametrize("batch_size", [32, 216])  # 216: full batch, the weights blow up in the epoch's last step
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path, batch_size):
    import re

    with pytest.raises(TrainingDivergedError) as err:
        train(small(lr=1e12, momentum=0.0, batch_size=batch_size), tmp_path, progress=False)
    m = re.search(r"became (nan|inf|non-finite) in epoch (\d+) .* last good checkpoint \(epoch (\d+)\)", str(err.value))
    assert m and int(m.group(3)) == int(m.group(2)) - 1, str(err.value)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == int(m.group(3)) <= 1
    assert [r["epoch"] for r in read_records(tmp_path)] == [e for e in range(state["epoch"] + 1) for _ in range(3)]
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_resuming_from_the_initial_checkpoint_does_not_record_the_initialization_twice(tmp_path):
    cfg = small(lr=1e12, momentum=0.0, batch_size=216, epochs=5, checkpoint_every=5)  # diverges before epoch 5
    for _ in range(2):
        with pytest.raises(TrainingDivergedError, match=r"last good checkpoint \(epoch 0\)"):
            train(cfg, tmp_path, progress=False)
    assert [(r["epoch"], r["split"]) for r in read_records(tmp_path)] == [(0, "train"), (0, "val"), (0, "test")]


def test_divergence_names_the_last_checkpoint_when_checkpointing_every_few_epochs(tmp_path, monkeypatch):
    import ufm.dnn.training as tr

    calls = {"n": 0}
    real = tr.get_loss("label_smoothing")

    def poisoned(z, y, alpha):  # finite for 3 epochs of 7 training steps, then NaN (evaluation is not counted)
        calls["n"] += z.requires_grad
        return real(z, y, alpha) * (float("nan") if calls["n"] > 21 else 1.0)

    monkeypatch.setattr(tr, "get_loss", lambda name: poisoned)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 4 .* last good checkpoint \(epoch 2\)"):
        train(small(epochs=6, checkpoint_every=2), tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 2


def test_a_run_folder_in_use_is_refused(tmp_path):
    from ufm.records.runs import FolderLock

    with FolderLock(tmp_path, True):
        with pytest.raises(RunMismatchError, match="is in use by another process"):
            train(small(epochs=1), tmp_path, progress=False)
    train(small(epochs=1), tmp_path, progress=False)  # free again


def test_a_folder_with_another_config_refuses_to_resume(cli, tmp_path, capsys):
    train(small(epochs=1), tmp_path, progress=False)
    with pytest.raises(RunMismatchError, match=r"different configuration \(alpha: folder has 0.0, this run 0.2; "
                                               r"lr: folder has 0.05, this run 0.1\)"):
        train(small(epochs=1, lr=0.1, alpha=0.2), tmp_path, progress=False)
    code, _, err = cli("train", "--out", str(tmp_path), *CLI_DATA, "--epochs", "2")
    assert code == 2 and err.count("\n") == 1 and "epochs: folder has 1, this run 2" in err


@pytest.mark.parametrize("flags, match", [
    (["--alpha", "1.5"], r"--alpha must be a float in the range \[0, 1\)\. Got 1.5 instead"),
    (["--epochs", "0"], r"--epochs must be an int in the range \[1, inf\)\. Got 0 instead"),
    (["--batch-size", "-3"], r"--batch-size must be an int in the range \[1, inf\)"),
    (["--lr", "0"], r"--lr must be a float in the range \(0, inf\)"),
    (["--dataset", "imagenet"], r"--dataset must be a str among \{'cifar10', 'cifar100', 'digits', 'fashion-mnist'"),
    (["--model", "vgg"], r"--model must be a str among \{'cnn', 'mlp', 'resnet18', 'resnet50'\}"),
    (["--loss", "focal"], r"--loss must be a str among \{'label_smoothing'\}"),
    (["--schedule", "step"], r"--schedule must be a str among \{'constant', 'cosine', 'multistep'\}"),
    (["--milestones", "10,x"], r"--milestones must be comma-separated ints"),
    (["--epochs", "two"], r"--epochs: must be an int\. Got 'two' instead"),
    (["--model-option", "depht=3"], r"Unknown option 'depht' of build_model for model 'mlp'"),
    (["--dataset-option", "num_classes=1"], r"ufm train: error: The 'num_classes' parameter of load_dataset"),
])
def test_bad_input_exits_2_with_one_line_naming_the_flag(cli, tmp_path, capsys, flags, match):
    import re

    code, out, err = cli("train", "--out", str(tmp_path / "r"), *CLI_DATA, *flags)
    assert code == 2 and err.count("\n") == 1 and re.search(match, err), err
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_missing_dataset_fails_at_once_saying_where_it_looked(cli, tmp_path, capsys, monkeypatch):
    import ufm.dnn.data.idx as idx

    monkeypatch.setattr(idx, "FASHION_MNIST_DIRS", ())
    monkeypatch.delenv("UFM_DATA", raising=False)
    code, _, err = cli("train", "--out", str(tmp_path / "r"), "--dataset", "fashion-mnist",
                       "--data-dir", str(tmp_path / "empty"))
    assert code == 2 and err.count("\n") == 1 and str(tmp_path / "empty") in err and "dataset-fashion-mnist" in err


def test_ufm_style_run_on_gaussian_data_approaches_the_closed_form(tmp_path):
    """Full-batch GD with momentum, features unconstrained in sign (last hidden layer linear),
    lambda_W = n lambda_H; the closed form's norms, logit gap and p_true are approached."""
    cfg = TrainConfig(dataset="gaussian", dataset_options=dict(num_classes=4, dim=16, train_size_per_class=100,
                                                               test_size_per_class=50),
                      val_fraction=0.0, model="mlp", model_options=dict(width=32, depth=2, feature_relu=False),
                      mode="ufm", lambda_w=5e-3, lambda_h=5e-5, alpha=0.1, epochs=1000, batch_size=400, lr=0.4,
                      schedule="constant", eval_every=250)
    train(cfg, tmp_path, progress=False)
    [run_] = validate([tmp_path])["ufm_runs"]
    cf = closed_form_arrays(0.1, 4, 100, 5e-3, 5e-5)
    assert not cf.trivial
    for check in run_["checks"]:
        assert check["predicted"] == pytest.approx(float(getattr(cf, check["quantity"])), rel=1e-12)
        errors = [p["rel_error"] for p in check["curve"]]
        assert errors[-1] < UFM_RTOL and errors[-1] < errors[1], (check["quantity"], errors)
        assert check["holds"]


def _run_group(cmd, timeout, **kw):
    """Run ``cmd`` in its own process group; on timeout kill the whole group (torchrun's workers too)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{cmd[:6]} did not finish in {timeout} s")
    return proc.returncode, out, err


DDP_DATA = ["--dataset", "gaussian", "--dataset-option", "num_classes=3", "--dataset-option", "dim=8",
            "--dataset-option", "train_size_per_class=41", "--dataset-option", "test_size_per_class=7",
            "--model-option", "width=16", "--model-option", "depth=2"]


def test_ddp_with_gloo_on_two_processes_equals_one_process(tmp_path):
    """111 training samples (odd, not a multiple of the batch either): every global minibatch is the
    single-process one, so the records agree to rounding."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available in this torch build")
    args = ["-m", "ufm", "train", *DDP_DATA, "--epochs", "3", "--batch-size", "16", "--dtype", "float64",
            "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code, _, err = _run_group([sys.executable, *args, "--out", str(tmp_path / "one")], 120, env=env)
    assert code == 0, err[-2000:]
    code, _, err = _run_group([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                               *args, "--out", str(tmp_path / "two")], 120, env=env)
    assert code == 0, err[-2000:]
    one, two = read_records(tmp_path / "one"), read_records(tmp_path / "two")
    meta = json.loads((tmp_path / "two" / "config.json").read_text())
    assert meta["world_size"] == 2 and meta["dataset"]["sizes"]["train"] == 111
    assert len(one) == len(two) == 12
    for a, b in zip(one, two):
        assert (a["epoch"], a["split"], a["n"]) == (b["epoch"], b["split"], b["n"])
        for key in ("loss", "error", "nc1", "nc2_h", "nc2_w", "nc3", "nc4", "w_norm", "h_norm", "ece", "p_true"):
            assert b[key] == pytest.approx(a[key], rel=1e-9, abs=1e-12), (a["epoch"], a["split"], key)
        for key in NOISE_KEYS if a["split"] == "test" else ():  # a sample's noise does not depend on its process
            assert b[key] == a[key], (a["epoch"], key)


def test_ddp_with_batchnorm_and_an_empty_evaluation_shard_finishes(tmp_path):
    """3 processes, 3 val samples (one each) and 6 test samples, BatchNorm buffers: no collective is left
    unmatched (each process's BatchNorm sees its own share, so records are not compared with one process)."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available in this torch build")
    args = ["-m", "ufm", "train", "--dataset", "gaussian", "--dataset-option", "num_classes=2",
            "--dataset-option", "dim=4", "--dataset-option", "train_size_per_class=10",
            "--dataset-option", "test_size_per_class=1", "--model-option", "width=8", "--model-option", "depth=1",
            "--model-option", "batchnorm=true", "--epochs", "2", "--batch-size", "6", "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code, _, err = _run_group([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3",
                               *args, "--out", str(tmp_path)], 120, env=env)
    assert code == 0, err[-2000:]
    records = read_records(tmp_path)
    assert len(records) == 9 and [r["n"] for r in records[:3]] == [18, 2, 2]
    assert all(math.isfinite(r["loss"]) for r in records)
