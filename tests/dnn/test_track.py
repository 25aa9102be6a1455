"""The Tracker: the records of ``ufm train`` for any network, against ufm train itself and against
independent computations; plain nn.Modules through forward hooks; its folder read by ufm plot,
validate and claims; bad arguments."""
import json
import pathlib

import pytest
import torch
from torch import nn

import ufm
from ufm._core.io import to_jsonable
from ufm import InvalidParameterError, nc_metrics
from ufm.dnn.config import TrainConfig
from ufm.dnn.data import load_dataset
from ufm.dnn.evaluate import FeatureProbe, evaluate
from ufm.dnn.models import build_model
from ufm.dnn.track import CONFIG_KEYS, Tracker
from ufm.dnn.training import RECORD_KEYS, TEST_RECORD_KEYS, train
from ufm.records.runs import RunMismatchError, read_records


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_per_class=20, test_per_class=10)


def _cnn(seed: int = 0) -> nn.Sequential:
    """A plain nn.Sequential for 1x8x8 images: features are the output of module '5' (d = 16),
    the input of the classifier '6'."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10))


# -- the same records as ufm train --------------------------------------------------------------

def test_tracker_records_equal_those_of_ufm_train(digits, tmp_path):
    """Replaying the initialization and the final checkpoint of a ufm train run through the
    Tracker gives the run's records, every field equal."""
    cfg = TrainConfig(dataset="digits", train_per_class=20, test_per_class=10, model="cnn",
                      model_options={"channels": 4, "width": 16}, alpha=0.1, epochs=1, batch_size=32, lr=0.05,
                      seed=3, data_seed=0, device="cpu")
    train(cfg, tmp_path / "run", progress=False, data=digits)
    expected = read_records(tmp_path / "run")
    torch.manual_seed(cfg.seed)  # the initialization, as ufm train builds it
    model = build_model("cnn", input_shape=digits.input_shape, num_classes=10, channels=4, width=16)
    got = []
    with Tracker(model, tmp_path / "tracked", data=digits, alpha=cfg.alpha, seed=cfg.seed) as tracker:
        got += tracker.record(0, lr=cfg.learning_rate(1)).values()
        model.load_state_dict(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"])
        got += tracker.record(1, lr=cfg.learning_rate(1)).values()
    assert len(got) == len(expected) == 6
    for mine, theirs in zip(got, expected):
        assert set(mine) == set(theirs) and set(RECORD_KEYS) <= set(mine)
        mine = to_jsonable(mine)  # the reliability bins as lists, as metrics.jsonl holds them
        for key in theirs:
            assert mine[key] == theirs[key], (mine["epoch"], mine["split"], key)
    assert read_records(tmp_path / "tracked") == expected  # written as ufm train writes them
    assert set(TEST_RECORD_KEYS) <= set(got[-1])
    meta, held = (json.loads((tmp_path / f / "config.json").read_text()) for f in ("tracked", "run"))
    assert list(meta["config"]) == list(CONFIG_KEYS)
    assert {k: meta["config"][k] for k in ("dataset", "alpha", "seed", "loss", "mode")} == \
        {k: held["config"][k] for k in ("dataset", "alpha", "seed", "loss", "mode")}
    assert meta["dataset"] == held["dataset"]
    assert {k: meta["model"][k] for k in ("parameters", "feature_dim", "num_classes")} == \
        {k: held["model"][k] for k in ("parameters", "feature_dim", "num_classes")}


# -- plain modules ------------------------------------------------------------------------------

def _reference(net: nn.Sequential, x, y, alpha: float) -> dict:
    """Record fields written out directly from the network's features (module '5') and logits."""
    net.eval()
    with torch.no_grad():
        H, Z = net[:6](x), net(x).double()  # (N, 16), (N, 10)
    W, b = net[6].weight.detach(), net[6].bias.detach()
    K = 10
    ref = nc_metrics(H, y, W, b)
    onehot = nn.functional.one_hot(y, K).bool()
    z_true = Z[onehot]
    p = torch.softmax(Z, 1)
    means = torch.stack([H[y == k].double().mean(0) for k in range(K)])  # (K, d)
    conf, pred = p.max(1)
    edges = torch.linspace(0, 1, 16, dtype=torch.float64)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            gap = (pred[inside] == y[inside]).double().mean() - conf[inside].mean()  # accuracy - confidence
            ece += float(inside.double().mean() * gap.abs())
    ref.update(logit_gap=float((z_true - (Z.sum(1) - z_true) / (K - 1)).mean()), p_true=float(p[onehot].mean()),
               p_off=float(((1 - p[onehot]) / (K - 1)).mean()), error=float((Z.argmax(1) != y).double().mean()),
               loss=float(nn.functional.cross_entropy(Z, y, label_smoothing=alpha)),
               w_norm=float(W.double().norm(dim=1).mean()), b_norm=float(b.double().norm()),
               h_norm=float((means - means.mean(0)).norm(dim=1).mean()), ece=ece, n=len(y))
    return ref


def test_tracker_on_a_plain_sequential_with_a_hook(digits, tmp_path):
    net = _cnn()
    with Tracker(net, tmp_path / "run", data=digits, classifier="6", features="5", alpha=0.1) as tracker:
        got = tracker.record(0)
    assert net.training  # the model's mode is restored
    for split, (x, y) in (("train", (digits.x_train, digits.y_train)), ("test", (digits.x_test, digits.y_test))):
        ref = _reference(net, x, y, 0.1)
        for key, value in ref.items():
            assert got[split][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (split, key)


@pytest.mark.parametrize("where", [dict(features="5"), dict(features="6", features_at="input"), dict(),
                                   dict(features="callable"), dict(features="module")])
def test_every_way_of_naming_the_features_gives_the_same_record(digits, where):
    net = _cnn(1)
    classifier = "6"
    if where.get("features") == "callable":
        where = dict(features=lambda x: net[:6](x))
    elif where.get("features") == "module":  # the submodules themselves instead of their names
        where, classifier = dict(features=net[5]), net[6]
    x, y = digits.x_train, digits.y_train
    base, _, _ = evaluate(FeatureProbe(net, "6", "5"), x, y, 10, 0.0)
    rec, _, _ = evaluate(FeatureProbe(net, classifier, **where), x, y, 10, 0.0)
    assert rec == base and base["n"] == len(y)


class _Plain(nn.Module):
    """A plain module: no ``classifier``, no ``feature_dim``, no ``return_features``."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Tanh())
        self.head = nn.Linear(12, 10, bias=False)

    def forward(self, x):
        return self.head(self.body(x))


def test_evaluate_on_a_plain_module(digits):
    """A module with no classifier attribute: the classifier input of its head (given by name), a
    bias-free head read as b = 0."""
    torch.manual_seed(0)
    net = _Plain()
    x, y = digits.x_test, digits.y_test
    rec, Z, labels = evaluate(FeatureProbe(net, classifier="head"), x, y, 10, 0.0)
    with torch.no_grad():
        H = net.body(x)
    W = net.head.weight.detach()
    ref = nc_metrics(H, y, W, torch.zeros(10))
    for key in ("nc1", "nc2_h", "nc2_w", "nc3", "nc4"):
        assert rec[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    assert rec["b_norm"] == 0.0 and torch.equal(labels, y)
    assert torch.allclose(Z, (H @ W.T).double(), rtol=1e-6, atol=1e-6)
    # a network whose only nn.Linear is its classifier needs no name
    seq = nn.Sequential(nn.Flatten(), nn.Tanh(), nn.Linear(64, 10))
    rec, _, _ = evaluate(seq, x, y, 10, 0.0)
    assert rec["nc1"] == pytest.approx(nc_metrics(torch.tanh(x.flatten(1)), y)["nc1"], rel=1e-9)


# -- the folder read by the command line --------------------------------------------------------

def _tracked(out, digits, alpha, **kw):
    net = _cnn()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    with Tracker(net, out, data=digits, classifier="6", alpha=alpha, seed=0, dataset="digits-small", **kw) as t:
        t.record(0, lr=0.1)
        for epoch in (1, 2):
            for s in range(0, len(digits.y_train), 32):
                xb, yb = digits.x_train[s:s + 32], digits.y_train[s:s + 32]
                loss = nn.functional.cross_entropy(net(xb), yb, label_smoothing=alpha)
                opt.zero_grad()
                loss.backward()
                opt.step()
            t.record(epoch, lr=0.1)
    return out


def test_the_folder_is_read_by_plot_validate_and_claims(cli, digits, tmp_path):
    ce, ls = _tracked(tmp_path / "ce", digits, 0.0), _tracked(tmp_path / "ls", digits, 0.1)
    code, out, err = cli("validate", ce, ls)
    assert code in (0, 1), err  # 1: a check that does not hold is a finding, not an error
    assert "Runs compared across alpha** (2 runs, alphas 0, 0.1, seeds 0)" in out
    assert "LS collapses more" in out
    code, out, err = cli("claims", ce, ls, "--json")
    assert code == 0, err
    claims = {c["id"]: c for c in json.loads(out)}
    assert str(ce) in json.dumps(claims["calibration"]["evidence"])
    code, out, err = cli("plot", ls)
    assert code == 0, err
    paths = [pathlib.Path(p) for p in out.split()]
    assert tmp_path / "ls" / "nc_vs_epoch.png" in paths and all(p.is_file() for p in paths)
    assert "| 0.1 |" in (tmp_path / "ls" / "report.md").read_text()


def test_a_ufm_style_run_is_checked_against_the_closed_form(cli, digits, tmp_path):
    run = _tracked(tmp_path / "ufm", digits, 0.1, mode="ufm", lambda_w=5e-4, lambda_h=5e-4)
    code, out, err = cli("validate", run, "--json")
    assert code in (0, 1), err
    (checked,) = json.loads(out)["ufm_runs"]
    assert checked["num_classes"] == 10 and checked["per_class"] == 18.0 and checked["feature_dim"] == 16
    last = read_records(run)[-3]  # epoch 2, train
    assert last["split"] == "train"
    assert {c["quantity"]: c["measured"] for c in checked["checks"]}["w_norm"] == last["w_norm"]


# -- bad arguments ------------------------------------------------------------------------------

def test_unknown_layer_and_non_linear_classifier_name_the_parameter_and_the_valid_names(digits, tmp_path):
    net = _cnn()
    with pytest.raises(InvalidParameterError, match=r"'features'.*'fc'.*submodules are '0', '1', '2'") as e:
        Tracker(net, tmp_path / "a", data=digits, classifier="6", features="fc")
    assert e.value.param == "features"
    with pytest.raises(InvalidParameterError, match=r"'classifier'.*got '5'.*ReLU.*nn.Linear submodules are '4', '6'"):
        Tracker(net, tmp_path / "b", data=digits, classifier="5")
    with pytest.raises(InvalidParameterError, match=r"'classifier'.*2 nn.Linear submodules.*'4', '6'"):
        evaluate(net, digits.x_test, digits.y_test, 10, 0.0)
    with pytest.raises(InvalidParameterError, match=r"'features'.*16 columns.*Got \(\d+, 8, 8, 8\)"):
        evaluate(FeatureProbe(net, "6", "0"), digits.x_test, digits.y_test, 10, 0.0)
    with pytest.raises(InvalidParameterError, match="'features_at'"):
        FeatureProbe(net, "6", "5", features_at="middle")
    with pytest.raises(InvalidParameterError, match="'num_classes'.*must be 10"):
        evaluate(FeatureProbe(net, "6"), digits.x_test, digits.y_test, 4, 0.0)
    with pytest.raises(InvalidParameterError, match="'model'"):
        FeatureProbe(lambda x: x)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before anything is written


@pytest.mark.parametrize("kw, param", [(dict(alpha=1.0), "alpha"), (dict(loss="hinge"), "loss"),
                                       (dict(seed=-1), "seed"), (dict(mode="ufm"), "lambda_w"),
                                       (dict(n_bins=0), "n_bins"), (dict(dataset=3), "dataset")])
def test_bad_settings_are_refused(digits, tmp_path, kw, param):
    with pytest.raises(InvalidParameterError) as e:
        Tracker(_cnn(), tmp_path, data=digits, classifier="6", **kw)
    assert e.value.param == param and f"'{param}'" in str(e.value)


def test_bad_splits_epochs_and_folders_are_refused(digits, tmp_path):
    net = _cnn()
    x, y = digits.x_train, digits.y_train
    with pytest.raises(InvalidParameterError, match=r"'test'.*labels in \[0, 10\).*Got labels in \[10, 10\]"):
        Tracker(net, tmp_path / "a", classifier="6", train=(x, y), test=(x, y.clone().fill_(10)))
    with pytest.raises(InvalidParameterError, match="'train'"):
        Tracker(net, tmp_path / "a", classifier="6", train=(x, y.float()))
    with pytest.raises(InvalidParameterError, match="'train'"):
        Tracker(net, tmp_path / "a", classifier="6")
    tracker = Tracker(net, tmp_path / "run", classifier="6", train=(x, y))
    tracker.record(0)
    with pytest.raises(InvalidParameterError, match="'epoch'"):
        tracker.record(0)  # an epoch must exceed the last one
    with pytest.raises(RunMismatchError, match="in use"):
        Tracker(net, tmp_path / "run", classifier="6", train=(x, y), overwrite=True)  # locked while open
    tracker.close()
    with pytest.raises(RuntimeError, match="closed"):
        tracker.record(1)
    with pytest.raises(InvalidParameterError, match="'train'.*empty"):
        Tracker(net, tmp_path / "a", classifier="6", train=(x[:0], y[:0]))
    with pytest.raises(RunMismatchError, match="overwrite=True"):
        Tracker(net, tmp_path / "run", classifier="6", train=(x, y))
    assert len(read_records(tmp_path / "run")) == 1  # the refused tracker left the records alone
    with Tracker(net, tmp_path / "run", classifier="6", train=(x, y), overwrite=True):
        assert read_records(tmp_path / "run") == []  # overwrite starts the records anew


def test_tracker_and_logit_helpers_are_public():
    from ufm.metrics import logits

    assert ufm.Tracker is Tracker
    assert ufm.logit_statistics is logits.logit_statistics and ufm.norm_statistics is logits.norm_statistics


def test_a_folder_holding_the_users_own_files_is_never_touched(digits, tmp_path):
    """A home-made training loop's own metrics.jsonl and checkpoint.pt are not a ufm run: refused,
    even with overwrite, and left as they were."""
    net, (x, y) = _cnn(), (digits.x_train, digits.y_train)
    (tmp_path / "metrics.jsonl").write_text("my own data\n")
    (tmp_path / "checkpoint.pt").write_bytes(b"my weights")
    for overwrite in (False, True):
        with pytest.raises(RunMismatchError, match=r"files that are not a run's \(checkpoint.pt, metrics.jsonl\)"):
            Tracker(net, tmp_path, classifier="6", train=(x, y), overwrite=overwrite)
    assert (tmp_path / "metrics.jsonl").read_text() == "my own data\n"
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"my weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]  # no lock, no config


def test_a_half_written_record_line_is_dropped_before_the_next(digits, tmp_path):
    net, (x, y) = _cnn(), (digits.x_train[:40], digits.y_train[:40])
    with Tracker(net, tmp_path / "run", classifier="6", train=(x, y)) as tracker:
        tracker.record(0)
        with open(tmp_path / "run" / "metrics.jsonl", "ab") as fh:
            fh.write(b'{"epoch": 1, "spl')  # an append cut short (Ctrl-C, a full disk)
        tracker.record(1)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]
    assert [r["epoch"] for r in read_records(tmp_path / "run")] == [0, 1]


def test_evaluate_restores_the_models_mode_after_an_error(digits):
    from ufm.dnn.training import TrainingDivergedError

    net = _cnn()
    net[6].weight.data[0, 0] = float("nan")  # non-finite logits
    net.train()
    with pytest.raises(TrainingDivergedError):
        evaluate(FeatureProbe(net, classifier="6"), digits.x_train[:20], digits.y_train[:20], 10, 0.0)
    assert net.training and all(m.training for m in net.modules())
