"""Run configuration: frozen dataclasses, loaded from a YAML recipe plus overrides.

A recipe is a YAML file with the sections below (any may be omitted to keep
the defaults). Overrides are ``section.field=value`` strings whose value is
parsed as YAML (``train.epochs=3``, ``data.image_size=[64,32]``). Unknown
sections or fields raise an error that lists the valid names. The resolved
config is saved as ``config.yaml`` in every run folder.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
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
    "TextConfig",
    "TrainConfig",
    "EvalConfig",
    "RunConfig",
    "load_config",
    "list_recipes",
    "config_to_dict",
]


MIN_IMAGE_SIZE = 8  # px per side; models that need more say so when the run starts


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
    inner_val: float = 0.0  # > 0 with folds >= 2 (cross-validation, `scintix cv`): fold `fold` is the out-of-fold test, and this share of the other folds' patients is val

    def __post_init__(self) -> None:
        from .data.splits import check_ratios

        try:
            check_ratios(self.ratios)
        except ValueError as exc:
            raise ValueError(f"data.split.ratios: {exc}") from None
        _require(self.folds == 0 or self.folds >= 2, f"data.split.folds={self.folds}: 0 (no folds) or >= 2")
        _require(self.fold == 0 if self.folds == 0 else 0 <= self.fold < self.folds, f"data.split.fold={self.fold}: " + (f"must lie in 0..{self.folds - 1}" if self.folds else "needs data.split.folds >= 2"))
        _require(0 <= self.val_from_train < 1, f"data.split.val_from_train={self.val_from_train}: a share in [0, 1)")
        _require(0 <= self.inner_val < 1 and (self.inner_val == 0 or self.folds >= 2), f"data.split.inner_val={self.inner_val}: a share in [0, 1), with data.split.folds >= 2")
        _require(self.predefined_val_as in ("val", "test"), f"data.split.predefined_val_as={self.predefined_val_as!r}: val or test")


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
    train_extra_views: tuple[str, ...] = ()  # with view_filter: also train on these views' images, each with its own label (e.g. [post]); val, test and predict keep view_filter
    windows: tuple[str, ...] | None = None  # CT: named HU windows stacked as channels, e.g. [brain, subdural, bone] (P5)
    label_column: str | None = None  # take labels from this manifest column instead of 'label' (e.g. metastasis)
    mask_mode: str = "binary"  # segmentation: binary (any non-zero pixel is lesion) | values (pixel value = class index)
    mask_column: str = "mask"  # the manifest column naming each scan's mask (the simulator also writes mask_class: per-class masks)
    patch_size: tuple[int, int] | None = None  # segmentation: train on random (H, W) crops of image_size, infer by sliding window; None = whole images
    patch_fg_prob: float = 0.33  # share of training crops centred on a foreground pixel (small-lesion oversampling)
    region: str | None = None  # the body region the images show (thorax | chest_right | chest_left): predict/serve crop whole-body inputs to it first
    train_max_labels: int | None = None  # multi-label: keep only training images with at most this many labels (P3 stage 1: single-feature images); val/test unchanged
    generated: tuple[str, ...] = ()  # manifests of generated images (`scintix gan sample`): training rows only, never val/test
    generated_ratio: float | None = None  # use at most this many generated images per real training image (seeded subset); None = all
    report_column: str = "report"  # the manifest column holding each scan's report (the simulator's Chinese ones: report_zh)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        from .data.masks import MASK_MODES
        from .tasks import TASK_NAMES

        if self.task not in TASK_NAMES:
            raise ValueError(f"data.task={self.task!r} is not a task; valid: {', '.join(TASK_NAMES)}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"data.mask_mode={self.mask_mode!r}; valid: {', '.join(MASK_MODES)}")
        _require(len(self.image_size) == 2 and min(self.image_size) >= MIN_IMAGE_SIZE, f"data.image_size={list(self.image_size)}: two sizes (H, W) of at least {MIN_IMAGE_SIZE} px")
        _require(self.normalize in ("none", "minmax", "zscore", "percentile"), f"data.normalize={self.normalize!r}; valid: none, minmax, zscore, percentile")
        _require(len(self.percentiles) == 2 and 0 <= self.percentiles[0] < self.percentiles[1] <= 100, f"data.percentiles={list(self.percentiles)}: two numbers 0 <= low < high <= 100")
        _require(self.patch_size is None or (len(self.patch_size) == 2 and all(MIN_IMAGE_SIZE <= p <= s for p, s in zip(self.patch_size, self.image_size))),
                 f"data.patch_size={self.patch_size}: (H, W) between {MIN_IMAGE_SIZE} px and data.image_size {list(self.image_size)}")
        _require(0 <= self.patch_fg_prob <= 1, f"data.patch_fg_prob={self.patch_fg_prob}: a probability in [0, 1]")
        _require(self.generated_ratio is None or (math.isfinite(self.generated_ratio) and self.generated_ratio >= 0), f"data.generated_ratio={self.generated_ratio}: >= 0, or null (all)")
        _require(not self.views or len(set(self.views)) == len(self.views), f"data.views={list(self.views or ())}: a view is named twice")
        _require(not self.train_extra_views or (self.view_filter is not None and not self.views and self.view_filter not in self.train_extra_views),
                 f"data.train_extra_views={list(self.train_extra_views)}: needs data.view_filter (the view validated and tested), not also in the list, and no data.views")
        from .transforms.regions import REGIONS

        _require(self.region is None or self.region in REGIONS, f"data.region={self.region!r}: one of {', '.join(REGIONS)}, or null (images used as given)")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet18"
    weights: str | None = None  # local state-dict file (torchvision/timm or scintix layout); nothing is ever downloaded
    weights_reduce: str = "sum"  # how a 3-channel pretrained first conv becomes 1-2 channels: sum | mean
    train_only: tuple[str, ...] = ()  # glob patterns of the parameters to train, the rest frozen (e.g. P3 stage 2: [features.layer4.*, "*.cross.*", fc.*]); () = all
    freeze_backbone: bool = False  # train only the classifier ...
    unfreeze_epoch: int | None = None  # ... until this epoch (0-based), then everything
    dropout: float | None = None  # None keeps the model's default
    small_input: bool = False  # stride-1 stem without early pooling (28 px MedMNIST-style inputs)
    stem: str | None = None  # ResNets: stride2 (ImageNet, default) | stride1 (7x7 stride 1 + max-pool, MONAI's default) | small (= small_input)
    deep_supervision: bool | None = None  # dynunet: also train two coarser decoder heads (None keeps the model's default, off)

    def __post_init__(self) -> None:
        _require(self.dropout is None or 0 <= self.dropout < 1, f"model.dropout={self.dropout}: in [0, 1)")
        _require(self.weights_reduce in ("sum", "mean"), f"model.weights_reduce={self.weights_reduce!r}: sum or mean")
        _require(self.unfreeze_epoch is None or self.unfreeze_epoch >= 0, f"model.unfreeze_epoch={self.unfreeze_epoch}: >= 0")
        _require(self.stem in (None, "stride2", "stride1", "small"), f"model.stem={self.stem!r}: stride2, stride1 or small (ResNets)")


@dataclass(frozen=True)
class TextConfig:
    """The report text path of text-guided models (``text_unet``, ``text_unet_film``); ignored by image-only models."""

    tokenizer: str = "auto"  # auto | char (Chinese) | word (English); built from the training reports, saved as tokenizer.json
    max_length: int = 128  # tokens per report, [CLS] included; longer reports are cut
    min_freq: int = 1  # a token seen fewer times in the training reports is [UNK]
    dim: int = 128  # the from-scratch text encoder's width ...
    layers: int = 2  # ... depth ...
    heads: int = 4  # ... and attention heads
    report_dropout: float = 0.25  # share of training scans whose report is withheld, so the model also works without one
    hf_model: str | None = None  # a local Hugging Face model folder (e.g. a Chinese MacBERT) instead; never downloaded
    hf_freeze: bool = True  # keep its weights fixed (only the fusion layers and the U-Net learn)
    fuse_stages: tuple[int, ...] = (1, 2, 3, 4)  # decoder stages that read the report: 1 (coarsest) .. 4 (full resolution); GuideDecoder fuses 3
    view_prefix: bool = False  # open each report with the image's view ("[ANT] ..."): sides named in a report flip between views
    position: str = "image"  # the fusion's position code: image (the pixel's place in the image) | body (in the body's frame; whole-body scans)
    prior: bool = False  # also a site prior: each report token votes a coarse lesion map in that frame, added to the foreground logits
    prior_input: bool = False  # also a site map (body frame) fed into the U-Net after its first block and trained against the masks as a second head

    def __post_init__(self) -> None:
        _require(self.tokenizer in ("auto", "char", "word"), f"text.tokenizer={self.tokenizer!r}: auto, char or word")
        _require(self.max_length >= 2, f"text.max_length={self.max_length}: at least 2")
        _require(self.min_freq >= 1, f"text.min_freq={self.min_freq}: at least 1")
        _require(self.dim >= 8 and self.heads >= 1 and self.dim % self.heads == 0, f"text.dim={self.dim}, text.heads={self.heads}: dim >= 8, a multiple of heads")
        _require(self.layers >= 1, f"text.layers={self.layers}: at least 1")
        _require(0 <= self.report_dropout < 1, f"text.report_dropout={self.report_dropout}: in [0, 1)")
        _require(bool(self.fuse_stages) and set(self.fuse_stages) <= {1, 2, 3, 4}, f"text.fuse_stages={list(self.fuse_stages)}: stages among 1, 2, 3, 4")
        _require(self.position in ("image", "body"), f"text.position={self.position!r}: image or body")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw | adam | sgd
    scheduler: str = "cosine"  # cosine | step | onecycle (lr/25 rising linearly over the first 30% of epochs, then cosine to lr/1e4; warmup_epochs unused) | none
    step_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of epochs, for scheduler=step (x0.1 each)
    warmup_epochs: int = 1
    class_balance: str = "loss"  # none | loss (inverse-frequency weights) | sampler (balanced batches)
    label_smoothing: float = 0.0
    focal_gamma: float = 0.0  # > 0: focal loss (cross-entropy x (1 - p_true)^gamma; 2 is the paper's), with class_balance=loss's weights if set; 0 = plain cross-entropy
    early_stop_patience: int = 8  # epochs without a better validation score; 0 disables
    select_metric: str = "roc_auc"  # picks the best checkpoint: roc_auc | pr_auc | balanced_accuracy | f1 | accuracy (higher wins) | loss (val loss, lower wins) | last (no selection: the final epoch, no early stop)
    select_max_loss_ratio: float = 0.0  # > 1: only epochs whose val loss is within this factor of the lowest so far can be selected (metric among well-fitted epochs); 0 = off
    ema: float = 0.0  # > 0: validate, select and ship an exponential moving average of the weights (decay per optimizer step, warmed up as min(ema, (1+t)/(10+t))); 0 = off
    precise_bn: bool = True  # before each validation, recompute BatchNorm statistics on training batches drawn as in training, not augmented (models with BatchNorm only)
    precise_bn_images: int = 2048  # at most this many training images for it (a seeded subset when there are more)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16; auto = bf16 only where the CPU has native bf16, AMP on CUDA
    channels_last: str | bool = "auto"  # auto (time both layouts on the real model for a few steps) | true | false
    num_workers: int = 0  # images are cached in memory after preprocessing, so 0 is usually fastest on CPU
    deterministic: bool = False  # torch.use_deterministic_algorithms
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, f"train.epochs={self.epochs}: at least 1")
        _require(self.batch_size >= 1, f"train.batch_size={self.batch_size}: at least 1")
        _require(math.isfinite(self.lr) and self.lr > 0, f"train.lr={self.lr}: a finite number > 0")
        _require(math.isfinite(self.weight_decay) and self.weight_decay >= 0, f"train.weight_decay={self.weight_decay}: >= 0")
        _require(self.warmup_epochs >= 0, f"train.warmup_epochs={self.warmup_epochs}: >= 0")
        _require(math.isfinite(self.focal_gamma) and self.focal_gamma >= 0, f"train.focal_gamma={self.focal_gamma}: >= 0 (0 = plain cross-entropy)")
        _require(0 <= self.label_smoothing < 1, f"train.label_smoothing={self.label_smoothing}: in [0, 1)")
        _require(self.early_stop_patience >= 0, f"train.early_stop_patience={self.early_stop_patience}: >= 0 (0 = off)")
        _require(math.isfinite(self.ema) and 0 <= self.ema < 1, f"train.ema={self.ema}: a decay in [0, 1) (e.g. 0.995), 0 = off")
        _require(self.precise_bn_images >= 1, f"train.precise_bn_images={self.precise_bn_images}: at least 1")
        _require(self.num_workers >= 0, f"train.num_workers={self.num_workers}: >= 0")
        _require(self.class_balance in ("none", "loss", "sampler"), f"train.class_balance={self.class_balance!r}; valid: none, loss, sampler")
        _require(self.precision in ("auto", "fp32", "bf16", "fp16"), f"train.precision={self.precision!r}; valid: auto, fp32, bf16, fp16")
        _require(str(self.channels_last) in ("auto", "True", "False", "true", "false"), f"train.channels_last={self.channels_last!r}; valid: auto, true, false")


@dataclass(frozen=True)
class EvalConfig:
    threshold: str = "youden"  # youden | specificity | fixed; always chosen on validation
    target_specificity: float = 0.9
    fixed_threshold: float = 0.5
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    splits: tuple[str, ...] = ("val", "test")
    calibrate: bool = True  # temperature scaling fitted on val; calibrated probabilities everywhere after
    tta: tuple[str, ...] = ()  # test-time augmentation, classification: [identity, shift] averages the probabilities over 2-px shifts; () = none
    # PNG figures per evaluated split (ROC, PR, confusion, reliability; a segmenter's gallery overlays). Off for sweeps whose
    # figures nobody opens (matplotlib is most of a small run's evaluation time); metrics, predictions and masks are the same.
    figures: bool = True

    def __post_init__(self) -> None:
        _require(self.threshold in ("youden", "specificity", "fixed"), f"eval.threshold={self.threshold!r}; valid: youden, specificity, fixed")
        _require(all(t in ("identity", "shift") for t in self.tta), f"eval.tta={list(self.tta)}: names among identity, shift")
        _require(0 <= self.target_specificity <= 1, f"eval.target_specificity={self.target_specificity}: in [0, 1]")
        _require(0 <= self.fixed_threshold <= 1, f"eval.fixed_threshold={self.fixed_threshold}: in [0, 1]")
        _require(self.n_bootstrap >= 0, f"eval.n_bootstrap={self.n_bootstrap}: >= 0")
        _require(0 < self.ci_level < 1, f"eval.ci_level={self.ci_level}: in (0, 1)")
        _require(all(sp in ("train", "val", "test") for sp in self.splits), f"eval.splits={list(self.splits)}: names among train, val, test")


@dataclass(frozen=True)
class GanConfig:
    """``scintix gan train``: a class-conditional DCGAN (:mod:`scintix.synthesis`) on the training split of ``data``."""

    epochs: int = 100
    batch_size: int = 32
    latent_dim: int = 128
    base_channels: int = 32  # generator/discriminator width at full resolution (x8 at the coarse end, capped)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)  # Adam; beta1 = 0 as in SN-GAN / BigGAN
    loss: str = "hinge"  # hinge | nonsaturating
    d_steps: int = 1  # discriminator updates per generator update, each on its own real batch (SN-GAN used 5, BigGAN 2)
    r1_gamma: float = 0.0  # > 0: R1 gradient penalty on real images, weight gamma / 2
    diffaug: tuple[str, ...] = ("color", "translation", "cutout")  # differentiable augmentation before the discriminator; [] = none
    ada_target: float = 0.0  # > 0: adaptive augmentation (ADA): each diffaug transform reaches an image with probability p, tuned so that E[sign(D(real))] stays near this target (0.6 in ADA); p starts at 0. 0 = always-on diffaug
    ada_kimg: float = 100.0  # ADA's speed: p can cross 0 -> 1 in this many thousand real images (ADA used 500, StyleGAN3 100)
    ema: float = 0.999  # decay of the generator-weight average used for sampling (warmed up: min(ema, (1+t)/(10+t)) after t updates); 0 = no average
    conditional: bool = True  # condition on the class (one-hot) or the labels (multi-hot)
    minibatch_std: bool = True  # the discriminator sees each group of 4 images' feature spread (against mode collapse)
    grid_per_class: int = 8  # sample grid written after every epoch: this many images per class

    def __post_init__(self) -> None:
        _require(self.epochs >= 1 and self.batch_size >= 2, f"gan.epochs={self.epochs}, gan.batch_size={self.batch_size}: epochs >= 1, batch >= 2")
        _require(self.latent_dim >= 1 and self.base_channels >= 4, f"gan.latent_dim={self.latent_dim}, gan.base_channels={self.base_channels}: >= 1, >= 4")
        _require(self.lr_g > 0 and self.lr_d > 0, f"gan.lr_g={self.lr_g}, gan.lr_d={self.lr_d}: > 0")
        _require(self.d_steps >= 1, f"gan.d_steps={self.d_steps}: at least 1 discriminator update per generator update")
        _require(self.loss in ("hinge", "nonsaturating"), f"gan.loss={self.loss!r}: hinge or nonsaturating")
        _require(self.r1_gamma >= 0 and 0 <= self.ema < 1, f"gan.r1_gamma={self.r1_gamma}, gan.ema={self.ema}: gamma >= 0, ema in [0, 1)")
        _require(all(p in ("color", "translation", "cutout") for p in self.diffaug), f"gan.diffaug={list(self.diffaug)}: names among color, translation, cutout")
        _require(0 <= self.ada_target < 1 and self.ada_kimg > 0, f"gan.ada_target={self.ada_target}, gan.ada_kimg={self.ada_kimg}: target in [0, 1) (0 = off), kimg > 0")
        _require(not self.ada_target or bool(self.diffaug), "gan.ada_target is set but gan.diffaug is empty: nothing to adapt")
        _require(self.grid_per_class >= 1, f"gan.grid_per_class={self.grid_per_class}: at least 1")


@dataclass(frozen=True)
class SRConfig:
    """``scintix sr train``: SRGAN super-resolution (:mod:`scintix.synthesis.srgan`); high-resolution images = ``data.image_size``."""

    scale: int = 2  # 2 | 4
    features: int = 32  # residual trunk width
    blocks: int = 8  # residual blocks
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-4
    perceptual_weight: float = 0.0  # > 0 needs feature_run: MSE between its feature maps of SR and real images
    feature_run: str | None = None  # a trained scintix classifier run on the same domain (its forward_features)
    adversarial_weight: float = 1e-3  # 0 = SRResNet (content losses only)

    def __post_init__(self) -> None:
        _require(self.scale in (2, 4), f"sr.scale={self.scale}: 2 or 4")
        _require(self.features >= 4 and self.blocks >= 1, f"sr.features={self.features}, sr.blocks={self.blocks}: >= 4, >= 1")
        _require(self.epochs >= 1 and self.batch_size >= 1 and self.lr > 0, f"sr.epochs={self.epochs}, sr.batch_size={self.batch_size}, sr.lr={self.lr}: >= 1, >= 1, > 0")
        _require(self.perceptual_weight >= 0 and self.adversarial_weight >= 0, "sr.perceptual_weight and sr.adversarial_weight: >= 0")
        _require(self.perceptual_weight == 0 or self.feature_run, "sr.perceptual_weight > 0 needs sr.feature_run (a trained scintix classifier run)")


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextConfig = field(default_factory=TextConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    sr: SRConfig = field(default_factory=SRConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    synthetic: dict[str, Any] = field(default_factory=dict)  # options for the built-in synthetic data
    stages: tuple[dict[str, Any], ...] = ()  # training in stages (P3): [{name: ..., set: {dotted.key: value}}, ...]; stage k > 0 starts from stage k-1's best weights, same split


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


def parse_yaml(text: str, where: str | Path) -> Any:
    """YAML text; invalid YAML is a one-line error naming ``where`` (a file) and the line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ValueError(f"{where}: invalid YAML{f' at line {mark.line + 1}' if mark else ''} ({getattr(exc, 'problem', None) or type(exc).__name__})") from None


