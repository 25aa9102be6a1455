"""Networks whose penultimate features and last linear layer are the UFM's H and (W, b).

Every model is a :class:`FeatureClassifier`: a feature map ``x -> h`` in R^d
followed by one linear classifier ``z = W h + b`` with ``W = classifier.weight``
(K, d) and ``b = classifier.bias`` (K,). The features ``h`` are what the UFM
treats as free variables (the columns of H); neural-collapse metrics are
measured on them and on (W, b).

What "features" means for each model:

* ``mlp``: the last hidden layer. With ``feature_relu=True`` (default) it is
  taken after its ReLU, so ``h >= 0``, the usual choice; with
  ``feature_relu=False`` the last hidden layer is linear (no BatchNorm, no
  activation), so ``h`` is unconstrained in sign, as in the UFM. d = ``width``.
* ``cnn``: three conv blocks, global average pooling, then
  ``Linear -> ReLU``; h is that ReLU output (``h >= 0``). d = ``width``.
* ``resnet18`` / ``resnet50``: the globally average-pooled output of the last
  stage (after its final ReLU, so ``h >= 0``), the input of the CIFAR ResNet's
  linear layer. d = 8 ``width`` (18) or 32 ``width`` (50): 512 / 2048 by default.

Inputs are batches ``(B, *input_shape)`` with ``input_shape`` either ``(L,)``
(vectors, or 1-D signals for ``cnn``) or ``(C, H, W)`` (images). Build models
with :func:`build_model`, which validates its arguments; initialization is
PyTorch's default, so ``torch.manual_seed`` before it makes a build reproducible.
"""
from __future__ import annotations

import abc

import inspect
import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ufm._core.validation import Boolean, Interval, InvalidParameterError, Options, check_param

__all__ = [
    "FeatureClassifier",
    "MLP",
    "SmallCNN",
    "ResNet",
    "ResNet18",
    "ResNet50",
    "MODELS",
    "build_model",
]


_POSITIVE_INT = Interval("int", 1, None, "left")
_BOOL = Boolean()


class FeatureClassifier(nn.Module, metaclass=abc.ABCMeta):
    """A feature map followed by one linear classifier: ``z = W h(x) + b``.

    Subclasses implement :meth:`features` (abstract: the base class cannot be instantiated); :meth:`forward` always goes through
    ``features`` and then ``classifier``, so that a wrapper such as
    ``DistributedDataParallel`` sees every parameter used, with or without
    ``return_features``.

    Attributes:
        feature_dim: d, the dimension of the features h.
        num_classes: K, the number of logits.
        classifier: ``nn.Linear(d, K)`` with bias; ``W = classifier.weight``
            (K, d) and ``b = classifier.bias`` (K,).
    """

    #: option name -> constraint, checked by build_model (defaults: the __init__ signature)
    OPTIONS: dict = {}
    #: True when the model needs image inputs (C, H, W)
    IMAGE_ONLY: bool = False

    def __init__(self, feature_dim: int, num_classes: int):
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(self.feature_dim, self.num_classes)

    @abc.abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``h`` (B, d) of a batch ``x`` (B, *input_shape)."""

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Logits (B, K), or ``(logits, features)`` with features (B, d) when ``return_features``."""
        h = self.features(x)  # (B, d)
        logits = self.classifier(h)  # (B, K)
        return (logits, h) if return_features else logits


class MLP(FeatureClassifier):
    """Fully connected network on the flattened input.

    ``depth`` hidden layers of ``width`` units, each ``Linear -> [BatchNorm1d]
    -> ReLU``; with ``feature_relu=False`` the last one is a plain ``Linear``
    (no BatchNorm, no ReLU), so the features are unconstrained in sign.

    Args:
        input_shape: ``(L,)`` or ``(C, H, W)``; the input is flattened.
        num_classes: K.
        width: hidden units per layer, which is also d (default 256).
        depth: number of hidden layers (default 3).
        batchnorm: insert BatchNorm1d before each hidden ReLU (default False).
        feature_relu: features after the last ReLU (default True) or linear.
    """

    OPTIONS = {"width": _POSITIVE_INT, "depth": _POSITIVE_INT, "batchnorm": _BOOL, "feature_relu": _BOOL}

    def __init__(self, input_shape: tuple, num_classes: int, *, width: int = 256, depth: int = 3,
                 batchnorm: bool = False, feature_relu: bool = True):
        super().__init__(width, num_classes)
        layers = []
        fan_in = math.prod(input_shape)
        for i in range(depth):
            layers.append(nn.Linear(fan_in, width))
            if i < depth - 1 or feature_relu:
                if batchnorm:
                    layers.append(nn.BatchNorm1d(width))
                layers.append(nn.ReLU())
            fan_in = width
        self.body = nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))  # (B, prod(input_shape)) -> (B, d)


