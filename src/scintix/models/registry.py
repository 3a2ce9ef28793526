"""The model registry: a plain dict of builders, ``create_model`` and ``model_info``.

Every builder takes ``in_channels``, ``num_classes``, ``dropout`` and
``small_input`` (a stride-1 stem without early pooling for 28-px images, as
the MedMNIST ResNets use) and returns an :class:`ImageClassifier` or a
:class:`~scintix.models.segmentation.Segmenter`; ``model.kind`` says which
(``classification`` or ``segmentation``) and ``model.inputs`` which named
inputs it takes (``("image",)``, or ``("image", "cross")`` for P3's model).
"""

from __future__ import annotations

import functools
import inspect
import logging
from pathlib import Path
from typing import Callable

import torch

from .classifier import ImageClassifier
from .densenet import densenet121, densenet169
from .resnet import resnet18, resnet34, resnet50, resnet101, resnet_crossfeature
from .segmentation import Segmenter, dynunet, segresnet, unet
from .simple import dspic, small_cnn
from .text_segmentation import text_unet, text_unet_film
from .vgg import alexnet, vgg11, vgg11_bn, vgg16, vgg16_bn, vgg19, vgg19_bn
from .weights import freeze_backbone, load_pretrained

__all__ = ["MODELS", "create_model", "list_models", "model_info", "model_kind", "builder_inputs", "example_inputs", "min_input_size", "check_input_size"]

log = logging.getLogger(__name__)

MODELS: dict[str, Callable[..., ImageClassifier | Segmenter]] = {
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg11_bn": vgg11_bn,
    "vgg16": vgg16,
    "vgg16_bn": vgg16_bn,
    "vgg19": vgg19,
    "vgg19_bn": vgg19_bn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet_crossfeature": resnet_crossfeature,
    "densenet121": densenet121,
    "densenet169": densenet169,
    "dspic": dspic,
    "small_cnn": small_cnn,
    "unet": unet,
    "segresnet": segresnet,
    "dynunet": dynunet,
    "text_unet": text_unet,
    "text_unet_film": text_unet_film,
}


def list_models(kind: str | None = None) -> list[str]:
    """Registered names, optionally only those of one kind (``classification`` or ``segmentation``)."""
    return sorted(n for n in MODELS if kind is None or model_kind(n) == kind)


def model_kind(name: str) -> str:
    """``classification`` or ``segmentation`` (a builder says so in its ``kind`` attribute)."""
    return getattr(MODELS[name], "kind", "classification")


def builder_inputs(name: str) -> tuple[str, ...]:
    """The named inputs a registered model takes (``("image", "text")`` for the report-guided segmenters)."""
    return tuple(getattr(MODELS[name], "inputs", ("image",)))


def example_inputs(model, x: torch.Tensor) -> dict:
    """Stand-ins for a model's extra inputs on probe runs: the image itself as a cross-feature image, no report as text."""
    return {k: ([None] * len(x) if k == "text" else x) for k in getattr(model, "inputs", ("image",))[1:]}


def create_model(
    name: str,
    *,
    in_channels: int = 1,
    num_classes: int = 2,
    weights: str | Path | None = None,
    weights_reduce: str = "sum",
    freeze: bool = False,
    **kwargs,
) -> ImageClassifier:
    """Build a registered model; ``None`` kwargs are dropped so model defaults win.

    Args:
        name: a key of :data:`MODELS`.
        in_channels: 1 for a scan, 2 for ANT+POST stacked as channels.
        num_classes: number of logits.
        weights: optional local state-dict file, torchvision/timm or scintix layout (never downloaded).
        weights_reduce: how a 3-channel first conv becomes ``in_channels`` (``sum`` or ``mean``).
        freeze: freeze everything but the final classifier.

    Raises:
        KeyError: unknown name; the message lists the valid ones.

    >>> m = create_model("resnet18", in_channels=1, num_classes=2)
    >>> m(torch.zeros(2, 1, 64, 32)).shape
    torch.Size([2, 2])
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    params = inspect.signature(MODELS[name]).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ValueError(f"model {name!r} has no option {', '.join(f'model.{k}' for k in unknown)}; leave it unset for this model")
    model = MODELS[name](in_channels=in_channels, num_classes=num_classes, **kwargs)
    if weights is not None:
        load_pretrained(model, name, weights, reduce=weights_reduce)  # type: ignore[arg-type]
    if freeze:
        freeze_backbone(model, True)
    return model


@functools.lru_cache(maxsize=None)
def min_input_size(name: str, small_input: bool = False) -> int:
    """The smallest side (px) the model accepts (at most 512: 512 also means "none up to 512").

    Built on the meta device, then given uninitialised CPU memory: no initialisation cost, and the values do not matter,
    only whether the shapes go through. Real small forwards are ~10x cheaper than meta ones (Python shape functions per
    op), and trying sides upwards (1, 2, 4, ...) then bisecting never runs an image larger than twice the answer.
    """
    with torch.device("meta"):
        model = create_model(name, in_channels=1, num_classes=2, small_input=small_input or None).eval()
    model.to_empty(device="cpu")

    def runs(side: int) -> bool:
        with torch.no_grad():
            x = torch.zeros(1, 1, side, side)
            try:
                model(x, **example_inputs(model, x))
            except (RuntimeError, ValueError):  # a pooling or conv window larger than its input, a norm over one pixel
                return False
        return True

    hi = 1
    while not runs(hi):
        if hi >= 512:
            return 512
        hi = min(2 * hi, 512)
    lo = hi // 2 + 1 if hi > 1 else 1  # hi // 2 did not run
    while lo < hi:  # smallest side that runs; a deeper net only fails on smaller inputs
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if runs(mid) else (mid + 1, hi)
    return lo


def check_input_size(name: str, size: tuple[int, int], small_input: bool = False, in_channels: int = 1) -> None:
    """Refuse, naming the minimum, an input size the model cannot take (on the meta device, before any data is read)."""
    with torch.device("meta"), torch.no_grad():
        model = create_model(name, in_channels=in_channels, num_classes=2, small_input=small_input or None).eval()
        x = torch.zeros(1, in_channels, *size)
        try:
            model(x, **example_inputs(model, x))
            return
        except (RuntimeError, ValueError):
            pass
    need = min_input_size(name, small_input)
    hint = "" if small_input else " (or -o model.small_input=true for the stride-1 stems)"
    raise ValueError(f"model.name={name!r} needs inputs of at least {need} px per side; data.image_size is {list(size)}: use a larger size or another model{hint}")


def model_info(name: str, size: tuple[int, int] = (256, 256), in_channels: int = 1, num_classes: int = 2, small_input: bool = False) -> dict:
    """Parameter count and forward FLOPs (multiply-add = 2 FLOPs) for one image of ``size``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    # On the meta device nothing is allocated or initialised: VGG-19 at 1024x256 costs nothing.
    with torch.device("meta"), torch.no_grad():
        model = create_model(name, in_channels=in_channels, num_classes=num_classes, small_input=small_input or None).eval()
        with counter:
            x = torch.zeros(1, in_channels, *size)
            model(x, **example_inputs(model, x))
    return {"name": name, "kind": getattr(model, "kind", "classification"), "params": sum(p.numel() for p in model.parameters()), "gflops": counter.get_total_flops() / 1e9, "size": list(size),
            "min_size": min_input_size(name, small_input)}


