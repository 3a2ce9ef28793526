import hashlib
import json
import re

import numpy as np
import pytest

from scintix.data.io import read_image
from scintix.data.manifest import read_manifest
from scintix.simulate import (
    SimulateConfig,
    simulate_bone_scan,
    simulate_dataset,
    simulate_thyroid_scan,
)
from scintix.simulate.anatomy import make_phantom
from scintix.simulate.dataset import draw_labels


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = simulate_dataset(tmp_path / "a", SimulateConfig(n=3, seed=7)).parent
    b = simulate_dataset(tmp_path / "b", SimulateConfig(n=3, seed=7)).parent
    c = simulate_dataset(tmp_path / "c", SimulateConfig(n=3, seed=8)).parent
    assert _digest(a) == _digest(b) != _digest(c)
    # case i does not depend on how many cases are made
    d = simulate_dataset(tmp_path / "d", SimulateConfig(n=1, seed=7)).parent
    assert (d / "images" / "SIMBs7-00000_ant.png").read_bytes() == (a / "images" / "SIMBs7-00000_ant.png").read_bytes()
    assert not {p.name for p in (a / "images").iterdir()} & {p.name for p in (c / "images").iterdir()}  # other seed, other patients


def test_scan_shape_counts_views_and_synthetic_marks(tmp_path):
    scan = simulate_bone_scan(np.random.default_rng(0), {"metastasis"}, counts=1e6)
    for v in ("ant", "post"):
        img = scan.views[v]
        assert img.shape == (1024, 256) and img.min() >= 0
        assert np.all(img == np.round(img))  # Poisson counts
        assert 0.8e6 < img.sum() < 1.2e6
    # the lumbar spine (a posterior structure) is brighter from behind; the posterior view is mirrored
    ant, post = scan.views["ant"], scan.views["post"]
    y0, x0, y1, x1 = scan.boxes["ant"]["abdomen_pelvis"]
    mid = (x0 + x1) // 2
    rows = slice(y0, (y0 + y1) // 2)
    assert post[rows, 255 - mid - 3 : 255 - mid + 4].mean() > 1.2 * ant[rows, mid - 3 : mid + 4].mean()
    out = simulate_dataset(tmp_path, SimulateConfig(n=2, seed=1))
    assert "SYNTHETIC" in (tmp_path / "README.md").read_text()
    from PIL import Image

    rec = read_manifest(out)[0]
    assert "SYNTHETIC" in Image.open(rec.path).info["Comment"] and rec.report.startswith("SYNTHETIC")
    assert rec.extra["synthetic"] == "1" and "合成" in rec.extra["report_zh"]
    case = json.loads((tmp_path / "cases" / f"{rec.patient_id}.json").read_text())
    assert case["synthetic"] is True


def _named_sites(report, vocabulary):
    # longest names first so "right 1st rib" does not also count inside "right 11th rib"
    found = []
    text = report
    for name in sorted(vocabulary, key=len, reverse=True):
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text):
            found.append(name)
            text = text.replace(name, "#")
    return set(found)


@pytest.mark.parametrize("seed", range(12))
def test_masks_and_reports_name_exactly_the_lesions(seed):
    rng = np.random.default_rng([5, seed])
    labels = [{"metastasis"}, {"arthritis"}, {"metastasis", "arthritis"}, set()][seed % 4]
    scan = simulate_bone_scan(rng, labels)
    vocab = {s.name for s in make_phantom(np.random.default_rng(0)).sites}
    vocab_zh = {s.name_zh for s in make_phantom(np.random.default_rng(0)).sites}
    ids = {f.id for f in scan.findings}
    for v in ("ant", "post"):
        assert set(np.unique(scan.masks[v])) - {0} == ids  # every finding is in the mask, nothing else
    assert _named_sites(scan.report_en, vocab) == {f.site for f in scan.findings}
    assert {s for s in vocab_zh if s in scan.report_zh} >= {f.site_zh for f in scan.findings}
    mets = [f for f in scan.findings if f.kind == "metastasis"]
    if mets:
        assert f"({len(mets)} lesion" in scan.report_en and f"共{len(mets)}处" in scan.report_zh
    assert set(scan.labels) == ({f.kind for f in scan.findings} or {"normal"})
    if not labels:
        assert "normal bone scan" in scan.report_en and not scan.findings


