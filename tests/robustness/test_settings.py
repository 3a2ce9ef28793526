"""Issue 15, item 7: impossible settings and unreadable tables are refused before any work, naming the field or the file."""

from __future__ import annotations

import pytest
from robust_helpers import cli, one_error, tiny_data


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "data").mkdir()
    return tiny_data(tmp_path / "data")


@pytest.mark.parametrize("args,words", [
    (["--ratios", "-1", "1", "1"], ["ratios", ">= 0"]),
    (["--ratios", "0", "0", "0"], ["ratios", "train share"]),
    (["--ratios", "nan", "0.2", "0.1"], ["ratios", "finite"]),
    (["--folds", "1000"], ["1000 folds", "at most"]),
    (["--folds", "1"], ["--folds 1", "k >= 2"]),
])
def test_split_settings(manifest, tmp_path, capsys, args, words):
    code, _, err = cli(capsys, "split", manifest, "--out", tmp_path / "s.csv", *args)
    assert code == 2 and one_error(err, *words) and not (tmp_path / "s.csv").exists()


def test_too_few_patients_for_the_split(tmp_path, capsys):
    from corpus import good_png

    good_png(tmp_path / "a.png", 1)
    good_png(tmp_path / "b.png", 2, lesion=True)
    (tmp_path / "m.csv").write_text("path,label,patient_id\na.png,0,A\nb.png,1,B\n")
    code, _, err = cli(capsys, "split", tmp_path / "m.csv", "--out", tmp_path / "s.csv")
    assert code == 2 and one_error(err, "2 patient group(s)", "would be empty")


@pytest.mark.parametrize("override,field", [
    ("data.image_size=[0,0]", "data.image_size"), ("data.image_size=[-5,10]", "data.image_size"), ("train.lr=fast", "train.lr"),
    ("train.lr=[unclosed", "train.lr=[unclosed"), ("train.batch_size=0", "train.batch_size"), ("data.normalize=banana", "data.normalize"),
    ("train.precise_bn=perhaps", "train.precise_bn"), ("data.split.fold=3", "data.split.fold"),
])
def test_run_settings(manifest, tmp_path, capsys, override, field):
    code, _, err = cli(capsys, "run", "--data", manifest, "--out", tmp_path / "run", "-o", override)
    assert code == 2 and one_error(err, field) and not (tmp_path / "run").exists()


def test_zero_epochs_and_a_model_too_big_for_the_image(manifest, tmp_path, capsys):
    code, _, err = cli(capsys, "run", "--data", manifest, "--out", tmp_path / "run", "--epochs", "0")
    assert code == 2 and one_error(err, "train.epochs=0")
    code, _, err = cli(capsys, "run", "--data", manifest, "--out", tmp_path / "run", "-o", "model.name=alexnet", "-o", "data.image_size=[128,32]")
    assert code == 2 and one_error(err, "alexnet", "63 px", "data.image_size") and not (tmp_path / "run").exists()


def test_unreadable_tables(tmp_path, capsys):
    from corpus import csv_latin1, csv_utf16, good_png

    good_png(tmp_path / "a.png", 1)
    good_png(tmp_path / "b.png", 2)
    text = "path,label,patient_id,report\na.png,0,Zoë,\nb.png,1,Jürgen,\n"
    code, out, _ = cli(capsys, "split", csv_utf16(tmp_path / "utf16.csv", text), "--out", tmp_path / "s.csv", "--ratios", "1", "0", "0")
    assert code == 0 and "2 images of 2 patients" in out  # UTF-16 with its BOM is read
    code, _, err = cli(capsys, "split", csv_latin1(tmp_path / "latin1.csv", text), "--out", tmp_path / "s.csv")
    assert code == 2 and one_error(err, "latin1.csv", "not UTF-8")
    (tmp_path / "long.csv").write_text("path,label,patient_id,report\na.png,0,A," + "x" * 200_000 + "\n")
    code, _, err = cli(capsys, "split", tmp_path / "long.csv", "--out", tmp_path / "s.csv")
    assert code == 2 and one_error(err, "long.csv", "line")


def test_a_manifest_of_one_class_is_refused_when_training(tmp_path, capsys, manifest):
    one = manifest.parent / "one.csv"
    one.write_text(manifest.read_text().replace(",1,", ",0,"))
    code, _, err = cli(capsys, "run", "--data", one, "--out", tmp_path / "run", "-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "data.classes=[normal,abnormal]", "-o", "data.view_filter=null", "-o", "data.views=null")
    assert code == 2 and one_error(err, "only class 'normal'")
