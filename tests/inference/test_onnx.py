"""ONNX export: parity with torch, dynamic batch, the engine's refusals, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from scintix.cli.__main__ import main  # noqa: E402
from scintix.inference.onnx import (  # noqa: E402
    OnnxModel,
    export_model,
    export_onnx,
    load_onnx_model,
    onnx_paths,
)
from scintix.inference.predict import predict_paths  # noqa: E402


def test_export_parity_and_onnx_engine_predicts_like_torch(run_copy, tmp_path):
    rec = export_onnx(run_copy)
    path, rec_path = onnx_paths(run_copy)
    assert path.is_file() and json.loads(rec_path.read_text()) == rec
    par = rec["parity"]
    assert par["passed"] and par["n_images"] >= 1 and par["max_abs_logit_diff"] <= 1e-4 and par["images"] == "the run's test split"
    assert rec["opset"] == 17 and rec["input"]["shape"] == ["batch", 1, 24, 16]
    images = tmp_path / "imgs"
    images.mkdir()
    import shutil

    from scintix.data.manifest import read_manifest

    for r in read_manifest(_manifest_of(run_copy))[:6]:
        shutil.copy(r.path, images / f"{r.patient_id}_{r.view}.png")
    a = predict_paths(run_copy, images, batch_size=4)
    b = predict_paths(run_copy, images, batch_size=4, engine="onnx")
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for ra, rb in zip(a, b):
        assert ra["predicted"] == rb["predicted"]
        assert abs(ra["prob_abnormal"] - rb["prob_abnormal"]) < 1e-4


def _manifest_of(run_dir):
    from scintix.runfolder import load_run_config

    return load_run_config(run_dir).data.source


def test_dynamic_batch_and_sliding_window_segmenter(tmp_path):
    from scintix.models import create_model

    torch.manual_seed(0)
    seg = create_model("unet", in_channels=1, num_classes=2).eval()
    seg.roi_size = (32, 32)  # patch-trained: the network is exported at the patch size, the windows stay in Python
    roi = export_model(seg, tmp_path / "seg.onnx", 1, (48, 40))
    assert roi == (32, 32) and not seg.training and not any(m.training for m in seg.modules())  # export leaves the model in eval mode
    om = OnnxModel(tmp_path / "seg.onnx", {"kind": "segmentation", "num_classes": 2, "roi_size": roi})
    x = torch.rand(3, 1, 48, 40)  # larger than the patch: sliding windows around the session
    with torch.no_grad():
        ref = seg(x)
    out = om(x)
    assert out.shape == ref.shape == (3, 2, 48, 40)
    assert float((out - ref).abs().max()) < 1e-4
    one = om(x[:1])  # batch 1 and batch 3 from the same file
    assert float((one - out[:1]).abs().max()) < 1e-4


def test_engine_refuses_stale_or_failed_exports(run_copy):
    export_onnx(run_copy)
    path, rec_path = onnx_paths(run_copy)
    rec = json.loads(rec_path.read_text())
    rec["parity"]["passed"] = False
    rec_path.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="parity check did not pass"):
        load_onnx_model(run_copy)
    rec["parity"]["passed"] = True
    rec_path.write_text(json.dumps(rec))
    load_onnx_model(run_copy)  # vouched for again
    ck_path = run_copy / "checkpoints" / "best.pt"
    ck = torch.load(ck_path, weights_only=True)
    ck["model"] = {k: v + 1 if v.is_floating_point() else v for k, v in ck["model"].items()}  # a retrained model
    torch.save(ck, ck_path)
    with pytest.raises(ValueError, match="exported from another checkpoint"):
        load_onnx_model(run_copy)


def test_cli_export_and_predict_engine(run_copy, tmp_path, capsys):
    img = tmp_path / "one.npy"
    np.save(img, np.random.default_rng(0).random((24, 16)).astype(np.float32))
    assert main(["predict", str(run_copy), str(img), "--out", str(tmp_path / "p.csv"), "--engine", "onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scintix export" in err[0]
    assert main(["export", str(run_copy)]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert main(["predict", str(run_copy), str(img), "--out", str(tmp_path / "p.csv"), "--engine", "onnx"]) == 0
    assert (tmp_path / "p.csv").read_text().count("\n") == 2


def test_missing_onnxruntime_is_one_line(run_copy, monkeypatch, capsys):
    import scintix._optional as opt

    real = opt.has
    monkeypatch.setattr(opt, "has", lambda m: False if m.startswith("onnx") else real(m))
    assert main(["export", str(run_copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'scintix[onnx]'" in err[0]


def _perturbed_copy(run, dest, delta):
    import shutil

    shutil.copytree(run, dest)
    ck_path = dest / "checkpoints" / "best.pt"
    ck = torch.load(ck_path, weights_only=True)
    ck["model"] = {k: v + delta if v.is_floating_point() else v for k, v in ck["model"].items()}
    torch.save(ck, ck_path)
    return dest


def test_an_ensemble_folder_exports_as_one_graph_and_is_refused_once_a_member_changes(run_copy, tmp_path):
    from scintix.runfolder import write_ensemble

    other = _perturbed_copy(run_copy, tmp_path / "other", 0.05)
    write_ensemble(tmp_path / "ens", [run_copy, other])
    rec = export_onnx(tmp_path / "ens")
    assert rec["parity"]["passed"] and rec["ensemble_members"] == 2 and (tmp_path / "ens" / "checkpoints" / "best.onnx").is_file()
    from scintix.data.manifest import read_manifest

    imgs = [r for r in read_manifest(_manifest_of(run_copy)) if r.view == "ant"][:4]
    a, b, single = predict_paths(tmp_path / "ens", imgs), predict_paths(tmp_path / "ens", imgs, engine="onnx"), predict_paths(run_copy, imgs)
    pa, pb, p0 = (np.array([r["prob_abnormal"] for r in x]) for x in (a, b, single))
    assert np.abs(pa - pb).max() < 1e-4 and np.abs(pa - p0).max() > 1e-3  # ONNX = torch, and the mean of both members, not member 0
    ck = torch.load(other / "checkpoints" / "best.pt", weights_only=True)
    ck["model"] = {k: v * 1.01 if v.is_floating_point() else v for k, v in ck["model"].items()}
    torch.save(ck, other / "checkpoints" / "best.pt")
    with pytest.raises(ValueError, match="exported from another checkpoint"):
        load_onnx_model(tmp_path / "ens")


def test_a_tta_run_exports_its_copies_and_is_refused_once_its_tta_changes(run_copy):
    import yaml

    cfg_path = run_copy / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["eval"]["tta"] = ["identity", "shift"]
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    rec = export_onnx(run_copy)
    assert rec["parity"]["passed"] and rec["tta"] == ["identity", "shift"]
    load_onnx_model(run_copy)
    cfg["eval"]["tta"] = []
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(ValueError, match="test-time augmentation"):
        load_onnx_model(run_copy)
