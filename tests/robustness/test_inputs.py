"""Issue 15, items 1-4: bad inputs to predict/explain/manifest give a row each, the good files are always processed."""

from __future__ import annotations

import csv
import json

import corpus as c
import numpy as np
import pytest
from PIL import Image
from robust_helpers import cli, one_error


def _rows(path) -> dict[str, dict]:
    return {r["path"]: r for r in csv.DictReader(open(path, encoding="utf-8"))}


def _snapshot(*folders) -> dict:
    return {p: p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


BAD = [  # (file name, builder, words of the cause)
    ("huge.npy", c.huge_float64_npy, "float32 range"),
    ("struct.npy", c.structured_npy, "not an image"),
    ("text.npy", c.string_npy, "not an image"),
    ("chw2.npy", lambda p: c.npy(p, np.random.default_rng(0).random((2, c.H, c.W)).astype(np.float32)), "2 channels"),
    ("ct2.dcm", c.ct_two_frames, "2 frames"),
    ("deflate.dcm", c.corrupt_deflate_dicom, "unreadable DICOM"),
    ("wrong_length.dcm", c.wrong_length_dicom, "header does not match the pixels"),
    ("swapped.dcm", c.swapped_dims_dicom, "header does not match the pixels"),
    ("no_view.dcm", c.nm_without_views, "does not say which view"),
    ("gzip_named.png", lambda p: (p.write_bytes(b"\x1f\x8b" + b"\x00" * 40), p)[1], "not a recognised image format"),
]


@pytest.mark.parametrize("name,make,cause", BAD, ids=[b[0] for b in BAD])
def test_one_bad_file_never_aborts_the_batch(tiny_run, tmp_path, capsys, name, make, cause):
    folder = tmp_path / "in"
    good = c.good_png(folder / "good.png", seed=5, lesion=True)
    bad = make(folder / name)
    before = _snapshot(folder, tiny_run)
    code, out, err = cli(capsys, "predict", tiny_run, folder, "--out", tmp_path / "pred.csv")
    assert code == 1  # some inputs failed
    rows = _rows(tmp_path / "pred.csv")
    assert rows[str(good.resolve())]["predicted"] in ("normal", "abnormal") and not rows[str(good.resolve())]["error"]
    bad_rows = [r for p, r in rows.items() if p.startswith(str(bad.resolve()))]
    assert bad_rows and all(str(bad.resolve()) in r["error"] and cause in r["error"] and not r.get("predicted") for r in bad_rows)
    assert all(ln.startswith(("skipped:", "no label:")) and name in ln for ln in err)  # one line per bad input, naming it
    assert "1 predicted" in out
    assert _snapshot(folder, tiny_run) == before  # inputs and the run untouched


def test_colour_inputs_become_grey_with_a_notice(tiny_run, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    rgb, sc = c.rgb_png(folder / "rgb.png"), c.rgb_secondary_capture(folder / "sc.dcm")
    grey_gif = c.gif_named_png(folder / "grey_gif.png")
    code, _, err = cli(capsys, "predict", tiny_run, folder, "--out", tmp_path / "p.csv")
    rows = _rows(tmp_path / "p.csv")
    assert code == 0 and not err
    for f in (rgb, sc):
        r = rows[str(f.resolve())]
        assert r["predicted"] in ("normal", "abnormal") and "colour image converted to grey" in r["warning"]
    assert rows[str(grey_gif.resolve())]["predicted"] and "colour" not in rows[str(grey_gif.resolve())]["warning"]  # grey palette: no notice


@pytest.mark.parametrize("name,pixels,why", [("one_px.png", np.zeros((1, 1)), "tiny image"), ("strip.png", np.full((1, 5000), 5), "tiny image"),
                                             ("black.png", np.zeros((24, 16)), "constant image"), ("flat.png", np.full((24, 16), 77), "constant image"),
                                             ("narrow.png", np.arange(16 * 400).reshape(400, 16) % 251, "extreme aspect ratio")])
def test_degenerate_images_get_a_warning_not_a_diagnosis(tiny_run, tmp_path, capsys, name, pixels, why):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(pixels.astype(np.uint8)).save(folder / name)
    code, out, err = cli(capsys, "predict", tiny_run, folder / name, "--out", tmp_path / "p.csv")
    r = _rows(tmp_path / "p.csv")[str((folder / name).resolve())]
    assert code == 2 and r["predicted"] == "" and why in r["warning"] and "no label given" in r["warning"]
    assert 0 <= float(r["prob_abnormal"]) <= 1  # shown for what it is worth
    assert "0 predicted, 1 without a label" in out and err[0].startswith("no label:") and name in err[0]


def test_a_path_that_exists_is_a_path(tiny_run, tmp_path, capsys):
    f = c.good_png(tmp_path / "in" / "case#12.png", seed=3)
    code, _, _ = cli(capsys, "predict", tiny_run, f, "--out", tmp_path / "p.csv")
    assert code == 0 and _rows(tmp_path / "p.csv")[str(f.resolve())]["predicted"]
    code, _, _ = cli(capsys, "predict", tiny_run, tmp_path / "in", "--out", tmp_path / "q.csv")
    assert code == 0 and len(_rows(tmp_path / "q.csv")) == 1


def test_views_the_run_was_not_trained_on_get_a_row(tiny_run, tmp_path, capsys):
    folder = tmp_path / "in"
    rows = ["path,patient_id,view"]
    for p in range(3):
        for view in ("ant", "post"):
            c.good_png(folder / f"p{p}_{view}.png", seed=p)
            rows.append(f"p{p}_{view}.png,P{p},{view}")
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    code, out, err = cli(capsys, "predict", tiny_run, folder / "m.csv", "--out", tmp_path / "p.json")
    result = json.loads((tmp_path / "p.json").read_text())
    assert code == 1 and len(result) == 6  # every input a row
    post = [r for r in result if "_post" in r["path"]]
    assert len(post) == 3 and all("trained on 'ant' views only" in r["error"] for r in post)
    assert "3 predicted, 0 without a label, 3 skipped" in out and len(err) == 3


def test_every_input_failed_exits_2(tiny_run, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"junk")
    c.huge_float64_npy(folder / "b.npy")
    code, out, err = cli(capsys, "predict", tiny_run, folder, "--out", tmp_path / "p.csv")
    assert code == 2 and "0 predicted" in out and len(err) == 2 and len(_rows(tmp_path / "p.csv")) == 2


def test_explain_keeps_same_named_files_apart(tiny_run, tmp_path, capsys):
    a = c.good_png(tmp_path / "in" / "left" / "scan.png", seed=1)
    b = c.good_png(tmp_path / "in" / "right" / "scan.png", seed=2, lesion=True)
    code, out, _ = cli(capsys, "explain", tiny_run, tmp_path / "in", "--out", tmp_path / "maps")
    pngs = sorted((tmp_path / "maps").glob("*.png"))
    assert code == 0 and "2 overlay(s)" in out and len(pngs) == 2 and a.exists() and b.exists()
    code, _, err = cli(capsys, "explain", tiny_run, tmp_path / "in", "--out", tmp_path / "maps" / pngs[0].name)
    one_error(err, "is a file")


def test_corrupt_dicom_in_a_folder_does_not_stop_the_manifest(tmp_path, capsys):
    from scintix.data.dicom_write import write_nm

    for i in range(3):
        write_nm(tmp_path / "dcm" / f"ok{i}.dcm", {"ant": np.ones((8, 4)), "post": np.ones((8, 4))}, patient_id=f"P{i}")
    c.corrupt_deflate_dicom(tmp_path / "dcm" / "broken.dcm")
    code, out, err = cli(capsys, "manifest", tmp_path / "dcm", "--out", tmp_path / "m.csv")
    assert code == 0 and "6 rows" in out
    assert len(err) == 1 and "broken.dcm" in err[0] and "unreadable DICOM" in err[0]


def test_a_nan_loss_names_the_batch_files(tmp_path):
    import torch

    from scintix.training.loop import train_one_epoch

    class Samples:
        samples = [type("S", (), {"key": f"img{i}.png"})() for i in range(4)]

    class Loader(list):
        dataset = Samples()

    batch = {"image": torch.ones(2, 1, 8, 8), "target": torch.tensor([0, 1]), "index": torch.tensor([2, 3])}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    with torch.no_grad():
        model[1].weight.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match=r"loss is nan at image 0 \(batch of img2.png, img3.png\)"):
        train_one_epoch(model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), Loader([batch]), torch.device("cpu"), "binary")


def test_a_real_process_prints_only_our_lines(tiny_run, tmp_path):
    """Outside pytest's warning capture: pydicom's warnings and log lines must not reach the terminal beside our one line."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "in"
    c.good_png(folder / "good.png", seed=5)
    c.corrupt_deflate_dicom(folder / "deflate.dcm")
    c.wrong_length_dicom(folder / "short.dcm")
    c.huge_float64_npy(folder / "huge.npy")
    env = {**os.environ, "SCINTIX_NO_REEXEC": "1"}
    p = subprocess.run([sys.executable, "-m", "scintix.cli", "predict", str(tiny_run), str(folder), "--out", str(tmp_path / "p.csv")], capture_output=True, text=True, env=env, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 1 and len(lines) == 3, p.stderr
    assert all(ln.startswith("skipped: ") for ln in lines) and "Warning" not in p.stderr and "Traceback" not in p.stderr
