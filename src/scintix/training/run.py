"""A training run end to end: data -> split -> train (resumable) -> evaluate.

Run folder layout::

    config.yaml  meta.json  split.csv  data_summary.json  history.csv  tb/
    checkpoints/best.pt  checkpoints/last.pt
    eval/thresholds.json  eval/<split>/{metrics.json, predictions.csv, roc.png, confusion.png}
"""

from __future__ import annotations

import csv
import json
import logging
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, WeightedRandomSampler

from .. import __version__
from ..config import RunConfig, _build, config_to_dict
from ..data.datasets import CachedDataset
from ..data.prepare import PreparedData, prepare_data
from ..evaluation import calibration, report
from ..evaluation.card import write_model_card
from ..evaluation.health import assess_model, health_banner
from ..models import create_model
from ..models.weights import freeze_backbone
from ..transforms.augment import Augmenter
from .batchnorm import has_batchnorm, recompute_batchnorm, train_eval_gap
from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from .loop import make_criterion, predict, probabilities, train_one_epoch
from .perf import autocast, choose_channels_last, resolve_device, resolve_precision

__all__ = ["train_run", "evaluate_run", "load_run_config", "build_model_for_run"]

log = logging.getLogger(__name__)


def load_run_config(run_dir: str | Path) -> RunConfig:
    return _build(RunConfig, yaml.safe_load((Path(run_dir) / "config.yaml").read_text()), "")


def _datasets(cfg: RunConfig, data: PreparedData) -> dict[str, CachedDataset]:
    d = cfg.data
    aug = Augmenter(cfg.augment) if cfg.augment.enabled else None
    out = {}
    for split, samples in data.samples.items():
        # A random transform never touches validation or test images.
        out[split] = CachedDataset(samples, tuple(d.image_size), d.normalize, tuple(d.percentiles), aug if split == "train" else None, cfg.train.seed, progress=cfg.train.progress, windows=d.windows)
    return out


def build_model_for_run(cfg: RunConfig, n_classes: int) -> torch.nn.Module:
    in_ch = (len(cfg.data.views) if cfg.data.views else 1) * (len(cfg.data.windows) if cfg.data.windows else 1)
    m = cfg.model
    return create_model(m.name, in_channels=in_ch, num_classes=n_classes, weights=m.weights, weights_reduce=m.weights_reduce, freeze=m.freeze_backbone,
                        dropout=m.dropout, small_input=m.small_input or None)


def _class_weights(targets: np.ndarray, task: str, k: int) -> torch.Tensor:
    if task == "multilabel":
        pos = targets.sum(0)
        return torch.tensor((len(targets) - pos) / np.maximum(pos, 1), dtype=torch.float32)
    counts = np.bincount(targets.astype(int).ravel(), minlength=k).astype(float)
    w = len(targets) / (k * np.maximum(counts, 1))
    return torch.tensor(w, dtype=torch.float32)


def _loader(ds: CachedDataset, cfg: RunConfig, train: bool, epoch: int) -> DataLoader:
    t = cfg.train
    g = torch.Generator().manual_seed(t.seed * 7919 + epoch)
    if train and t.class_balance == "sampler":
        targets = ds.targets
        key = targets.astype(int) if targets.ndim == 1 else targets.argmax(1)
        freq = np.bincount(key)
        weights = 1.0 / freq[key]
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(ds), replacement=True, generator=g)
        return DataLoader(ds, batch_size=t.batch_size, sampler=sampler, num_workers=t.num_workers, drop_last=len(ds) > t.batch_size)
    return DataLoader(ds, batch_size=t.batch_size, shuffle=train, generator=g if train else None, num_workers=t.num_workers, drop_last=train and len(ds) > t.batch_size)


