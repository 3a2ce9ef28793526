"""Segmentation networks behind one interface: ``forward(x) -> (B, K, H, W)`` logits at the input's size.

``unet`` is MONAI's ``BasicUNet`` (features 32-32-64-128-256, instance
norm, a five-level U-Net as in P4's image path); ``segresnet`` is MONAI's
``SegResNet`` (residual encoder blocks 1-2-2-4, a lighter decoder; the
stronger option of the two on the BRATS benchmark it was made for).
Both need H and W divisible by 16 (resp. 8): :class:`Segmenter` pads the
input with zeros to that multiple and crops the output back, so any size
works, 1024x256 whole-body scans included. Logits are raw: the task applies
the softmax. ``cam_layer`` names the last decoder block, so CAM methods work
on segmenters too (with the segmentation task's target).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Segmenter", "unet", "segresnet"]


class Segmenter(nn.Module):
    """A segmentation network with the scintix interface.

    Args:
        net: maps ``(B, C, H', W')`` (H', W' multiples of ``multiple``) to ``(B, K, H', W')``.
        num_classes: K, background included.
        multiple: the spatial multiple the network needs.
        cam_layer: dotted name of the module CAMs hook.
    """

    kind = "segmentation"
    inputs = ("image",)

    def __init__(self, net: nn.Module, num_classes: int, multiple: int, cam_layer: str) -> None:
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.multiple = multiple
        self.cam_layer = cam_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return self.net(x)[..., :h, :w]


def unet(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> Segmenter:
    """MONAI ``BasicUNet``, 2-D (``small_input`` is ignored: a U-Net keeps full resolution anyway)."""
    from monai.networks.nets import BasicUNet

    net = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, features=(32, 32, 64, 128, 256, 32), dropout=dropout)
    return Segmenter(net, num_classes, 16, "net.upcat_1")


def segresnet(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False) -> Segmenter:
    """MONAI ``SegResNet``, 2-D, 16 initial filters, encoder blocks (1, 2, 2, 4)."""
    from monai.networks.nets import SegResNet

    net = SegResNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, init_filters=16, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), dropout_prob=dropout or None)
    return Segmenter(net, num_classes, 8, "net.up_layers.2")


unet.kind = segresnet.kind = "segmentation"  # type: ignore[attr-defined]
