"""Run configuration: frozen dataclasses, loaded from a YAML recipe plus overrides.

A recipe is a YAML file with the sections below (any may be omitted to keep
the defaults). Overrides are ``section.field=value`` strings whose value is
parsed as YAML (``train.epochs=3``, ``data.image_size=[64,32]``). Unknown
sections or fields raise an error that lists the valid names. The resolved
config is saved as ``config.yaml`` in every run folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import yaml

from .transforms.augment import AugmentConfig

__all__ = [
    "DataConfig",
    "SplitConfig",
    "AugmentConfig",
    "ModelConfig",
    "TrainConfig",
    "EvalConfig",
    "RunConfig",
    "load_config",
    "list_recipes",
    "config_to_dict",
]


@dataclass(frozen=True)
class SplitConfig:
    """How images are split; ``file`` reuses a saved split instead of making one."""

    ratios: tuple[float, float, float] = (0.7, 0.2, 0.1)  # train/val/test, by patient (P5's 70/20/10)
    folds: int = 0  # >= 2: k-fold cross-validation after holding out the test ratio
    fold: int = 0  # which fold is validation when folds >= 2
    seed: int = 0
    file: str | None = None  # a split CSV written by an earlier run
    use_predefined: bool = True  # keep a manifest's own split column (e.g. MedMNIST's official split)
    val_from_train: float = 0.0  # > 0 with a predefined split: this share of the train patients (grouped, stratified) becomes val, ...
    predefined_val_as: str = "val"  # ... and the manifest's own val is then used as: val | test (e.g. QaTa, whose official test is held out)


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how each is turned into a tensor."""

    source: str | None = None  # manifest CSV, MedMNIST .npz, or a folder holding one; None = synthetic
    task: str = "binary"  # binary | multiclass | multilabel | segmentation (checked when the config loads)
    classes: tuple[str, ...] | None = None  # class names in label order; inferred when None
    image_size: tuple[int, int] = (128, 64)  # (H, W) after aspect-preserving resize + pad
    normalize: str = "percentile"  # none | minmax | zscore | percentile (P1 compares none vs normalised)
    percentiles: tuple[float, float] = (0.5, 99.5)
    views: tuple[str, ...] | None = None  # e.g. [ant, post]: one sample per patient, views as channels
    view_filter: str | None = None  # keep only rows of this view (e.g. ant)
    windows: tuple[str, ...] | None = None  # CT: named HU windows stacked as channels, e.g. [brain, subdural, bone] (P5)
    label_column: str | None = None  # take labels from this manifest column instead of 'label' (e.g. metastasis)
    mask_mode: str = "binary"  # segmentation: binary (any non-zero pixel is lesion) | values (pixel value = class index)
    mask_column: str = "mask"  # the manifest column naming each scan's mask (the simulator also writes mask_class: per-class masks)
    patch_size: tuple[int, int] | None = None  # segmentation: train on random (H, W) crops of image_size, infer by sliding window; None = whole images
    patch_fg_prob: float = 0.33  # share of training crops centred on a foreground pixel (small-lesion oversampling)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        from .data.masks import MASK_MODES
        from .tasks import TASK_NAMES

        if self.task not in TASK_NAMES:
            raise ValueError(f"data.task={self.task!r} is not a task; valid: {', '.join(TASK_NAMES)}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"data.mask_mode={self.mask_mode!r}; valid: {', '.join(MASK_MODES)}")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet18"
    weights: str | None = None  # local state-dict file (torchvision/timm or scintix layout); nothing is ever downloaded
    weights_reduce: str = "sum"  # how a 3-channel pretrained first conv becomes 1-2 channels: sum | mean
    freeze_backbone: bool = False  # train only the classifier ...
    unfreeze_epoch: int | None = None  # ... until this epoch (0-based), then everything
    dropout: float | None = None  # None keeps the model's default
    small_input: bool = False  # stride-1 stem without early pooling (28 px MedMNIST-style inputs)
    deep_supervision: bool | None = None  # dynunet: also train two coarser decoder heads (None keeps the model's default, off)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw | adam | sgd
    scheduler: str = "cosine"  # cosine | step | none
    step_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of epochs, for scheduler=step (x0.1 each)
    warmup_epochs: int = 1
    class_balance: str = "loss"  # none | loss (inverse-frequency weights) | sampler (balanced batches)
    label_smoothing: float = 0.0
    early_stop_patience: int = 8  # epochs without a better validation score; 0 disables
    select_metric: str = "roc_auc"  # picks the best checkpoint: roc_auc | pr_auc | balanced_accuracy | f1 | accuracy (higher wins) | loss (val loss, lower wins)
    select_max_loss_ratio: float = 0.0  # > 1: only epochs whose val loss is within this factor of the lowest so far can be selected (metric among well-fitted epochs); 0 = off
    precise_bn: bool = True  # before each validation, recompute BatchNorm statistics on training batches drawn as in training, not augmented (models with BatchNorm only)
    precise_bn_images: int = 2048  # at most this many training images for it (a seeded subset when there are more)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16; auto = bf16 only where the CPU has native bf16, AMP on CUDA
    channels_last: str = "auto"  # auto (time both layouts on the real model for a few steps) | true | false
    num_workers: int = 0  # images are cached in memory after preprocessing, so 0 is usually fastest on CPU
    deterministic: bool = False  # torch.use_deterministic_algorithms
    progress: bool = True
    tensorboard: bool = True


@dataclass(frozen=True)
class EvalConfig:
    threshold: str = "youden"  # youden | specificity | fixed; always chosen on validation
    target_specificity: float = 0.9
    fixed_threshold: float = 0.5
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    splits: tuple[str, ...] = ("val", "test")
    calibrate: bool = True  # temperature scaling fitted on val; calibrated probabilities everywhere after


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    synthetic: dict[str, Any] = field(default_factory=dict)  # options for the built-in synthetic data


def list_recipes() -> list[str]:
    """Names of the recipes shipped with scintix."""
    return sorted(p.name[:-5] for p in resources.files("scintix.recipes").iterdir() if p.name.endswith(".yaml"))


def _recipe_text(recipe: str | Path) -> str:
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.read_text()
    name = str(recipe)
    if name in list_recipes():
        return resources.files("scintix.recipes").joinpath(f"{name}.yaml").read_text()
    raise FileNotFoundError(f"no recipe {recipe!r}: not a YAML file, and not one of {list_recipes()}")


def load_config(recipe: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Build a :class:`RunConfig` from a recipe (name or YAML path) and overrides.

    >>> cfg = load_config("quickstart", ["train.epochs=2"])
    >>> cfg.train.epochs
    2
    """
    raw: dict = yaml.safe_load(_recipe_text(recipe)) or {} if recipe is not None else {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form section.field=value")
        node = raw
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {p!r} is not a section")
        node[leaf] = yaml.safe_load(value)
    return _build(RunConfig, raw, "")


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ValueError(f"config section {where or 'top level'!r} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {['.'.join(filter(None, [where, u])) for u in unknown]}; valid in {where or 'top level'}: {sorted(fields)}")
    kwargs = {}
    for name, value in raw.items():
        ftype = fields[name].type
        sub = _SECTIONS.get(ftype if isinstance(ftype, str) else getattr(ftype, "__name__", ""))
        if sub is not None:
            kwargs[name] = _build(sub, value, f"{where}.{name}" if where else name)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_SECTIONS = {c.__name__: c for c in (DataConfig, SplitConfig, AugmentConfig, ModelConfig, TrainConfig, EvalConfig)}


def config_to_dict(cfg: Any) -> dict:
    """Plain nested dict (tuples as lists) for YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))