def _schedule(cfg: RunConfig, optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    t = cfg.train
    warm = max(0, min(t.warmup_epochs, t.epochs - 1))

    def factor(epoch: int) -> float:
        if epoch < warm:
            return (epoch + 1) / (warm + 1)
        if t.scheduler == "cosine":
            span = max(1, t.epochs - warm)
            return float(0.5 * (1 + np.cos(np.pi * (epoch - warm) / span)))
        if t.scheduler == "step":
            return float(0.1 ** sum(epoch >= m * t.epochs for m in t.step_milestones))
        return 1.0

    if t.scheduler not in ("cosine", "step", "none"):
        raise ValueError(f"unknown scheduler {t.scheduler!r}; choose from cosine, step, none")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optimizer(cfg: RunConfig, params):
    t = cfg.train
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    raise ValueError(f"unknown optimizer {t.optimizer!r}; choose from adamw, adam, sgd")


SELECT_METRICS = ("roc_auc", "pr_auc", "balanced_accuracy", "f1", "accuracy", "loss")


def _check_selection(t) -> None:
    if t.select_metric not in SELECT_METRICS:
        raise ValueError(f"unknown train.select_metric {t.select_metric!r}; choose from {', '.join(SELECT_METRICS)}")
    if t.select_max_loss_ratio and t.select_max_loss_ratio <= 1:
        raise ValueError(f"train.select_max_loss_ratio must be 0 (off) or > 1, got {t.select_max_loss_ratio}")


def _plain_view(ds: CachedDataset) -> CachedDataset:
    """The same cached images without augmentation (shares the arrays)."""
    import copy

    view = copy.copy(ds)
    view.augment = None
    return view


def _bn_batches(ds: CachedDataset, cfg: RunConfig, epoch: int, device: torch.device, channels_last: bool):
    """Training batches drawn exactly as in training (same sampler: balanced batches stay balanced), without augmentation.

    BatchNorm learned with the statistics of those batches; population statistics of a different mix
    (e.g. natural prevalence instead of the balanced sampler's 50/50) shift every logit.
    """
    t = cfg.train
    n = 0
    for batch in _loader(_plain_view(ds), cfg, True, epoch):
        x = batch[0].to(device)
        yield x.contiguous(memory_format=torch.channels_last) if channels_last else x
        n += len(x)
        if n >= t.precise_bn_images:
            break


def _precise_bn(model, ds: CachedDataset, cfg: RunConfig, epoch: int, device, amp, channels_last: bool) -> int:
    if not (cfg.train.precise_bn and has_batchnorm(model)):
        return 0

    def forward(m, x):
        with autocast(device, amp):
            m(x)

    return recompute_batchnorm(model, _bn_batches(ds, cfg, epoch, device, channels_last), forward)


def _score(probs: np.ndarray, targets: np.ndarray, task: str, metric: str) -> float:
    from ..evaluation.metrics import binary_metrics

    y = report.one_vs_rest(targets, task, probs.shape[1])
    cols = [1] if task == "binary" else list(range(probs.shape[1]))
    vals = [binary_metrics(y[:, c], probs[:, c], 0.5)[metric] for c in cols]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def train_run(cfg: RunConfig, run_dir: str | Path, resume: bool = False, max_epochs: int | None = None) -> Path:
    """Train (or resume) a run in ``run_dir``, then evaluate it; returns ``run_dir``.

    Args:
        cfg: the resolved config (ignored on resume: the saved one is used).
        run_dir: the run folder; must not hold a run unless ``resume``.
        resume: continue from ``checkpoints/last.pt``.
        max_epochs: stop after this many epochs in total (used to simulate an interruption).
    """
    run_dir = Path(run_dir)
    last_path = run_dir / "checkpoints" / "last.pt"
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        cfg = load_run_config(run_dir)
    elif (run_dir / "config.yaml").exists():
        raise FileExistsError(f"{run_dir} already holds a run; use --resume to continue it or pick another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    t = cfg.train
    from .seed import seed_everything

    seed_everything(t.seed, t.deterministic)
    _check_selection(t)
    if not resume:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    data = prepare_data(cfg, run_dir)
    if not data.samples["train"] or not data.samples["val"]:
        raise ValueError(f"empty train or val split ({ {k: len(v) for k, v in data.samples.items()} }); need more patients")
    device = resolve_device(t.device)
    amp = resolve_precision(t.precision, device)
    meta = {
        "scintix_version": __version__, "torch_version": torch.__version__, "python": platform.python_version(), "host": platform.node(),
        "device": str(device), "autocast_dtype": str(amp) if amp else "fp32", "seed": t.seed, "synthetic": data.synthetic,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "classes": data.classes,
    }
    ds = _datasets(cfg, data)
    model = build_model_for_run(cfg, len(data.classes)).to(device)
    weights = _class_weights(ds["train"].targets, cfg.data.task, len(data.classes)).to(device) if t.class_balance == "loss" else None
    criterion = make_criterion(cfg.data.task, weights, t.label_smoothing)
    eval_criterion = make_criterion(cfg.data.task, None)
    optimizer = _optimizer(cfg, model.parameters())
    scheduler = _schedule(cfg, optimizer)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    state = {"epoch": 0, "best_score": -np.inf, "best_epoch": -1, "bad_epochs": 0, "history": [], "channels_last": None}
    if resume:
        ck = load_checkpoint(last_path)
        load_model_state(model, ck["model"], run_dir / "checkpoints" / "last.pt")
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["lr_scheduler"])
        state = ck["state"]
        log.info("resuming %s at epoch %d", run_dir, state["epoch"])
    if state["channels_last"] is None:
        x0, y0, _ = next(iter(_loader(ds["train"], cfg, True, 0)))

        def step(m, x):
            with autocast(device, amp):
                criterion(m(x.to(device)).float(), (y0.float() if cfg.data.task == "multilabel" else y0.long()).to(device)).backward()

        state["channels_last"] = choose_channels_last(t.channels_last, model, x0, step)
    cl = state["channels_last"]
    if cl:
        model = model.to(memory_format=torch.channels_last)
    meta["channels_last"] = cl
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    writer = _tensorboard(run_dir / "tb") if t.tensorboard else None
    stop_at = min(t.epochs, max_epochs or t.epochs)
    for epoch in range(state["epoch"], stop_at):
        # Everything random in an epoch derives from (seed, epoch): a resumed run replays it exactly.
        torch.manual_seed(t.seed * 1_000_003 + epoch)
        if cfg.model.freeze_backbone and cfg.model.unfreeze_epoch is not None:
            freeze_backbone(model, epoch < cfg.model.unfreeze_epoch)
        ds["train"].set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        tr = train_one_epoch(model, criterion, optimizer, _loader(ds["train"], cfg, True, epoch), device, cfg.data.task, amp, scaler, cl, t.progress, f"epoch {epoch + 1}/{t.epochs}")
        scheduler.step()
        bn_batches = _precise_bn(model, ds["train"], cfg, epoch, device, amp, cl)
        pv = predict(model, _loader(ds["val"], cfg, False, epoch), device, cfg.data.task, amp, cl, eval_criterion)
        val_targets = ds["val"].targets[pv["index"]]
        auc = _score(pv["probs"], val_targets, cfg.data.task, "roc_auc")
        metric = float(pv["loss"]) if t.select_metric == "loss" else (auc if t.select_metric == "roc_auc" else _score(pv["probs"], val_targets, cfg.data.task, t.select_metric))
        score = -metric if t.select_metric == "loss" else metric  # internally higher is better
        row = {"epoch": epoch + 1, "lr": float(lr), "train_loss": float(tr["loss"]), "val_loss": float(pv["loss"]), "val_roc_auc": float(auc)}
        if t.select_metric not in ("loss", "roc_auc"):
            row[f"val_{t.select_metric}"] = float(metric)
        row["train_images_per_s"] = float(tr["images_per_s"])
        state["history"].append(row)
        # Combined criterion: the metric decides only among epochs whose val loss is near the lowest seen so far.
        losses = [r["val_loss"] for r in state["history"] if np.isfinite(r["val_loss"])]
        eligible = not t.select_max_loss_ratio or (np.isfinite(pv["loss"]) and pv["loss"] <= t.select_max_loss_ratio * min(losses))
        improved = (eligible and np.isfinite(score) and score > state["best_score"]) or state["best_epoch"] < 0
        if improved:
            state.update(best_score=float(score) if np.isfinite(score) else -np.inf, best_epoch=epoch + 1, bad_epochs=0)
            selection = {"epoch": epoch + 1, "criterion": t.select_metric, "value": float(metric), "val_loss": float(pv["loss"]), "val_roc_auc": float(auc),
                         "max_loss_ratio": t.select_max_loss_ratio or None, "precise_bn_batches": bn_batches}
            save_checkpoint({"model": _plain_state(model), "epoch": epoch + 1, "score": score, "classes": data.classes, "selection": selection}, run_dir / "checkpoints" / "best.pt")
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        save_checkpoint({"model": _plain_state(model), "optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(), "state": state, "classes": data.classes}, last_path)
        _log_epoch(run_dir, row, writer)
        log.info("epoch %d: train loss %.4f, val loss %.4f, val roc_auc %.4f%s%s", epoch + 1, tr["loss"], pv["loss"], auc,
                 "" if t.select_metric in ("loss", "roc_auc") else f", val {t.select_metric} {metric:.4f}", " *" if improved else "")
        if t.early_stop_patience and state["bad_epochs"] >= t.early_stop_patience:
            log.info("early stop: no better val %s for %d epochs", t.select_metric, t.early_stop_patience)
            break
    if writer is not None:
        writer.close()
    finished = state["epoch"] >= t.epochs or bool(t.early_stop_patience and state["bad_epochs"] >= t.early_stop_patience)
    if finished:
        evaluate_run(run_dir, data=data, datasets=ds)
    return run_dir


def _assess(run_dir: Path, cfg: RunConfig, model, train_ds: CachedDataset | None, val_probs_raw, val_targets, thresholds, classes, ck: dict, device, amp) -> dict:
    """eval/health.json: degenerate-model checks, the train/eval-mode gap and how the checkpoint was selected."""
    gap = None
    gap_images = 0
    if train_ds is not None and len(train_ds) and has_batchnorm(model):
        plain = _plain_view(train_ds)
        idx = np.random.default_rng(cfg.train.seed).permutation(len(plain))[:64]
        x = torch.stack([plain[int(i)][0] for i in idx]).to(device)
        with autocast(device, amp):
            gap = train_eval_gap(model, x, lambda z: probabilities(z, cfg.data.task))
        gap_images = len(idx)
    history = []
    if (run_dir / "history.csv").is_file():
        with open(run_dir / "history.csv") as fh:
            history = list(csv.DictReader(fh))
    selection = ck.get("selection") or {"epoch": ck.get("epoch"), "criterion": cfg.train.select_metric}
    health = assess_model(val_probs_raw, val_targets, cfg.data.task, classes, report.class_columns(cfg.data.task, classes), thresholds, history, selection.get("epoch"), gap)
    health["selection"] = selection
    health["train_eval_gap_images"] = gap_images
    if health["degenerate"]:
        log.warning("%s", health_banner(health))
    return health


def _selection_line(health: dict) -> str:
    s = health.get("selection") or {}
    if s.get("epoch") is None:
        return ""
    extra = f", val loss {s['val_loss']:.4f}, val roc_auc {s['val_roc_auc']:.4f}" if s.get("val_loss") is not None else ""
    guard = f" among epochs with val loss <= {s['max_loss_ratio']}x the lowest" if s.get("max_loss_ratio") else ""
    return f"selected epoch {s['epoch']} by validation {s.get('criterion')}{guard}{extra}"


def _plain_state(model: torch.nn.Module) -> dict:
    # Contiguous copies: a channels-last model's checkpoint loads into either layout.
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _tensorboard(path: Path):
    from .._optional import has

    if not has("tensorboard"):
        log.warning("tensorboard is not installed; TensorBoard logs are skipped (pip install 'scintix[tensorboard]')")
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def _log_epoch(run_dir: Path, row: dict, writer) -> None:
    path = run_dir / "history.csv"
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
    if writer is not None:
        for k, v in row.items():
            if k != "epoch":
                writer.add_scalar(k, v, row["epoch"])
        writer.flush()


def evaluate_run(run_dir: str | Path, data: PreparedData | None = None, datasets: dict | None = None, checkpoint: str = "best") -> dict:
    """Evaluate a run's best checkpoint: threshold on val, metrics + CIs on each eval split.

    Writes ``eval/`` (see module docstring) and returns ``{split: metrics}``.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if data is None:
        data = prepare_data(cfg, run_dir)
    if datasets is None:
        datasets = _datasets(replace(cfg, augment=replace(cfg.augment, enabled=False)), data)
    device = resolve_device(cfg.train.device)
    amp = resolve_precision(cfg.train.precision, device)
    model = build_model_for_run(cfg, len(data.classes))
    ck_path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    ck = load_checkpoint(ck_path)
    load_model_state(model, ck["model"], ck_path)
    model.to(device)
    task, classes, ecfg = cfg.data.task, data.classes, cfg.eval
    preds = {}
    for split in dict.fromkeys(("val", *ecfg.splits)):
        ds = datasets.get(split)
        if ds is None or len(ds) == 0:
            continue
        out = predict(model, DataLoader(ds, batch_size=cfg.train.batch_size), device, task, amp)
        preds[split] = (out["logits"], ds.targets[out["index"]], [ds.samples[i] for i in out["index"]])
    if "val" not in preds:
        raise ValueError(f"{run_dir}: no validation predictions; the threshold must come from validation data")
    eval_dir = run_dir / "eval"
    eval_dir.mkdir(exist_ok=True)
    fit = calibration.calibrate_temperature(preds["val"][0], preds["val"][1], task) if ecfg.calibrate else calibration.TemperatureFit(1.0, "disabled")
    temperature = fit.temperature
    if not fit.fitted and ecfg.calibrate:
        log.warning("%s: %s", run_dir, fit.describe())
    calib = {**fit.to_dict(), "fitted_on": "val", "method": "temperature scaling (NLL)" if ecfg.calibrate else "none", "ece": {}}
    raw = {}
    for split, (logits, targets, samples) in list(preds.items()):
        raw[split] = calibration.apply_temperature(logits, 1.0, task)
        calibrated = calibration.apply_temperature(logits, temperature, task)
        calib["ece"][split] = {"raw": calibration.expected_calibration_error(raw[split], targets, task), "calibrated": calibration.expected_calibration_error(calibrated, targets, task)}
        preds[split] = (calibrated, targets, samples)
    report.save_json(eval_dir / "calibration.json", calib)
    thresholds = report.choose_thresholds(preds["val"][0], preds["val"][1], task, classes, ecfg)
    report.save_json(eval_dir / "thresholds.json", {"thresholds": thresholds, "method": ecfg.threshold, "target_specificity": ecfg.target_specificity, "chosen_on": "val"})
    health = _assess(run_dir, cfg, model, datasets.get("train"), raw["val"], preds["val"][1], thresholds, classes, ck, device, amp)
    report.save_json(eval_dir / "health.json", health)
    results = {}
    for split, (probs, targets, samples) in preds.items():
        if split not in ecfg.splits:
            continue
        res = report.evaluate_predictions(probs, targets, [s.patient_id for s in samples], thresholds, task, classes, ecfg, seed=cfg.train.seed)
        res.update(split=split, synthetic=data.synthetic, threshold_method=f"{ecfg.threshold} on val", ci=f"{ecfg.ci_level:.0%} patient-level bootstrap, {ecfg.n_bootstrap} replicates")
        d = eval_dir / split
        d.mkdir(exist_ok=True)
        report.save_json(d / "metrics.json", res)
        report.write_predictions(d / "predictions.csv", samples, probs, thresholds, task, classes)
        tag = " (SYNTHETIC)" if data.synthetic else ""
        report.plot_roc(d / "roc.png", probs, targets, task, classes, f"ROC, {split}{tag}")
        report.plot_confusion(d / "confusion.png", probs, targets, thresholds, task, classes, f"{split}{tag}")
        report.plot_pr(d / "pr.png", probs, targets, task, classes, f"precision-recall, {split}{tag}")
        calibration.plot_reliability(d / "reliability.png", raw[split], probs, targets, task, f"calibration, {split}{tag} ({'T = ' + format(temperature, '.2f') + ', fitted on val' if fit.fitted else 'not fitted: raw'})")
        res["calibration"] = {"temperature": temperature, "status": fit.status, "summary": fit.describe(), **calib["ece"][split]}
        res["health"] = {"degenerate": health["degenerate"], "flags": [f["message"] for f in health["flags"]]}
        report.save_json(d / "metrics.json", res)
        results[split] = res
    table = report.format_table(results, data.synthetic)
    lines = table.split("\n")
    lines.insert(1 if data.synthetic else 0, health_banner(health))  # the SYNTHETIC line stays first
    table = "\n".join(filter(None, [*lines, f"calibration: {fit.describe()}", _selection_line(health)]))
    (eval_dir / "metrics_table.txt").write_text(table + "\n")
    write_model_card(run_dir)
    return results
