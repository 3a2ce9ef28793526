import csv
import json
from pathlib import Path

from scintix.cli.__main__ import main

FAST = ["-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "train.batch_size=8", "-o", "train.channels_last=false",
        "-o", "train.tensorboard=false", "-o", "eval.n_bootstrap=50", "-o", "eval.figures=false", "-o", "data.view_filter=null", "-o", "data.views=null", "-o", "data.split.ratios=[0.5,0.3,0.2]"]


def test_train_evaluate_predict(tiny_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "--data", str(tiny_manifest), "--out", str(run), "--epochs", "1", *FAST]) == 0
    out = capsys.readouterr().out
    assert "roc_auc" in out and "[" in out  # metrics with CIs printed
    assert not (run / "eval" / "test" / "roc.png").exists()  # FAST turns eval.figures off
    assert main(["evaluate", str(run), "--figures"]) == 0  # figures this time
    assert all((run / "eval" / s / f).is_file() for s in ("val", "test") for f in ("roc.png", "pr.png", "confusion.png", "reliability.png"))
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert set(m["per_class"]["abnormal"]) >= {"roc_auc", "pr_auc", "accuracy", "precision", "recall", "specificity", "f1", "balanced_accuracy"}
    # predict a folder that also holds a corrupt file: it is reported, the rest are predicted
    folder = tmp_path / "new"
    folder.mkdir()
    for p in list(tiny_manifest.parent.glob("p1_*.png")) + list(tiny_manifest.parent.glob("p3_*.png")):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"garbage")
    assert main(["predict", str(run), str(folder), "--out", str(tmp_path / "pred.csv")]) == 1  # 1: some inputs failed, each has its row
    rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert len(rows) == 5
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 1 and "broken.png" in bad[0]["error"]
    good = [r for r in rows if not r["error"]]
    assert all(0 <= float(r["prob_abnormal"]) <= 1 and r["predicted"] in ("normal", "abnormal") for r in good)
    assert main(["predict", str(run), str(folder / "p1_ant.png"), "--out", str(tmp_path / "one.json")]) == 0
    assert json.loads((tmp_path / "one.json").read_text())[0]["path"].endswith("p1_ant.png")
    # predict applies the run's temperature: its probabilities equal the evaluation's calibrated ones
    calib = json.loads((run / "eval" / "calibration.json").read_text())
    assert calib["temperature"] > 0 and calib["fitted_on"] == "val" and "test" in calib["ece"]
    evaluated = {r["path"]: float(r["prob_abnormal"]) for split in ("val", "test") for r in csv.DictReader(open(run / "eval" / split / "predictions.csv"))}
    src = next(p for p in evaluated if p.endswith(".png"))
    assert main(["predict", str(run), src, "--out", str(tmp_path / "same.json")]) == 0
    assert abs(json.loads((tmp_path / "same.json").read_text())[0]["prob_abnormal"] - evaluated[src]) < 1e-4


