"""The model registry: a plain dict of builders and ``create_model``.

Every builder takes ``in_channels``, ``num_classes``, ``dropout`` and
``small_input`` (a 3x3 stride-1 stem without max-pool, as the MedMNIST ResNets
use for 28 px images) and returns an :class:`ImageClassifier`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .classifier import ImageClassifier

__all__ = ["MODELS", "create_model", "list_models", "load_weights"]

log = logging.getLogger(__name__)


def _monai_resnet(block: str, layers: list[int], in_channels: int, num_classes: int, dropout: float, small_input: bool) -> ImageClassifier:
    from monai.networks.nets import ResNet

    # MONAI's default stem has stride 1 (about 4x the compute of the usual
    # stride-2 stem), so the stride-2 7x7 stem is asked for explicitly.
    net = ResNet(
        block=block,
        layers=layers,
        block_inplanes=[64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_size=3 if small_input else 7,
        conv1_t_stride=1 if small_input else 2,
        no_max_pool=small_input,
        num_classes=num_classes,
        bias_downsample=False,  # as torchvision/timm: same parameter count, loadable weights
    )
    # MONAI keeps the max-pool module and skips it inside its own forward when
    # no_max_pool is set, so it has to be left out here explicitly.
    pool = nn.Identity() if small_input else net.maxpool
    features = nn.Sequential(net.conv1, net.bn1, net.act, pool, net.layer1, net.layer2, net.layer3, net.layer4)
    return ImageClassifier(features, net.fc.in_features, num_classes, dropout, cam_layer="features.7")


def resnet18(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _monai_resnet("basic", [2, 2, 2, 2], in_channels, num_classes, dropout, small_input)


def resnet34(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _monai_resnet("basic", [3, 4, 6, 3], in_channels, num_classes, dropout, small_input)


def resnet50(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _monai_resnet("bottleneck", [3, 4, 6, 3], in_channels, num_classes, dropout, small_input)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def small_cnn(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.2, small_input: bool = False) -> ImageClassifier:
    """A 4-stage VGG-style CNN (~0.4 M parameters) for fast CPU runs and tests."""
    widths = [16, 32, 64, 128]
    layers: list[nn.Module] = []
    cin = in_channels
    for i, w in enumerate(widths):
        layers.append(_conv_block(cin, w))
        if i < len(widths) - 1 and not (small_input and i == 0):
            layers.append(nn.MaxPool2d(2))
        cin = w
    return ImageClassifier(nn.Sequential(*layers), cin, num_classes, dropout, cam_layer=f"features.{len(layers) - 1}")


MODELS: dict[str, Callable[..., ImageClassifier]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "small_cnn": small_cnn,
}


def list_models() -> list[str]:
    return sorted(MODELS)


def create_model(name: str, *, in_channels: int = 1, num_classes: int = 2, weights: str | Path | None = None, **kwargs) -> ImageClassifier:
    """Build a registered model; ``None`` kwargs are dropped so model defaults win.

    Args:
        name: a key of :data:`MODELS`.
        in_channels: 1 for a scan, 2 for ANT+POST stacked as channels.
        num_classes: number of logits.
        weights: optional local state-dict file (never downloaded).

    Raises:
        KeyError: unknown name; the message lists the valid ones.

    >>> m = create_model("resnet18", in_channels=1, num_classes=2)
    >>> m(torch.zeros(2, 1, 64, 32)).shape
    torch.Size([2, 2])
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    model = MODELS[name](in_channels=in_channels, num_classes=num_classes, **{k: v for k, v in kwargs.items() if v is not None})
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local state dict (``weights_only``), skipping tensors whose shape differs (e.g. a new head)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    model.load_state_dict(usable, strict=False)
    log.info("loaded %d tensors from %s; skipped %d (absent or different shape): %s", len(usable), path, len(skipped), skipped[:5])