def _recipe_yaml(recipe: str | Path) -> dict:
    raw = parse_yaml(_recipe_text(recipe), recipe)
    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"{recipe}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw or {}


def load_config(recipe: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Build a :class:`RunConfig` from a recipe (name or YAML path) and overrides.

    >>> cfg = load_config("quickstart", ["train.epochs=2"])
    >>> cfg.train.epochs
    2
    """
    raw: dict = _recipe_yaml(recipe) if recipe is not None else {}
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
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: the value is not valid YAML ({getattr(exc, 'problem', None) or type(exc).__name__}); quote text, close brackets") from None
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
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in raw.items():
        key = f"{where}.{name}" if where else name
        sub = _SECTIONS.get(getattr(hints[name], "__name__", ""))
        kwargs[name] = _build(sub, value, key) if sub is not None else _typed(value, hints[name], key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _typed(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the field's type (lists become tuples); a mismatch names the field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _typed(value, inner[0], key) if len(inner) == 1 else value
    if hint is Any or origin is dict:
        if origin is dict and not isinstance(value, dict):
            raise ValueError(f"{key}={value!r}: expected a mapping")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}={value!r}: expected a list, e.g. [{', '.join('...' for _ in args if _ is not Ellipsis) or '...'}]")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{key}={list(value)!r}: expected {len(args)} values")
        return tuple(_typed(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}={value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}={value!r}: expected a whole number")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-9 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key}={value!r}: expected a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"{key}={value!r}: expected a number")
        return float(value)
    if hint is str:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # class names like 0 / 1
        if not isinstance(value, str):
            raise ValueError(f"{key}={value!r}: expected text")
        return value
    return value


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


_SECTIONS = {c.__name__: c for c in (DataConfig, SplitConfig, AugmentConfig, ModelConfig, TextConfig, GanConfig, SRConfig, TrainConfig, EvalConfig)}


def config_to_dict(cfg: Any) -> dict:
    """Plain nested dict (tuples as lists) for YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def config_differences(a: Any, b: Any, ignore: tuple[str, ...] = ()) -> list[str]:
    """The dotted settings where two configs differ, each as ``key: a -> b`` (what a refusal to reuse a folder names);
    ``ignore``: dotted keys that may differ."""

    def flat(d: dict, prefix: str = "") -> dict:
        out: dict = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
        return out

    fa, fb = flat(config_to_dict(a)), flat(config_to_dict(b))
    return [f"{k}: {fa.get(k)!r} -> {fb.get(k)!r}" for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k) and k not in ignore]