def test_lesions_are_hot_where_the_mask_says():
    rng = np.random.default_rng(11)
    scan = simulate_bone_scan(rng, {"metastasis"}, counts=3e6)
    for f in scan.findings:
        m = scan.masks["ant"] == f.id
        ring = np.zeros_like(m)
        ys, xs = np.nonzero(m)
        ring[max(0, ys.min() - 8) : ys.max() + 9, max(0, xs.min() - 8) : xs.max() + 9] = True
        ring &= scan.masks["ant"] == 0
        both = np.maximum(scan.views["ant"][m].mean() / scan.views["ant"][ring].mean(), scan.views["post"][scan.masks["post"] == f.id].mean() / scan.views["post"][np.fliplr(ring)].mean())
        assert both > 1.3, f.site


def test_label_prevalence_as_configured():
    rng = np.random.default_rng(0)
    draws = [draw_labels(rng, {"metastasis": 0.3, "arthritis": 0.6}) for _ in range(4000)]
    assert abs(np.mean(["metastasis" in d for d in draws]) - 0.3) < 0.03
    assert abs(np.mean(["arthritis" in d for d in draws]) - 0.6) < 0.03


def test_dataset_prevalence_and_manifest_columns(tmp_path):
    out = simulate_dataset(tmp_path, SimulateConfig(n=30, seed=2, prevalence={"metastasis": 1.0, "arthritis": 0.0}, format="npy"))
    recs = read_manifest(out)
    assert len(recs) == 60 and {r.view for r in recs} == {"ant", "post"}
    assert all(r.label == "metastasis" and r.extra["metastasis"] == "1" and r.extra["arthritis"] == "0" for r in recs)
    arr, _ = read_image(recs[0].path)
    assert arr.shape == (1, 1024, 256)
    mask, _ = read_image(recs[0].mask)
    assert mask.max() >= 1


def test_dicom_output_round_trips_views(tmp_path):
    out = simulate_dataset(tmp_path, SimulateConfig(n=1, seed=4, format="dicom"))
    recs = read_manifest(out)
    assert sorted(r.path.rsplit("#", 1)[1] for r in recs) == ["ant", "post"]
    a, meta = read_image(recs[0].path)
    assert a.shape == (1, 1024, 256) and meta["view"] == recs[0].view and meta["spacing"] == (2.26, 2.26)


def test_thyroid_mode_features_masks_reports(tmp_path):
    for feats in ({"diffuse"}, {"hot_nodule"}, {"cold_nodule"}, {"diffuse", "cold_nodule"}, set()):
        scan = simulate_thyroid_scan(np.random.default_rng(3), feats)
        img = scan.views["ant"]
        assert img.shape == (128, 128)
        assert set(np.unique(scan.masks["ant"])) - {0} == {f.id for f in scan.findings}
        for f in scan.findings:
            if f.kind != "diffuse":
                assert f.site in scan.report_en and f.site_zh in scan.report_zh
        assert scan.params["cross_feature"] == (len(feats) >= 2)
        if "cold_nodule" in feats:
            f = next(f for f in scan.findings if f.kind == "cold_nodule")
            assert img[scan.masks["ant"] == f.id].mean() < 0.6 * np.percentile(img, 99)
        if "hot_nodule" in feats:
            f = next(f for f in scan.findings if f.kind == "hot_nodule")
            assert img[scan.masks["ant"] == f.id].mean() > 1.5 * np.median(img[img > np.percentile(img, 90)])
    out = simulate_dataset(tmp_path, SimulateConfig(mode="thyroid", n=8, seed=0))
    assert {r.view for r in read_manifest(out)} == {"ant"}
    with pytest.raises(ValueError, match="unknown labels"):
        simulate_dataset(tmp_path / "x", SimulateConfig(mode="thyroid", prevalence={"metastasis": 0.5}))


