"""ResNets from MONAI (stride-2 stem, torchvision-compatible names) and P3's cross-feature ResNet."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import ImageClassifier

__all__ = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet_crossfeature", "CrossFeatureBlock", "CrossFeatureBackbone"]


STEMS = {  # name: (kernel, stride, max-pool)
    "stride2": (7, 2, True),  # torchvision/timm ImageNet stem: /4 before layer1
    "stride1": (7, 1, True),  # MONAI's own default: /2 before layer1, ~4x the compute; keeps few-pixel hot spots
    "small": (3, 1, False),  # no early down-sampling (28 px MedMNIST-style inputs; = small_input)
}


def _monai_resnet(block: str, layers: list[int], in_channels: int, num_classes: int, dropout: float, small_input: bool, stem: str | None = None) -> ImageClassifier:
    from monai.networks.nets import ResNet

    # MONAI's default stem has stride 1 (about 4x the compute of the usual
    # stride-2 stem), so the stem is always asked for explicitly.
    stem = stem or ("small" if small_input else "stride2")
    if stem not in STEMS:
        raise ValueError(f"model.stem={stem!r}: one of {', '.join(STEMS)}")
    kernel, stride, pool = STEMS[stem]
    net = ResNet(
        block=block,
        layers=layers,
        block_inplanes=[64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_size=kernel,
        conv1_t_stride=stride,
        no_max_pool=not pool,
        num_classes=num_classes,
        bias_downsample=False,  # as torchvision/timm: same parameter count, loadable weights
    )
    # MONAI keeps the max-pool module and skips it inside its own forward when
    # no_max_pool is set, so it has to be left out here explicitly. Names follow
    # torchvision (conv1, bn1, layer1..4) so its weight files map by prefix.
    parts = [("conv1", net.conv1), ("bn1", net.bn1), ("act", net.act), ("maxpool", net.maxpool if pool else nn.Identity())]
    parts += [(f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5)]
    return ImageClassifier(nn.Sequential(OrderedDict(parts)), net.fc.in_features, num_classes, dropout, cam_layer="features.layer4")


def resnet18(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False, stem: str | None = None) -> ImageClassifier:
    return _monai_resnet("basic", [2, 2, 2, 2], in_channels, num_classes, dropout, small_input, stem)


def resnet34(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False, stem: str | None = None) -> ImageClassifier:
    return _monai_resnet("basic", [3, 4, 6, 3], in_channels, num_classes, dropout, small_input, stem)


def resnet50(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False, stem: str | None = None) -> ImageClassifier:
    return _monai_resnet("bottleneck", [3, 4, 6, 3], in_channels, num_classes, dropout, small_input, stem)


def resnet101(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False, stem: str | None = None) -> ImageClassifier:
    return _monai_resnet("bottleneck", [3, 4, 23, 3], in_channels, num_classes, dropout, small_input, stem)


class CrossFeatureBlock(nn.Module):
    """A basic residual block with P3's extra cross-feature input.

    ``y = relu(F(x) + S(x) + P(x_i))``: ``F`` is the usual conv-bn-relu-conv-bn
    branch, ``S`` the identity or 1x1 projection shortcut, and ``x_i`` the
    cross-feature input (an image with crossed/mixed features, or the input
    image itself) resized to this block's output grid by area averaging and
    mapped to its width by ``P``, a bias-free 1x1 convolution followed by a
    BatchNorm without shift. ``P(0) = 0``, so with ``x_i = 0`` the block is
    exactly a plain ResNet basic block (tested), and ``P`` is zero-initialised
    so training starts from the plain ResNet and learns how much of the cross
    features to add.
    """

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int, cross_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None
        self.cross = nn.Conv2d(cross_channels, cout, 1, bias=False)
        nn.init.zeros_(self.cross.weight)

    def forward(self, x: torch.Tensor, cross: torch.Tensor | None = None) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)), inplace=True)))
        out = out + (x if self.downsample is None else self.downsample(x))
        if cross is not None:
            out = out + self.cross(F.adaptive_avg_pool2d(cross, out.shape[-2:]))
        return F.relu(out)


class CrossFeatureBackbone(nn.Module):
    """ResNet-18 layout built from :class:`CrossFeatureBlock`; ``forward(x, cross=None)``.

    ``cross=None`` uses the input image itself as the cross-feature source (each
    block sees the image at its own scale); pass a second image (e.g. the
    crossed-feature image of P3's cross-training set) to use that instead, or
    zeros for a plain ResNet.
    """

    def __init__(self, in_channels: int, cross_channels: int | None = None, layers: tuple[int, ...] = (2, 2, 2, 2), small_input: bool = False) -> None:
        super().__init__()
        cross_channels = cross_channels or in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 3 if small_input else 7, 1 if small_input else 2, 1 if small_input else 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
            blocks = [CrossFeatureBlock(cin if j == 0 else width, width, (1 if i == 1 else 2) if j == 0 else 1, cross_channels) for j in range(n)]
            setattr(self, f"layer{i}", nn.ModuleList(blocks))
            cin = width

    def forward(self, x: torch.Tensor, cross: torch.Tensor | None = None) -> torch.Tensor:
        cross = x if cross is None else cross
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            for block in getattr(self, f"layer{i}"):
                x = block(x, cross)
        return x


def resnet_crossfeature(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False, cross_channels: int | None = None) -> ImageClassifier:
    """P3's ResNet (18-layer layout) whose blocks add a cross-feature input: see :class:`CrossFeatureBlock`."""
    backbone = CrossFeatureBackbone(in_channels, cross_channels, small_input=small_input)
    # layer4 is a ModuleList (never called itself): CAMs hook its last block.
    # the cross-feature image arrives as a named input (the manifest's cross_path column) through the normal data path
    return ImageClassifier(backbone, 512, num_classes, dropout, cam_layer=f"features.layer4.{len(backbone.layer4) - 1}", inputs=("image", "cross"))
