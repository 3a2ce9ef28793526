"""ONNX export of a run's best model, its parity check, and an ONNX Runtime engine behind the torch model's interface.

``export_onnx`` writes ``checkpoints/best.onnx`` beside ``best.pt`` and
``checkpoints/best.onnx.json``: the opset, the input and output names and
shapes, the SHA-256 of what it came from (:func:`source_fingerprint`), and
the parity check on the run's test images (max |logit difference| between
torch fp32 and ONNX Runtime, and whether every decision is the same). The
engine refuses an ONNX file whose parity failed or whose source has changed
since.

An ensemble folder (``scintix ensemble``, a finished ``scintix cv``) exports
as one graph: every member and the averaging of their calibrated
probabilities, written to the ensemble folder's ``checkpoints/``; its source
is ``ensemble.json`` and every member's checkpoint. A run with test-time
augmentation (``eval.tta``) exports with its transformed copies in the graph,
and its source includes the transforms' names.

Choices: batch is the one dynamic axis; height and width are the run's
``data.image_size`` (every input is resized to it before the model), or a
patch-trained segmenter's ``roi_size``, whose whole-image inference then goes
by MONAI's sliding windows around the ONNX session, as the torch model does.
The TorchScript exporter is used (``dynamo=False``): it needs no extra
package beyond ``onnx`` and handles every model of the zoo; opset 17.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_path
from .._optional import require
from ..models.segmentation import sliding_window
from ..runfolder import (
    ENSEMBLE_FILE,
    ensemble_members,
    final_stage,
    load_run_config,
    read_json,
)

__all__ = ["export_onnx", "OnnxModel", "load_onnx_model", "with_engine", "onnx_paths", "parity_check", "source_fingerprint", "ENGINES", "DEFAULT_OPSET",
           "PARITY_TOLERANCE"]

ENGINES = ("torch", "onnx")

DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |logit| difference torch fp32 vs ONNX Runtime; float32 kernels differ in summation order


def onnx_paths(run_dir: str | Path) -> tuple[Path, Path]:
    """(model, record) paths: ``checkpoints/best.onnx`` and ``checkpoints/best.onnx.json``."""
    ck = Path(run_dir) / "checkpoints"
    return ck / "best.onnx", ck / "best.onnx.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_fingerprint(run_dir: str | Path) -> str:
    """A SHA-256 of what an export of ``run_dir`` computes: its ``best.pt`` (plain runs: exactly the checkpoint's SHA-256),
    with ``eval.tta``'s names folded in; for an ensemble folder, over ``ensemble.json`` and each member's fingerprint.

    Raises ``FileNotFoundError`` when a file it needs is missing.
    """
    run_dir = final_stage(Path(run_dir))
    spec_path = run_dir / ENSEMBLE_FILE
    if spec_path.is_file():
        h = hashlib.sha256(spec_path.read_bytes())
        for m in ensemble_members(run_dir)[1]:
            h.update(source_fingerprint(m).encode())
        return h.hexdigest()
    sha = _sha256(run_dir / "checkpoints" / "best.pt")
    tta = load_run_config(run_dir).eval.tta
    return hashlib.sha256(f"{sha}|tta={','.join(tta)}".encode()).hexdigest() if tta else sha


class OnnxModel(nn.Module):
    """An ONNX Runtime session called like the torch model: ``model(x) -> logits`` (torch tensors, CPU, float32).

    Carries what callers read off a scintix model (``kind``, ``inputs``,
    ``num_classes``, ``roi_size``). Has no parameters: CAM methods need the
    torch engine.
    """

    def __init__(self, path: str | Path, record: dict, threads: int | None = None) -> None:
        super().__init__()
        ort = require("onnxruntime")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.kind = record["kind"]
        self.inputs = ("image",)
        self.num_classes = record["num_classes"]
        self.roi_size = tuple(record["roi_size"]) if record.get("roi_size") else None
        self.path = Path(path)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().float().contiguous().numpy()})[0]
        return torch.from_numpy(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.roi_size is not None and (x.shape[-2] > self.roi_size[0] or x.shape[-1] > self.roi_size[1]):
            return sliding_window(x.float(), self.roi_size, self._run)
        return self._run(x)


def load_onnx_model(run_dir: str | Path, threads: int | None = None) -> OnnxModel:
    """The run's exported model, checked: it exists, passed its parity check, and comes from the current ``best.pt``."""
    path, rec_path = onnx_paths(run_dir)
    if not path.is_file() or not rec_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no ONNX export (checkpoints/best.onnx); run `scintix export {run_dir} --format onnx` first")
    record = read_json(rec_path)
    try:
        now = source_fingerprint(run_dir)
    except FileNotFoundError:  # the ONNX file deployed without its checkpoints: nothing to compare with
        now = None
    if now is not None and record.get("source_sha256", record.get("checkpoint_sha256")) != now:
        raise ValueError(f"{path}: exported from another checkpoint (or ensemble, or test-time augmentation) than {run_dir} has now; "
                         f"run `scintix export {run_dir} --format onnx` again")
    if not record.get("parity", {}).get("passed"):
        raise ValueError(f"{path}: its parity check did not pass ({rec_path}); not used")
    return OnnxModel(path, record, threads)


def with_engine(run, engine: str):
    """``run`` (a :class:`~scintix.runfolder.LoadedRun`) with its model run by ``engine``: torch as loaded, or the checked ONNX export on the CPU in fp32."""
    if engine == "torch":
        return run
    if engine != "onnx":
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    return dataclasses.replace(run, model=load_onnx_model(run.run_dir), device=torch.device("cpu"), amp=None)


def _decisions(run, logits: np.ndarray) -> list:
    probs = run.task.activation(torch.from_numpy(logits) / run.temperature).numpy()
    if run.task.dense:
        return list(run.task.masks(probs, run.thresholds, run.classes))
    return [run.task.decide(p, run.thresholds, run.classes) for p in probs]


def _test_arrays(run, images, max_images: int) -> tuple[list[np.ndarray], str]:
    from ..data.datasets import preprocess
    from ..data.prepare import prepare_data
    from .predict import prepare_units

    d = run.cfg.data
    if images is not None:
        _, arrays, _ = prepare_units(run.cfg, images)
        return arrays[:max_images], str(images)
    source = run.run_dir
    if (source / ENSEMBLE_FILE).is_file():  # an ensemble has no split of its own: its first member's test images
        source = final_stage(ensemble_members(source)[1][0])
    try:
        samples = prepare_data(run.cfg, source, write=False).samples["test"]
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{source}: the run's test images cannot be read ({exc}); name other images with --images") from None
    arrays = [preprocess(s.paths, tuple(d.image_size), d.normalize, tuple(d.percentiles), windows=d.windows) for s in samples[:max_images]]
    return arrays, "the run's test split"


def export_model(model: nn.Module, path: str | Path, channels: int, size: tuple[int, int], opset: int = DEFAULT_OPSET) -> tuple[int, int] | None:
    """Write ``model`` (eval mode, fp32, CPU) to ``path`` as ONNX with a dynamic batch axis; returns the ``roi_size`` exported instead of ``size``, if any.

    Input ``image`` ``(batch, channels, H, W)``, output ``logits``. A
    patch-trained segmenter is exported at its patch size (see :class:`OnnxModel`).
    """
    model = model.float().cpu().eval()
    roi = tuple(model.roi_size) if getattr(model, "roi_size", None) else None
    h, w = roi or size  # traced at its patch size, a patch-trained segmenter takes its padded path, no sliding windows
    with atomic_path(Path(path)) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes and tracer warnings, not the user's concern
        torch.onnx.export(model, (torch.zeros(1, channels, h, w),), str(tmp), input_names=["image"], output_names=["logits"], opset_version=opset,
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return roi


def export_onnx(run_dir: str | Path, opset: int = DEFAULT_OPSET, images: str | Path | None = None, max_images: int = 512, batch_size: int = 16) -> dict:
    """Export ``run_dir``'s best model to ONNX and check it against torch on the test images; returns the record written.

    Args:
        run_dir: an evaluated run folder.
        opset: the ONNX opset.
        images: check parity on these images (file, folder or manifest) instead of the run's test split.
        max_images: at most this many images in the parity check.
        batch_size: the parity check's batch (a batch other than the export's 1 exercises the dynamic axis).
    """
    require("onnx")
    require("onnxruntime")
    from ..runfolder import in_channels, load_run

    run = load_run(run_dir)
    model = run.model.float().cpu().eval()
    if tuple(getattr(model, "inputs", ("image",))) != ("image",):
        raise ValueError(f"{run_dir}: model {run.cfg.model.name} takes inputs {model.inputs}; ONNX export handles one-image models only")
    h, w = tuple(run.cfg.data.image_size)
    path, rec_path = onnx_paths(run.run_dir)  # a staged run's folder: its last stage's checkpoints
    rec_path.unlink(missing_ok=True)  # until the new export is checked, no record vouches for it
    start = time.perf_counter()
    roi = export_model(model, path, in_channels(run.cfg), (h, w), opset)
    export_s = time.perf_counter() - start
    h, w = roi or (h, w)
    record = {
        "format": "onnx", "opset": opset, "file": path.name, "run": str(run.run_dir), "model": run.cfg.model.name, "kind": model.kind,
        "num_classes": len(run.classes), "classes": run.classes, "input": {"name": "image", "shape": ["batch", in_channels(run.cfg), h, w], "dtype": "float32"},
        "output": {"name": "logits", "shape": ["batch", len(run.classes)] + ([h, w] if run.task.dense else [])},
        "roi_size": list(roi) if roi else None, "source_sha256": source_fingerprint(run.run_dir),
        "ensemble_members": len(model.members) if hasattr(model, "members") else None, "tta": list(run.cfg.eval.tta) if hasattr(model, "transforms") else None,
        "torch": torch.__version__, "exported": time.strftime("%Y-%m-%dT%H:%M:%S"), "export_seconds": round(export_s, 2),
        "synthetic": run.synthetic,
    }
    arrays, where = _test_arrays(run, images, max_images)
    record["parity"] = parity_check(model, OnnxModel(path, record), arrays, run, batch_size) | {"images": where}
    with atomic_path(rec_path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    return record


def parity_check(model: nn.Module, onnx_model: OnnxModel, arrays: list[np.ndarray], run, batch_size: int = 16) -> dict:
    """Torch fp32 vs ONNX Runtime on ``arrays``: max |logit difference|, decisions compared, passed or not."""
    import onnxruntime

    if not arrays:
        raise ValueError(f"{run.run_dir}: no images to check the export on")
    worst, same, n = 0.0, 0, 0
    for start in range(0, len(arrays), batch_size):
        x = torch.from_numpy(np.stack(arrays[start : start + batch_size])).float()
        with torch.no_grad():
            a = model(x).float().numpy()
        b = onnx_model(x).numpy()
        worst = max(worst, float(np.abs(a - b).max()))
        for da, db in zip(_decisions(run, a), _decisions(run, b)):
            same += int(np.array_equal(np.asarray(da), np.asarray(db)))
            n += 1
    return {"n_images": n, "max_abs_logit_diff": worst, "tolerance": PARITY_TOLERANCE, "decisions_identical": same == n, "decisions_differing": n - same,
            "passed": bool(worst <= PARITY_TOLERANCE and same == n), "onnxruntime": onnxruntime.__version__}
