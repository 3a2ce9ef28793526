"""``scintix``: one command, thin subcommands over public functions.

    scintix run [--recipe NAME|FILE] [--data PATH] [--out DIR] [-o section.field=value ...] [--resume]
    scintix evaluate RUN
    scintix predict RUN INPUT [--out FILE.csv|.json] [--engine torch|onnx] [--dicom-out DIR [--deidentify]]
    scintix export RUN --format onnx [--opset 17] [--images INPUT]
    scintix serve RUN [RUN ...] [--host 127.0.0.1] [--port 8000] [--engine torch|onnx] [--token T]
    scintix split DATA [--out split.csv] [--folds K]
    scintix augment DATA --split split.csv --out DIR [--copies N]
    scintix synthetic OUT_DIR [--patients N]
    scintix simulate OUT_DIR [--mode bone|thyroid|headct] [--n N] [--seed S] [--counts C] [--format png|dicom|npy] [--prevalence label=p ...]
    scintix crop INPUT --out DIR [--margin 0.05] [--side both|image_left|image_right]
    scintix manifest DICOM_FOLDER --out manifest.csv
    scintix explain RUN INPUT --out DIR [--method gradcam gradcam++ scorecam occlusion] [--target CLASS]
    scintix report RUN
    scintix recipes
    scintix models [--size H W]

Errors in the user's input (a bad manifest, an unreadable file, an unknown
config key) print one line naming the file and the problem, exit code 2.
Commands over many inputs (``predict``, ``explain``, ``crop``) give every
input a row or line, result or reason, and exit 0 when every input worked,
1 when some did not (each named on stderr), 2 when none did.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .cv import add_cv_parser, cmd_cv, cmd_ensemble
from .data import DATA_COMMANDS, add_data_parsers, batch_exit
from .gan import add_gan_parser, cmd_gan
from .sr import SR_COMMANDS, add_sr_parser, cmd_sr

log = logging.getLogger("scintix")


def _common_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="quickstart", help="recipe name (see `scintix recipes`) or YAML file [quickstart]")
    p.add_argument("--data", help="manifest CSV, MedMNIST .npz, or a folder holding one; omitted = built-in synthetic data")
    p.add_argument("--out", help="run folder [runs/<recipe>-<time>]")
    p.add_argument("--epochs", type=int, help="shortcut for -o train.epochs=N")
    p.add_argument("--seed", type=int, help="shortcut for -o train.seed=N (and the split seed)")
    p.add_argument("--device", help="auto | cpu | cuda (shortcut for -o train.device=...)")
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. -o data.image_size=[64,32]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--report", action="store_true", help="also write report.html (heat-map gallery, faithfulness) when done")
    p.add_argument("--nproc", type=int, default=1, help="train data-parallel in N processes (torchrun on this machine: gloo on CPU, nccl on GPUs) [1]")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="scintix", description="Deep-learning diagnosis of nuclear-medicine and medical images.")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    _common_run_args(sub.add_parser("run", help="train + evaluate a recipe and print the metrics table"))
    _common_run_args(sub.add_parser("train", help="same as run"))
    add_cv_parser(sub)
    add_gan_parser(sub)
    add_sr_parser(sub)
    p = sub.add_parser("evaluate", help="(re-)evaluate a run: threshold on val, metrics with CIs; --data: on new patients, as shipped")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None, help="an external test set (manifest, folder or .npz): every image is test; the run's thresholds and calibration as they are; "
                   "refused if it shares patients or images with the run's train/val")
    p.add_argument("--out", default=None, help="with --data: the folder for its metrics (required)")
    p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=None,
                   help="write (or skip) the PNG figures this time, whatever the run's eval.figures says")
    p = sub.add_parser("predict", help="predict a file, folder or manifest with a saved run")
    p.add_argument("run_dir")
    p.add_argument("input")
    p.add_argument("--out", default="predictions.csv", help="CSV or JSON (by suffix) [predictions.csv]")
    p.add_argument("--engine", choices=("torch", "onnx"), default="torch", help="onnx: the run's checked export (`scintix export`) in ONNX Runtime [torch]")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dicom-out", metavar="DIR", help="for DICOM inputs also write DICOM outputs here: finding SR; segmentation: lesion SEG + overlay Secondary Capture")
    p.add_argument("--deidentify", action="store_true", help="DICOM outputs without the patient's name, ID, birth date and other identifying attributes")
    p.add_argument("--report", default=None, metavar="TEXT", help="text-guided runs: this report for every input (default: the manifest's report column; none: image path alone)")
    p = sub.add_parser("serve", help="a web page and JSON API over trained runs, for one scan at a time (127.0.0.1 by default)")
    p.add_argument("runs", nargs="+")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind [127.0.0.1: this machine only]")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--engine", choices=("torch", "onnx"), default="torch")
    p.add_argument("--token", default=os.environ.get("SCINTIX_TOKEN"), help="require 'Authorization: Bearer TOKEN' on the API [$SCINTIX_TOKEN]")
    p.add_argument("--max-mb", type=float, default=64.0, help="largest upload in MB [64]")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a request may compute [60]")
    p = sub.add_parser("export", help="export a run's best model (ONNX), checked against torch on the run's test images")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--images", help="check parity on these images (file, folder or manifest) instead of the run's test split")
    p.add_argument("--max-images", type=int, default=512)
    add_data_parsers(sub)
    p = sub.add_parser("explain", help="heat-map overlays (Grad-CAM, Grad-CAM++, Score-CAM, occlusion) for images, a folder or a manifest")
    p.add_argument("run")
    p.add_argument("input")
    p.add_argument("--out", required=True)
    p.add_argument("--method", nargs="+", default=["gradcam"], help="gradcam gradcam++ scorecam occlusion")
    p.add_argument("--target", default=None, help="class to explain (default: positive class / predicted class)")
    p.add_argument("--report", default=None, metavar="TEXT", help="text-guided runs: this report for every input (default: the manifest's); also writes which words the decoder attended to")
    p = sub.add_parser("report", help="one self-contained HTML report (and model card) for an evaluated run")
    p.add_argument("run")
    p.add_argument("--gallery", type=int, default=4, help="correct and wrong test cases shown with heat maps, each")
    p.add_argument("--faithfulness-n", type=int, default=16, help="test images used for the deletion/insertion scores")
    sub.add_parser("recipes", help="list the built-in recipes")
    p = sub.add_parser("models", help="list every model with parameters and FLOPs at a given input size")
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=2)
    p.add_argument("--small-input", action="store_true", help="the 28-px stems")
    return ap


def _launch(nproc: int, out: str) -> int:
    """``scintix run --nproc N ...`` = ``torchrun --standalone --nproc_per_node N -m scintix.cli run ...`` (the same arguments, without --nproc)."""
    import subprocess

    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if not arg.startswith("--nproc="):
            argv.append(arg)
    if "--out" not in argv and not any(x.startswith("--out=") for x in argv):
        argv += ["--out", out]  # one folder for all ranks, named once here
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "scintix.cli", *argv]
    log.info("launching %d processes: %s", nproc, " ".join(cmd))
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix="scintix-torchrun-")  # torchrun leaves a torchelastic_* folder in the temporary directory: one of ours, removed after
    try:
        return subprocess.call(cmd, env={**os.environ, "SCINTIX_NO_REEXEC": "1", "TMPDIR": tmp})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cmd_run(a: argparse.Namespace) -> int:
    from ..config import load_config
    from ..training.run import evaluate_run, train_run

    if a.nproc < 1:
        raise ValueError(f"--nproc {a.nproc}: at least 1")
    if a.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(a.nproc, a.out or f"runs/{load_config(a.recipe, a.overrides).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not a.out:
        raise ValueError("under torchrun give --out RUN_DIR: every process must write to the same run folder")

    overrides = list(a.overrides)
    if a.data:
        overrides.append(f"data.source={json.dumps(str(Path(a.data).resolve()))}")
    if a.epochs is not None:
        overrides.append(f"train.epochs={a.epochs}")
    if a.seed is not None:
        overrides += [f"train.seed={a.seed}", f"data.split.seed={a.seed}"]
    if a.device:
        overrides.append(f"train.device={a.device}")
    if a.resume:
        if not a.out:
            raise ValueError("--resume needs --out RUN_DIR")
        run_dir = train_run(None, a.out, resume=True)  # type: ignore[arg-type]
    else:
        cfg = load_config(a.recipe, overrides)
        out = a.out or f"runs/{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if cfg.stages:  # e.g. P3: single-feature images, then the cross-training set
            from ..training.stages import run_stages

            *earlier, run_dir = run_stages(cfg, out)
            for d in earlier:
                print(f"-- {d.name} --\n" + (d / "eval" / "metrics_table.txt").read_text(), end="")
            print(f"-- {run_dir.name} (final) --")
        else:
            run_dir = train_run(cfg, out)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun rank 0 alone prints and reports
    results_path = Path(run_dir) / "eval" / "metrics_table.txt"
    if not results_path.exists():
        evaluate_run(run_dir)
    print(results_path.read_text(), end="")
    if a.report:
        from ..evaluation.html import write_report

        _store_explanations(run_dir)
        print(f"report: {write_report(run_dir)}")
    print(f"run folder: {run_dir}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from ..training.run import evaluate_run

    if a.data is not None or a.out is not None:
        from ..runfolder import final_stage, is_managed
        from ..training.external import evaluate_external

        if a.data is None or a.out is None:
            raise ValueError("--data and --out go together: the external test set and the folder for its metrics")
        if is_managed(final_stage(Path(a.run_dir)), a.out):
            raise ValueError(f"--out {a.out}: lies in the run folder; write the external metrics elsewhere")
        evaluate_external(a.run_dir, a.data, a.out, figures=a.figures)
        print((Path(a.out) / "metrics_table.txt").read_text(), end="")
        return 0
    evaluate_run(a.run_dir, figures=a.figures)
    print((Path(a.run_dir) / "eval" / "metrics_table.txt").read_text(), end="")
    return 0


def _check_out_file(out: Path, run_dir: str | None = None) -> None:
    """Refuse an output that is a folder, or a file a run folder manages, before any work is done."""
    if out.is_dir():
        raise ValueError(f"--out {out}: is a folder; name a .csv or .json file")
    if out.suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"--out {out}: name a .csv or .json file")
    if run_dir is not None:
        from ..runfolder import is_managed

        if is_managed(run_dir, out):
            raise ValueError(f"--out {out}: lies among the run folder's own files; write predictions elsewhere")


def cmd_predict(a: argparse.Namespace) -> int:
    from ..inference.predict import predict_paths, write_prediction_rows

    out_path = Path(a.out)
    _check_out_file(out_path, a.run_dir)
    # segmentation runs write a mask and an overlay PNG per input beside the table
    if a.batch_size < 1:
        raise ValueError(f"--batch-size {a.batch_size}: must be >= 1")
    rows = predict_paths(a.run_dir, a.input, batch_size=a.batch_size, out_dir=out_path.parent / f"{out_path.stem}_files", engine=a.engine,
                         dicom_dir=a.dicom_out, deidentify=a.deidentify, report=a.report)
    out = write_prediction_rows(rows, out_path)
    bad = [r for r in rows if r.get("error")]
    unlabelled = [r for r in rows if not r.get("error") and r.get("predicted", "x") == ""]
    for r in bad:
        print(f"skipped: {r['error']}", file=sys.stderr)
    for r in unlabelled:
        print(f"no label: {r['path']}: {r['warning']}", file=sys.stderr)
    done = len(rows) - len(bad) - len(unlabelled)
    print(f"{done} predicted, {len(unlabelled)} without a label, {len(bad)} skipped -> {out}")
    return batch_exit(done, len(rows))


def cmd_serve(a: argparse.Namespace) -> int:
    from .._optional import require
    from ..serve.app import ServeSettings, create_app
    from ..serve.uploads import UploadLimits

    if a.max_mb <= 0 or a.timeout <= 0:
        raise ValueError("--max-mb and --timeout must be > 0")
    uvicorn = require("uvicorn")
    app = create_app(ServeSettings(list(a.runs), a.engine, UploadLimits(max_bytes=int(a.max_mb * 1024 * 1024)), a.timeout, a.token))
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"scintix serve: listening on {a.host}: reachable from other machines{'' if a.token else ', with no token (--token)'}", file=sys.stderr)
    print(f"scintix serve: http://{a.host}:{a.port}/ (API docs: /docs); NOT FOR DIAGNOSTIC USE")
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from ..inference.onnx import export_onnx, onnx_paths

    if a.max_images < 1:
        raise ValueError(f"--max-images {a.max_images}: must be >= 1")
    rec = export_onnx(a.run_dir, opset=a.opset, images=a.images, max_images=a.max_images)
    par = rec["parity"]
    path, rec_path = onnx_paths(rec["run"])  # the run folder it exported (a staged run's: its last stage)
    print(f"{path} (opset {rec['opset']}, dynamic batch, input {rec['input']['shape'][1:]}) -> parity on {par['n_images']} images ({par['images']}): "
          f"max |logit diff| {par['max_abs_logit_diff']:.2e} (tolerance {par['tolerance']:.0e}), {par['decisions_differing']} decisions differ: {'PASSED' if par['passed'] else 'FAILED'}; {rec_path}")
    return 0 if par["passed"] else 1


def cmd_explain(a: argparse.Namespace) -> int:
    from ..explain.run import explain_paths
    from ..runfolder import is_managed

    if Path(a.out).exists() and not Path(a.out).is_dir():
        raise ValueError(f"--out {a.out}: is a file; name a folder for the overlays")
    if is_managed(a.run, a.out):
        raise ValueError(f"--out {a.out}: lies among the run folder's own files; write overlays elsewhere")
    rows = explain_paths(a.run, a.input, a.out, a.method, a.target, report=a.report)
    errors = [r for r in rows if r["error"]]
    for r in errors:
        print(f"not explained: {r['error']}", file=sys.stderr)
    done = [r for r in rows if not r["error"]]
    print(f"{len(done)} overlay(s) -> {a.out}")
    return batch_exit(len(done), len(rows))


def _store_explanations(run_dir, gallery: int = 4, faithfulness_n: int = 16) -> None:
    """Classification runs: compute the heat-map gallery and faithfulness scores the report shows (segmentation runs store theirs at evaluation)."""
    from ..runfolder import load_run_config

    if load_run_config(run_dir).data.task != "segmentation":
        from ..explain.gallery import write_explanations

        write_explanations(run_dir, gallery, faithfulness_n)


def cmd_report(a: argparse.Namespace) -> int:
    from ..evaluation.html import write_report

    if (Path(a.run) / "cv_summary.json").is_file():  # a cross-validation folder: its own page
        from ..evaluation.cv_html import write_cv_report

        print(f"report -> {write_cv_report(a.run)}")
        return 0
    _store_explanations(a.run, a.gallery, a.faithfulness_n)
    path = write_report(a.run)
    print(f"report -> {path}")
    return 0


def cmd_recipes(a: argparse.Namespace) -> int:
    from ..config import list_recipes

    print("\n".join(list_recipes()))
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    from ..models import list_models, model_info
    from ..models.registry import min_input_size, model_kind

    print(f"{'model':<22}{'kind':<15}{'parameters':>14}{'GFLOPs':>10}{'min px':>8}   at {a.size[0]}x{a.size[1]}, {a.in_channels} channel(s), {a.num_classes} classes")
    for name in list_models():
        if min(a.size) < min_input_size(name, a.small_input):
            print(f"{name:<22}{model_kind(name):<15}{'':>14}{'-':>10}{min_input_size(name, a.small_input):>8}   (input too small for it)")
            continue
        info = model_info(name, tuple(a.size), a.in_channels, a.num_classes, a.small_input)
        print(f"{name:<22}{info['kind']:<15}{info['params']:>14,}{info['gflops']:>10.2f}{info['min_size']:>8}")
    return 0


COMMANDS = {"run": cmd_run, "train": cmd_run, "cv": cmd_cv, "ensemble": cmd_ensemble, "gan": cmd_gan, "sr": cmd_sr, "evaluate": cmd_evaluate, "predict": cmd_predict, "export": cmd_export, "serve": cmd_serve, "explain": cmd_explain, "report": cmd_report, "recipes": cmd_recipes, "models": cmd_models, **DATA_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in this process (tests call this); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) > 1 and argv[0] == "sr" and argv[1] not in (*SR_COMMANDS, "-h", "--help"):
        argv.insert(1, "apply")  # `scintix sr RUN INPUT...`
    a = _parser().parse_args(argv)
    quiet = int(os.environ.get("RANK", "0")) != 0  # under torchrun, one rank speaks
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import csv

    import yaml

    from .._optional import MissingDependency, import_monai_without_transformers
    from ..data.io import ImageReadError
    from ..data.manifest import ManifestError

    import_monai_without_transformers()  # ~4 s less start-up for every command that uses MONAI
    try:
        return COMMANDS[a.command](a)
    except (ManifestError, ImageReadError, OSError, ValueError, KeyError, FloatingPointError, MissingDependency, yaml.YAMLError, csv.Error) as exc:
        if a.verbose:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            msg = f"{exc.filename}: {exc.strerror}"
        print(f"scintix: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's input: still one line, and how to get the traceback
        if a.verbose:
            raise
        print(f"scintix: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} (run with -v for the traceback and report it)", file=sys.stderr)
        return 1


def entry() -> None:
    """Console-script entry: re-executes once with glibc allocator tuning, then runs :func:`main`."""
    if os.environ.get("SCINTIX_NO_REEXEC") != "1":
        from ..runtime import allocator_env

        extra = allocator_env()
        if extra:
            env = {**os.environ, **extra, "SCINTIX_NO_REEXEC": "1"}
            os.execve(sys.executable, [sys.executable, "-m", "scintix.cli", *sys.argv[1:]], env)
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _leave_worker(code)
    sys.exit(code)


def _leave_worker(code: int) -> None:
    """A torchrun worker leaves without the interpreter's teardown. Everything is written and the process group destroyed
    by now, yet now and then (once in a CI run of the 2-process test, not in 40 runs here) gloo's threads, torn down with
    the interpreter, aborted rank 0 at exit ("terminate called without an active exception", SIGABRT): torchrun then
    reports a failed run whose outputs are complete."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry()
