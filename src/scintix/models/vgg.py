"""AlexNet and VGG, written here in torchvision's layout (``features.N`` indices).

torchvision does not load with the reference torch build, so these are our
own code; keeping its module order means torchvision/timm weight files map
onto them key for key (see :mod:`scintix.models.weights`). The classifier MLP
(4096-4096) is kept so parameter counts equal the published ones; it sits in
``pre_logits`` and the last linear is ``fc`` like every scintix model.

``small_input`` (28-px inputs): VGG drops its first two max-pools; AlexNet uses
a 3x3 stride-1 first convolution and drops its first max-pool.

Initialisation: every convolution and hidden linear layer gets Kaiming-normal
weights (fan_in, ReLU gain) and zero biases; the final ``fc`` keeps PyTorch's
default. Why: these nets have no normalisation between their 7 (AlexNet) to 19
(VGG-19) plain ReLU layers, and PyTorch's default init (Kaiming-uniform with
a=sqrt(5), i.e. gain 1/sqrt(3)) shrinks the signal at every layer: AlexNet's
logits at init had a spread of 0.009 on P2's scans, and from scratch it stayed at
the prior on that task (20 epochs, Adam lr 1e-3 and 1e-4); in 150 steps it barely
fitted 64 training scans (loss 0.62 -> 0.35) where the Kaiming init fitted them
(-> 0.007) (probes of 2026-12-02; the retrained AlexNet rows are in the README's P2 table). torchvision's VGG also uses a Kaiming init (fan_out); loaded weights
(``model.weights``) replace all of this.
"""

from __future__ import annotations

from torch import nn

from .classifier import ImageClassifier

__all__ = ["alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _mlp(in_features: int, pool: int, dropout_first: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(pool), nn.Flatten(1)]
    if dropout_first:  # AlexNet: Dropout, Linear, ReLU, Dropout, Linear, ReLU
        layers += [nn.Dropout(0.5), nn.Linear(in_features * pool * pool, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True)]
    else:  # VGG: Linear, ReLU, Dropout, Linear, ReLU, Dropout
        layers += [nn.Linear(in_features * pool * pool, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5)]
    return nn.Sequential(*layers)


def _init_plain_relu(model: ImageClassifier) -> ImageClassifier:
    """Kaiming-normal (fan_in, ReLU) weights and zero biases for the convolutions and hidden linears (see the module docstring)."""
    for m in (*model.features.modules(), *model.pre_logits.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def _vgg(depth: int, batch_norm: bool, in_channels: int, num_classes: int, dropout: float, small_input: bool) -> ImageClassifier:
    layers: list[nn.Module] = []
    cin, pools = in_channels, 0
    for v in _CFG[depth]:
        if v == "M":
            pools += 1
            # Index-preserving for weight loading: a skipped pool becomes an Identity.
            layers.append(nn.Identity() if small_input and pools <= 2 else nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(cin, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        cin = v
    last_conv_block = len(layers) - 2  # the ReLU before the last pool: CAM target
    return _init_plain_relu(ImageClassifier(nn.Sequential(*layers), 512, num_classes, dropout, f"features.{last_conv_block}", _mlp(512, 7, False), 4096))


def vgg11(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _vgg(11, False, in_channels, num_classes, dropout, small_input)


def vgg11_bn(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _vgg(11, True, in_channels, num_classes, dropout, small_input)


def vgg16(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _vgg(16, False, in_channels, num_classes, dropout, small_input)


def vgg16_bn(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _vgg(16, True, in_channels, num_classes, dropout, small_input)


def vgg19(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _vgg(19, False, in_channels, num_classes, dropout, small_input)


def vgg19_bn(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    return _vgg(19, True, in_channels, num_classes, dropout, small_input)


def alexnet(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> ImageClassifier:
    """AlexNet as in torchvision (the one-GPU variant of Krizhevsky et al. 2012)."""
    first = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1) if small_input else nn.Conv2d(in_channels, 64, 11, stride=4, padding=2)
    features = nn.Sequential(
        first, nn.ReLU(inplace=True), nn.Identity() if small_input else nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
    )
    return _init_plain_relu(ImageClassifier(features, 256, num_classes, dropout, "features.11", _mlp(256, 6, True), 4096))
