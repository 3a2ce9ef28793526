import numpy as np
import pytest

from scintix.data.manifest import (
    ManifestError,
    Record,
    encode_labels,
    load_data,
    manifest_from_npz,
    read_manifest,
    write_manifest,
)


def test_read_resolves_relative_paths(tiny_manifest):
    recs = read_manifest(tiny_manifest)
    assert len(recs) == 24
    assert all(r.path.startswith(str(tiny_manifest.parent)) for r in recs)
    assert recs[0].patient_id == "P0" and recs[0].view == "ant" and recs[0].label == "1"


def test_write_then_read_round_trip(tiny_manifest, tmp_path):
    recs = read_manifest(tiny_manifest)
    out = write_manifest(recs, tiny_manifest.parent / "copy.csv", relative_to=tiny_manifest.parent)
    assert read_manifest(out) == recs


@pytest.mark.parametrize(
    "text,match",
    [
        ("label,patient_id\n1,a\n", "no 'path' column"),
        ("path,patient_id\na.png,a\n", "no 'label' column"),
        ("path,label\n", "no rows"),
        ("path,label\na.png,\n", "line 2: empty label"),
        ("path,label,split\na.png,1,training\n", "split 'training'"),
        ("path,label\nx.png,1\nx.png,0\n", "more than once"),
        ("path,label\nmissing.png,1\n", "not found"),
    ],
)
def test_validation_errors_name_the_file(tmp_path, text, match):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "x.png").write_bytes(b"")
    m = tmp_path / "m.csv"
    m.write_text(text)
    with pytest.raises(ManifestError, match=match) as err:
        read_manifest(m)
    assert str(m) in str(err.value)


def test_encode_labels_binary_names_and_multilabel():
    recs = [Record("a", "0"), Record("b", "1"), Record("c", "1")]
    y, classes = encode_labels(recs, ["normal", "abnormal"], "binary")
    assert classes == ["normal", "abnormal"] and y.tolist() == [0, 1, 1]
    y, classes = encode_labels([Record("a", "normal"), Record("b", "abnormal")], ["normal", "abnormal"], "binary")
    assert y.tolist() == [0, 1]
    y, classes = encode_labels([Record("a", "metastasis;arthritis"), Record("b", "normal")], ["metastasis", "arthritis", "normal"], "multilabel")
    assert y.tolist() == [[1, 1, 0], [0, 0, 1]]
    with pytest.raises(ManifestError, match="not among the classes"):
        encode_labels([Record("a", "tumour")], ["normal", "abnormal"], "binary")


def test_npz_manifest_keeps_official_split(tmp_path):
    np.savez(tmp_path / "d.npz", train_images=np.zeros((3, 4, 4), np.uint8), train_labels=np.array([[0], [1], [1]]),
             val_images=np.zeros((2, 4, 4), np.uint8), val_labels=np.array([[1], [0]]))
    recs = load_data(tmp_path / "d.npz")
    assert [r.split for r in recs] == ["train"] * 3 + ["val"] * 2
    assert [r.label for r in recs] == ["0", "1", "1", "1", "0"]
    assert recs[1].path.endswith("d.npz#train/1")
    assert load_data(tmp_path)[0] == recs[0]  # a folder with exactly one npz
    with pytest.raises(ManifestError, match="MedMNIST"):
        np.savez(tmp_path / "x.npz", images=np.zeros(2))
        manifest_from_npz(tmp_path / "x.npz")