class SmallCNN(FeatureClassifier):
    """A small convolutional network for images (C, H, W) or 1-D signals (L,).

    Three blocks ``conv3x3 -> BatchNorm -> ReLU`` with ``channels``, 2
    ``channels`` and 4 ``channels`` output channels, max-pooling by 2 after
    blocks 1 and 2 (rounding up, so any input size works), global average
    pooling, then ``Linear(4 channels, width) -> ReLU`` as the features. A 1-D
    input (B, L) is read as one channel and uses Conv1d.

    Args:
        input_shape: ``(L,)`` or ``(C, H, W)``.
        num_classes: K.
        channels: output channels of the first block (default 32).
        width: d, the feature dimension (default 128).
    """

    OPTIONS = {"channels": _POSITIVE_INT, "width": _POSITIVE_INT}

    def __init__(self, input_shape: tuple, num_classes: int, *, channels: int = 32, width: int = 128):
        super().__init__(width, num_classes)
        self.signal = len(input_shape) == 1
        conv, bn, pool = ((nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d) if self.signal
                          else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d))
        c_in = 1 if self.signal else input_shape[0]
        c1, c2, c3 = channels, 2 * channels, 4 * channels
        self.body = nn.Sequential(
            conv(c_in, c1, 3, padding=1, bias=False), bn(c1), nn.ReLU(), pool(2, ceil_mode=True),
            conv(c1, c2, 3, padding=1, bias=False), bn(c2), nn.ReLU(), pool(2, ceil_mode=True),
            conv(c2, c3, 3, padding=1, bias=False), bn(c3), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(c3, width), nn.ReLU())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.signal:
            x = x.unsqueeze(1)  # (B, L) -> (B, 1, L)
        out = self.body(x)  # (B, 4c, *spatial)
        pooled = out.flatten(2).mean(-1)  # (B, 4c)
        return self.head(pooled)  # (B, d)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1-projection) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, self.expansion * planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (by 4) convolutions with a shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, self.expansion * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.expansion * planes)
        self.shortcut = _shortcut(in_planes, self.expansion * planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_planes))


class ResNet(FeatureClassifier):
    """CIFAR-style ResNet (He et al., Deep Residual Learning for Image Recognition, 2016).

    The CIFAR variant (as in kuangliu/pytorch-cifar): a 3x3 stride-1 stem conv
    with BatchNorm and ReLU and no max-pool, four stages of ``width``, 2, 4 and
    8 ``width`` planes with strides 1, 2, 2, 2, then global average pooling; the
    pooled vector (B, 8 ``width`` x expansion) is the features. Works for any
    number of channels and any spatial size (32 x 32 is the design size).

    Subclasses set ``block`` and ``num_blocks``.

    Args:
        input_shape: ``(C, H, W)``.
        num_classes: K.
        width: planes of the first stage (default 64).
    """

    OPTIONS = {"width": _POSITIVE_INT}
    IMAGE_ONLY = True
    block: type = BasicBlock
    num_blocks: tuple = (2, 2, 2, 2)

    def __init__(self, input_shape: tuple, num_classes: int, *, width: int = 64):
        super().__init__(8 * width * self.block.expansion, num_classes)
        self.conv1 = nn.Conv2d(input_shape[0], width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        in_planes = width
        stages = []
        for i, (n, stride) in enumerate(zip(self.num_blocks, (1, 2, 2, 2))):
            planes = width * 2 ** i
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(self.block(in_planes, planes, s))
                in_planes = planes * self.block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (B, w, H, W)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))  # (B, d, H/8, W/8)
        return F.adaptive_avg_pool2d(out, 1).flatten(1)  # (B, d)


