"""Segmentation networks behind one interface: ``forward(x) -> (B, K, H, W)`` logits at the input's size.

``dynunet`` is MONAI's ``DynUNet`` (nnU-Net's network, optional deep
supervision); ``unet`` is MONAI's ``BasicUNet`` (features 32-32-64-128-256, instance
norm, a five-level U-Net as in P4's image path); ``segresnet`` is MONAI's
``SegResNet`` (residual encoder blocks 1-2-2-4, a lighter decoder; the
stronger option of the two on the BRATS benchmark it was made for).
Both need H and W divisible by 16 (resp. 8): :class:`Segmenter` pads the
input with zeros to that multiple and crops the output back, so any size
works, 1024x256 whole-body scans included. A model trained on patches
(``data.patch_size``) gets ``roi_size`` and infers larger inputs in eval mode
by Gaussian-weighted sliding windows (MONAI ``sliding_window_inference``,
25 % overlap). Logits are raw: the task applies the softmax. ``cam_layer`` names the last decoder block, so CAM methods work
on segmenters too (with the segmentation task's target).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Segmenter", "sliding_window", "unet", "segresnet", "dynunet"]


def sliding_window(x: torch.Tensor, roi_size, predictor, overlap: float = 0.25) -> torch.Tensor:
    """Whole-image logits from ``predictor`` applied to Gaussian-weighted overlapping windows of ``roi_size`` (MONAI).

    nnU-Net's choice: patch borders, seen with less context, weigh less.
    """
    from monai.inferers import sliding_window_inference

    return sliding_window_inference(x, tuple(roi_size), sw_batch_size=4, predictor=predictor, overlap=overlap, mode="gaussian")


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
        self.roi_size: tuple[int, int] | None = None  # set when trained on patches: eval-mode inputs larger than it go by sliding window
        self.sw_overlap = 0.25

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.roi_size is not None and (x.shape[-2] > self.roi_size[0] or x.shape[-1] > self.roi_size[1]):
            return sliding_window(x, self.roi_size, self._forward_padded, self.sw_overlap)
        return self._forward_padded(x)

    def _forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        # (B, K, H, W); a deep-supervised net in training mode gives (B, 1 + heads, K, H, W), main output first
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return self._run_net(x)[..., :h, :w]

    def _run_net(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input padded to ``multiple`` (subclasses that feed more than the image override this)."""
        return self.net(x)


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


def dynunet(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False, deep_supervision: bool = False) -> Segmenter:
    """MONAI ``DynUNet`` (nnU-Net's network: 5 levels, filters 32-64-128-256-320, instance norm).

    With ``deep_supervision`` two extra heads at coarser decoder levels are
    trained too (training-mode output ``(B, 3, K, H, W)``, main output first;
    the segmentation loss weighs them 1, 1/2, 1/4); eval mode returns the main
    output only.
    """
    from monai.networks.nets import DynUNet

    strides = [1, 2, 2, 2, 2]
    net = DynUNet(2, in_channels, num_classes, kernel_size=[3] * 5, strides=strides, upsample_kernel_size=strides[1:], filters=(32, 64, 128, 256, 320),
                  dropout=dropout or None, deep_supervision=deep_supervision, deep_supr_num=2 if deep_supervision else 1)
    return Segmenter(net, num_classes, 16, "net.upsamples.3")


unet.kind = segresnet.kind = dynunet.kind = "segmentation"  # type: ignore[attr-defined]