def test_bad_manifest_is_one_line_error(tmp_path, capsys):
    m = tmp_path / "m.csv"
    m.write_text("path,label\nmissing.png,1\n")
    assert main(["run", "--data", str(m), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scintix: error:") and "m.csv" in err[0] and "not found" in err[0]


def test_unknown_override_is_one_line_error(capsys):
    assert main(["run", "-o", "train.epoch=2"]) == 2
    assert "valid in train" in capsys.readouterr().err


def test_split_command_reports_duplicates(tiny_manifest, tmp_path, capsys):
    assert main(["split", str(tiny_manifest), "--out", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "exact-duplicate groups: 2" in out and "P0, P11" in out
    assert '"patients_in_several_splits": []' in out


def test_synthetic_dataset_is_marked(tmp_path):
    from PIL import Image

    assert main(["synthetic", str(tmp_path / "s"), "--patients", "6"]) == 0
    assert "SYNTHETIC" in (tmp_path / "s" / "README.md").read_text()
    rows = list(csv.DictReader(open(tmp_path / "s" / "manifest.csv")))
    assert len(rows) == 14 and all(r["synthetic"] == "1" for r in rows)  # 6 patients + 1 duplicate, 2 views
    assert "SYNTHETIC" in Image.open(tmp_path / "s" / rows[0]["path"]).text["Comment"]


def test_offline_augmented_dataset_trains(tiny_manifest, tmp_path):
    assert main(["split", str(tiny_manifest), "--out", str(tmp_path / "s.csv"), "--ratios", "0.5", "0.3", "0.2"]) == 0
    assert main(["augment", str(tiny_manifest), "--split", str(tmp_path / "s.csv"), "--out", str(tmp_path / "aug"), "--copies", "2"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "aug" / "manifest.csv")))
    n_train = sum(r["split"] == "train" and not r["source_path"] for r in rows)
    assert sum(bool(r["source_path"]) for r in rows) == 2 * n_train
    run = tmp_path / "run"
    assert main(["run", "--data", str(tmp_path / "aug" / "manifest.csv"), "--out", str(run), "--epochs", "1", *FAST]) == 0
    summary = json.loads((run / "data_summary.json").read_text())
    assert summary["split_method"] == "predefined split column of the manifest"
    assert summary["splits"]["train"]["samples"] == 3 * n_train


def test_resume_via_cli_needs_out(capsys):
    assert main(["run", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_models_lists_every_model_with_params_and_flops(capsys):
    from scintix.models import list_models

    assert main(["models", "--size", "1024", "256"]) == 0
    out = capsys.readouterr().out
    assert "1024x256" in out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:]}
    assert set(lines) == set(list_models())
    assert float(lines["vgg16"][3]) > float(lines["resnet18"][3]) > 0  # GFLOPs column
    assert lines["unet"][1] == "segmentation" and lines["resnet18"][1] == "classification"


def test_simulate_crop_train_evaluate_without_glue(tmp_path, capsys):
    sim, crops, run = tmp_path / "sim", tmp_path / "crops", tmp_path / "run"
    assert main(["simulate", str(sim), "--n", "12", "--seed", "1", "--prevalence", "metastasis=0.5", "arthritis=0.3"]) == 0
    (sim / "broken.png").write_bytes(b"not a png")
    with open(sim / "manifest.csv", "a") as fh:
        fh.write("broken.png,normal,BROKEN,ant,,,,0,,0,0,,1\n")
    assert main(["crop", str(sim), "--out", str(crops)]) == 1  # 1: broken.png failed, the rest cropped
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err  # reported, and the good files still cropped
    rows = list(csv.DictReader(open(crops / "manifest.csv")))
    assert len(rows) == 24 and all(r["crop_box"] and r["synthetic"] == "1" for r in rows)
    code = main(["run", "--recipe", "p1-wholebody", "--data", str(crops), "--out", str(run), "-o", "train.epochs=1", "-o", "data.image_size=[48,40]", "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false"])
    assert code == 0
    assert json.loads((run / "meta.json").read_text())["synthetic"] is True
    assert (run / "eval" / "metrics_table.txt").read_text().startswith("*** SYNTHETIC")
    # the whole-body multi-label recipe reads the simulator's manifest directly
    run2 = tmp_path / "run2"
    assert main(["run", "--recipe", "p2-wholebody", "--data", str(sim), "--out", str(run2), "-o", "train.epochs=1", "-o", "data.image_size=[128,32]", "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false"]) == 0
    summary = json.loads((run2 / "data_summary.json").read_text())
    assert summary["classes"] == ["normal", "metastasis", "arthritis"]


def test_dicom_manifest_command(tmp_path, capsys):
    import numpy as np

    from scintix.data.dicom_write import write_nm

    write_nm(tmp_path / "dcm" / "a.dcm", {"ant": np.ones((8, 4)), "post": np.ones((8, 4))}, patient_id="PA")
    assert main(["manifest", str(tmp_path / "dcm"), "--out", str(tmp_path / "m.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [(r["path"], r["view"], r["patient_id"]) for r in rows] == [("dcm/a.dcm#ant", "ant", "PA"), ("dcm/a.dcm#post", "post", "PA")]
    assert main(["manifest", str(tmp_path / "empty"), "--out", str(tmp_path / "n.csv")]) == 2


def test_p5_headct_recipe_on_simulated_dicom_slices(tmp_path):
    sim, run = tmp_path / "ct", tmp_path / "run"
    assert main(["simulate", str(sim), "--mode", "headct", "--n", "14", "--format", "dicom", "--prevalence", "finding=0.5"]) == 0
    code = main(["run", "--recipe", "p5-headct", "--data", str(sim), "--out", str(run), "-o", "train.epochs=1", "-o", "data.image_size=[64,64]",
                 "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false", "-o", "train.batch_size=4"])
    assert code == 0
    res = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert set(res["per_class"]) == {"finding"} and set(res["negative_class"]) == {"no_finding"}  # both classes' P/R/F1, as P5 reports
    assert main(["report", str(run), "--gallery", "1", "--faithfulness-n", "1"]) == 0
    page = (run / "report.html").read_text()
    assert "no_finding" in page and "brain" in page and "SYNTHETIC" in page


def test_crop_a_dicom_whole_body_file_crops_each_view(tmp_path, capsys):
    from scintix.data.manifest import manifest_from_folder

    sim = tmp_path / "sim"
    assert main(["simulate", str(sim), "--n", "1", "--format", "dicom"]) == 0
    dcm = next((sim / "images").glob("*.dcm"))
    assert [r.view for r in manifest_from_folder(sim / "images")] == ["ant", "post"]
    assert main(["crop", str(dcm), "--out", str(tmp_path / "crops")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "crops" / "manifest.csv")))
    assert sorted(r["view"] for r in rows) == ["ant", "post"] and all(r["source"].endswith(("#ant", "#post")) for r in rows)


def test_segmentation_run_evaluate_predict_report(tmp_path, capsys):
    """P4's image path end to end on simulated whole-body scans: a mask and an overlay per input, a report with the gallery."""
    sim, run = tmp_path / "sim", tmp_path / "run"
    assert main(["simulate", str(sim), "--n", "10", "--seed", "3", "--prevalence", "metastasis=0.7", "arthritis=0"]) == 0
    capsys.readouterr()
    args = ["-o", "train.epochs=1", "-o", "data.image_size=[128,32]", "-o", "eval.n_bootstrap=20", "-o", "train.batch_size=4", "-o", "train.progress=false"]
    assert main(["run", "--recipe", "p4-unet", "--data", str(sim), "--out", str(run), *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("*** SYNTHETIC") and "dice" in out and "false_positive_scan_rate" in out
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    les = m["per_class"]["lesion"]
    assert les["images_with_lesion"] + les["lesion_free_images"] == m["n"] and "value" in les["dice"] and "ci_low" in les["dice"]
    thr = json.loads((run / "eval" / "thresholds.json").read_text())
    assert thr["chosen_on"] == "val" and 0 < thr["thresholds"]["lesion"] < 1
    rows = list(csv.DictReader(open(run / "eval" / "test" / "per_image.csv")))
    assert len(rows) == m["n"] and all((run / "eval" / "test" / r["mask_png"]).is_file() for r in rows)
    assert main(["evaluate", str(run)]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), str(sim / "images"), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert len(pred) == 20 and all(r["error"] == "" and Path(r["mask_png"]).is_file() and Path(r["overlay_png"]).is_file() for r in pred)
    from PIL import Image

    assert Image.open(pred[0]["mask_png"]).size == (32, 128)  # the model's grid (W, H)
    one = sorted((sim / "images").glob("*.png"))[0]
    assert main(["explain", str(run), str(one), "--out", str(tmp_path / "maps")]) == 0
    assert len(list((tmp_path / "maps" / "masks").glob("*.png"))) == 1 and len(list((tmp_path / "maps" / "overlays").glob("*.png"))) == 1
    assert len(list((tmp_path / "maps").glob("*_gradcam.png"))) == 1
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "SYNTHETIC" in page and "false-positive scan rate" in page and "Green contour" in page
    card = (run / "model_card.md").read_text()
    assert "dice" in card and "lesion_sensitivity" in card