class ResNet18(ResNet):
    """CIFAR ResNet-18: BasicBlock x [2, 2, 2, 2]; d = 8 width (512 by default)."""

    block = BasicBlock
    num_blocks = (2, 2, 2, 2)


class ResNet50(ResNet):
    """CIFAR ResNet-50: Bottleneck (expansion 4) x [3, 4, 6, 3]; d = 32 width (2048 by default)."""

    block = Bottleneck
    num_blocks = (3, 4, 6, 3)


#: name -> FeatureClassifier subclass, called as ``cls(input_shape, num_classes, **options)``
MODELS = {"mlp": MLP, "cnn": SmallCNN, "resnet18": ResNet18, "resnet50": ResNet50}


def _check_input_shape(input_shape: Any, name: str) -> tuple:
    ok = (isinstance(input_shape, (tuple, list)) and len(input_shape) in (1, 3)
          and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in input_shape))
    if not ok:
        raise InvalidParameterError(
            "The 'input_shape' parameter of build_model must be a tuple of positive ints, (L,) for "
            f"vectors or (C, H, W) for images. Got {input_shape!r} instead.",
            param="input_shape", value=input_shape, expected="a tuple (L,) or (C, H, W) of positive ints")
    shape = tuple(int(s) for s in input_shape)
    if MODELS[name].IMAGE_ONLY and len(shape) != 3:
        raise InvalidParameterError(
            f"The 'input_shape' parameter of build_model must be an image shape (C, H, W) for model "
            f"{name!r}, which needs image inputs. Got {input_shape!r} instead; use 'mlp' or 'cnn' "
            "for 1-D inputs.",
            param="input_shape", value=input_shape, expected="an image shape (C, H, W)")
    return shape


def _defaults(cls: type) -> dict:
    params = inspect.signature(cls.__init__).parameters
    return {k: params[k].default for k in cls.OPTIONS}


def build_model(name: str, *, input_shape: tuple, num_classes: int, **options) -> FeatureClassifier:
    """Build a network of :data:`MODELS` by name, after validating every argument.

    Args:
        name: one of ``MODELS``: ``'mlp'``, ``'cnn'``, ``'resnet18'``, ``'resnet50'``.
        input_shape: shape of one input, ``(L,)`` or ``(C, H, W)`` (ResNets need
            ``(C, H, W)``).
        num_classes: K >= 2.
        **options: the model's options (see each class): ``mlp``: ``width=256,
            depth=3, batchnorm=False, feature_relu=True``; ``cnn``:
            ``channels=32, width=128``; ``resnet18``/``resnet50``: ``width=64``.

    Returns:
        The model, in training mode, with PyTorch's default initialization and
        a ``config`` dict holding ``name``, ``input_shape``, ``num_classes`` and
        every option (defaults filled in), enough to build it again.

    Raises:
        InvalidParameterError: an unknown name or option (listing the valid
            ones), or an argument out of range (naming it).

    Example::

        >>> _ = torch.manual_seed(0)
        >>> net = build_model("resnet18", input_shape=(3, 32, 32), num_classes=10, width=8)
        >>> logits, h = net(torch.randn(4, 3, 32, 32), return_features=True)  # (4, 10), (4, 64)
    """
    check_param("name", name, Options(tuple(MODELS)), "build_model")
    cls = MODELS[name]
    check_param("num_classes", num_classes, Interval("int", 2, None, "left"), "build_model")
    shape = _check_input_shape(input_shape, name)
    for key, value in options.items():
        if key not in cls.OPTIONS:
            valid = ", ".join(repr(k) for k in sorted(cls.OPTIONS))
            raise InvalidParameterError(
                f"Unknown option {key!r} of build_model for model {name!r}; valid options: {valid}.",
                param=key, value=value, expected=f"one of {valid}")
        check_param(key, value, cls.OPTIONS[key], "build_model")
    model = cls(shape, int(num_classes), **options)
    model.config = {"name": name, "input_shape": shape, "num_classes": int(num_classes),
                    **_defaults(cls), **options}
    return model
