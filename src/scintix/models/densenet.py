"""DenseNets from MONAI (torchvision-compatible parameter counts; key mapping in weights.py)."""

from __future__ import annotations

from torch import nn

from .classifier import ImageClassifier

__all__ = ["densenet121", "densenet169"]


def _densenet(blocks: tuple[int, ...], in_channels: int, num_classes: int, dropout: float, small_input: bool) -> ImageClassifier:
    from monai.networks.nets import DenseNet

    net = DenseNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, init_features=64, growth_rate=32, block_config=blocks)
    if small_input:
        # 28-px inputs: 3x3 stride-1 stem without the max-pool, as for the MedMNIST ResNets.
        net.features.conv0 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.features.pool0 = nn.Identity()
    # MONAI's features end with norm5; the ReLU lives in its head, so it moves into features here.
    features = nn.Sequential(net.features, nn.ReLU(inplace=True))
    return ImageClassifier(features, net.class_layers.out.in_features, num_classes, dropout, cam_layer="features.1")


def densenet121(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _densenet((6, 12, 24, 16), in_channels, num_classes, dropout, small_input)


def densenet169(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _densenet((6, 12, 32, 32), in_channels, num_classes, dropout, small_input)
