import pytest
import torch
from torch import nn

from ufm._core.validation import InvalidParameterError
from ufm.dnn.models import MODELS, FeatureClassifier, build_model

K = 5
B = 4

# (name, tiny options, expected feature dim d)
TINY = {
    "mlp": ({"width": 16, "depth": 2}, 16),
    "cnn": ({"channels": 4, "width": 8}, 8),
    "resnet18": ({"width": 4}, 32),
    "resnet50": ({"width": 2}, 64),
}
SHAPES = {
    "mlp": [(20,), (1, 8, 8), (3, 6, 5)],
    "cnn": [(40,), (1, 8, 8), (3, 9, 7)],
    "resnet18": [(3, 8, 8), (1, 16, 16), (2, 9, 11)],
    "resnet50": [(3, 8, 8), (1, 16, 12)],
}
CASES = [(name, shape) for name in MODELS for shape in SHAPES[name]]


def _tiny(name, input_shape, seed=0, **extra):
    torch.manual_seed(seed)
    options = {**TINY[name][0], **extra}
    return build_model(name, input_shape=input_shape, num_classes=K, **options)


def test_registry_matches_tests():
    assert set(MODELS) == set(TINY) == {"mlp", "cnn", "resnet18", "resnet50"}


@pytest.mark.parametrize("name,shape", CASES)
def test_shapes_and_linear_head(name, shape):
    model = _tiny(name, shape).double().eval()
    d = TINY[name][1]
    assert isinstance(model, FeatureClassifier)
    assert (model.feature_dim, model.num_classes) == (d, K)
    x = torch.randn(B, *shape, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)  # (B, K)
        h = model.features(x)  # (B, d)
        logits2, h2 = model(x, return_features=True)
    assert logits.shape == (B, K) and h.shape == (B, d)
    W, b = model.classifier.weight, model.classifier.bias  # (K, d), (K,)
    assert W.shape == (K, d) and b.shape == (K,)
    torch.testing.assert_close(logits, h @ W.T + b, rtol=1e-12, atol=1e-12)
    assert torch.equal(logits2, logits) and torch.equal(h2, h)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_return_features_in_train_mode(name):
    # Training-mode BatchNorm uses batch statistics; the two paths must still agree.
    model = _tiny(name, (3, 8, 8))
    x = torch.randn(B, 3, 8, 8)
    logits, h = model(x, return_features=True)
    torch.testing.assert_close(logits, model.classifier(h))
    assert (h >= 0).all()  # pooled after the last ReLU


@pytest.mark.parametrize("name,expected", [("resnet18", 11_173_962), ("resnet50", 23_520_842)])
def test_cifar_resnet_parameter_counts(name, expected):
    model = build_model(name, input_shape=(3, 32, 32), num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.feature_dim == {"resnet18": 512, "resnet50": 2048}[name]


def test_mlp_feature_relu_and_batchnorm():
    x = torch.randn(32, 20)
    relu = _tiny("mlp", (20,), feature_relu=True)
    assert (relu.features(x) >= 0).all()
    linear = _tiny("mlp", (20,), feature_relu=False)
    h = linear.features(x)
    assert (h < 0).any() and (h > 0).any()
    assert isinstance(linear.body[-1], nn.Linear)

    def count(model, kind):
        return sum(isinstance(m, kind) for m in model.modules())

    assert count(_tiny("mlp", (20,), depth=3), nn.BatchNorm1d) == 0
    assert count(_tiny("mlp", (20,), depth=3, batchnorm=True), nn.BatchNorm1d) == 3
    # feature_relu=False: the last hidden layer has neither BatchNorm nor ReLU.
    no_relu = _tiny("mlp", (20,), depth=3, batchnorm=True, feature_relu=False)
    assert count(no_relu, nn.BatchNorm1d) == 2 and count(no_relu, nn.ReLU) == 2
    assert count(_tiny("mlp", (20,), depth=3), nn.Linear) == 3 + 1  # hidden + classifier


def test_mlp_defaults_and_config():
    model = build_model("mlp", input_shape=(3, 4, 4), num_classes=3)
    assert model.feature_dim == 256
    assert model.config == {"name": "mlp", "input_shape": (3, 4, 4), "num_classes": 3,
                            "width": 256, "depth": 3, "batchnorm": False, "feature_relu": True}
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 4
    cfg = dict(model.config)
    rebuilt = build_model(cfg.pop("name"), **cfg)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())