def test_demo_data_labels_each_crop_by_its_own_mask(tmp_path):
    """The default job's data: simulated whole-body scans -> thoracic crops; a crop is abnormal exactly when its cropped mask holds a lesion."""
    import csv

    import numpy as np
    from PIL import Image

    from scintix.simulate.demo import make_demo_data

    manifest = make_demo_data(tmp_path / "demo", {"generator": "bone-thorax", "n_patients": 6, "prevalence": 0.8, "seed": 3})
    rows = list(csv.DictReader(open(manifest, encoding="utf-8")))
    assert len(rows) == 12 and {r["view"] for r in rows} == {"ant", "post"} and all(r["synthetic"] == "1" for r in rows)
    for r in rows:
        crop = np.load(manifest.parent / r["path"])
        mask = np.asarray(Image.open(manifest.parent / r["mask"]))
        assert mask.shape == crop.shape
        assert r["label"] == ("abnormal" if mask.any() else "normal") and r["lesion_in_crop"] == str(int(mask.any()))
    assert {r["label"] for r in rows} == {"normal", "abnormal"}  # prevalence 0.8 over 6 patients, seed 3: both occur
    assert "SYNTHETIC" in (manifest.parent / "README.md").read_text()


def test_fracture_is_an_opt_in_benign_focus_drawn_like_a_metastasis_and_reported_as_benign():
    from scintix.simulate.bone import sample_findings

    for seed in range(6):
        r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
        alone = sample_findings(r1, make_phantom(r1), {"metastasis"})
        phantom = make_phantom(r2)
        both = sample_findings(r2, phantom, {"metastasis", "fracture"})
        assert both[: len(alone)] == alone  # drawn after the others: a scan without fractures is the scan it was before
        frac = both[len(alone) :]
        assert 1 <= len(frac) <= 3 and all(f.kind == "fracture" for f in frac)
        group = {s.name: s.group for s in phantom.sites}
        assert all(group[f.site] in ("rib", "spine") and 4.0 <= f.sigma_mm <= 8.0 and 2.0 <= f.uptake <= 5.0 for f in frac)  # a metastasis's size and uptake
    vocab = {s.name for s in make_phantom(np.random.default_rng(0)).sites}
    for seed in range(4):
        scan = simulate_bone_scan(np.random.default_rng([9, seed]), {"metastasis", "fracture"})
        mets = [f for f in scan.findings if f.kind == "metastasis"]
        frac = [f for f in scan.findings if f.kind == "fracture"]
        sentences = scan.report_en.split(". ")
        met_sentence = next(s for s in sentences if "metastas" in s)
        benign_sentence = next(s for s in sentences if "(benign)" in s)
        assert _named_sites(met_sentence, vocab) == {f.site for f in mets} and f"({len(mets)} lesion" in met_sentence
        assert _named_sites(benign_sentence, vocab) == {f.site for f in frac}
        assert "骨折（良性）" in scan.report_zh and f"共{len(mets)}处" in scan.report_zh
        assert set(scan.labels) == {"metastasis", "fracture"}


def test_metastasis_masks_leave_benign_uptake_out_and_are_cropped_with_the_scan(tmp_path):
    from scintix.data.crop import crop_records

    out = simulate_dataset(tmp_path / "sim", SimulateConfig(n=3, seed=4, prevalence={"metastasis": 1.0, "arthritis": 0.0, "fracture": 1.0}, format="npy"))
    recs = read_manifest(out)
    assert {r.extra["fracture"] for r in recs} == {"1"} and "fracture" not in read_manifest(simulate_dataset(tmp_path / "plain", SimulateConfig(n=2, seed=4)))[0].label
    for r in recs:
        cls = read_image(r.extra["mask_class"])[0][0]  # 1 metastasis, 2 arthritis, 3 fracture
        met = read_image(r.extra["mask_metastasis"])[0][0]
        assert (cls == 3).any() and np.array_equal(met > 0, cls == 1) and set(np.unique(met)) == {0, 1}
    crops, errors = crop_records(recs, tmp_path / "crops")
    assert not errors
    for r in read_manifest(crops):
        img, met, cls = (read_image(p)[0][0] for p in (r.path, r.extra["mask_metastasis"], r.extra["mask_class"]))
        assert met.shape == img.shape and np.array_equal(met > 0, cls == 1)