def test_cnn_1d_and_image():
    sig = _tiny("cnn", (40,))
    assert any(isinstance(m, nn.Conv1d) for m in sig.modules())
    assert not any(isinstance(m, nn.Conv2d) for m in sig.modules())
    logits, h = sig(torch.randn(B, 40), return_features=True)
    assert logits.shape == (B, K) and h.shape == (B, 8) and (h >= 0).all()

    img = _tiny("cnn", (1, 8, 8))
    assert any(isinstance(m, nn.Conv2d) for m in img.modules())
    assert img(torch.randn(B, 1, 8, 8)).shape == (B, K)
    # Pooling rounds up, so even tiny inputs pass through.
    assert _tiny("cnn", (1,))(torch.randn(B, 1)).shape == (B, K)
    assert build_model("cnn", input_shape=(3, 8, 8), num_classes=K).feature_dim == 128


@pytest.mark.parametrize("name", list(MODELS))
def test_same_seed_same_parameters(name):
    shape = SHAPES[name][0]
    a, b, c = _tiny(name, shape, seed=1), _tiny(name, shape, seed=1), _tiny(name, shape, seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_reaches_every_parameter(name):
    shape = SHAPES[name][1]
    model = _tiny(name, shape)
    x = torch.randn(B, *shape)
    y = torch.arange(B) % K
    nn.functional.cross_entropy(model(x), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert model.classifier.weight.grad.abs().sum() > 0


def test_unknown_model_lists_valid_names():
    with pytest.raises(InvalidParameterError,
                       match=r"The 'name' parameter of build_model must be a str among "
                             r"\{'cnn', 'mlp', 'resnet18', 'resnet50'\}\. Got 'vgg' instead\."):
        build_model("vgg", input_shape=(3, 8, 8), num_classes=K)


def test_unknown_option_lists_valid_options():
    with pytest.raises(InvalidParameterError, match=r"Unknown option 'depth'.*'cnn'.*'channels', 'width'"):
        build_model("cnn", input_shape=(40,), num_classes=K, depth=3)
    with pytest.raises(InvalidParameterError,
                       match=r"'batchnorm', 'depth', 'feature_relu', 'width'") as info:
        build_model("mlp", input_shape=(40,), num_classes=K, widht=8)
    assert info.value.param == "widht"


def test_resnet_needs_image_inputs():
    with pytest.raises(InvalidParameterError,
                       match=r"'input_shape'.*image shape \(C, H, W\).*'resnet18'.*Got \(40,\) instead"):
        build_model("resnet18", input_shape=(40,), num_classes=K)


@pytest.mark.parametrize("kwargs,param", [
    ({"num_classes": 1}, "num_classes"),
    ({"num_classes": 2.0}, "num_classes"),
    ({"input_shape": (3, 8)}, "input_shape"),
    ({"input_shape": (0, 8, 8)}, "input_shape"),
    ({"input_shape": 40}, "input_shape"),
    ({"width": 0}, "width"),
    ({"depth": 1.5}, "depth"),
    ({"batchnorm": 1}, "batchnorm"),
])
def test_bad_arguments_name_the_parameter(kwargs, param):
    args = {"input_shape": (20,), "num_classes": K, **kwargs}
    with pytest.raises(InvalidParameterError, match=rf"The '{param}' parameter of build_model must be") as info:
        build_model("mlp", **args)
    assert info.value.param == param
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_distributed_data_parallel_with_return_features(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = _tiny("resnet18", (3, 8, 8))
        ddp = nn.parallel.DistributedDataParallel(model)
        logits, h = ddp(torch.randn(B, 3, 8, 8), return_features=True)
        assert logits.shape == (B, K) and h.shape == (B, 32)
        (logits.square().mean() + h.mean()).backward()
        assert all(p.grad is not None for p in model.parameters())
    finally:
        dist.destroy_process_group()
