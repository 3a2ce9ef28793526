"""The served API: predict/explain on PNG and DICOM, bad uploads as 4xx one-liners, no PHI out, token, DICOM zip."""

from __future__ import annotations

import io
import logging
import zipfile

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from scintix.serve.app import ServeSettings, create_app  # noqa: E402
from scintix.serve.uploads import UploadLimits  # noqa: E402


def _png(h=24, w=16, seed=0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((h, w)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _dicom(tmp_path, name="Doe^Jane", pid="PID-123") -> bytes:
    import pydicom

    from scintix.data.dicom_write import write_ct

    path = write_ct(tmp_path / "x.dcm", np.random.default_rng(1).normal(40, 20, (48, 32)), patient_id=pid)
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientBirthDate = name, "19450312"
    ds.save_as(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def client(tiny_run):
    app = create_app(ServeSettings([str(tiny_run)], limits=UploadLimits(max_bytes=200_000, max_pixels=100_000), timeout_s=30))
    with TestClient(app) as c:
        yield c


def test_page_models_and_predict_png(client):
    assert "NOT FOR DIAGNOSTIC USE" in client.get("/").text
    models = client.get("/api/models").json()["models"]
    assert len(models) == 1 and models[0]["classes"] == ["normal", "abnormal"] and "abnormal" in models[0]["thresholds"]
    r = client.post("/api/predict", files={"file": ("scan.png", _png(), "image/png")})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == 1 and set(res[0]["probabilities"]) == {"normal", "abnormal"}
    assert abs(sum(res[0]["probabilities"].values()) - 1) < 1e-5 and res[0]["predicted"] in ("normal", "abnormal")
    assert "heatmap_png" not in res[0] and res[0]["image_png"]


def test_explain_dicom_gives_a_heat_map_and_no_phi(client, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="scintix.serve")
    r = client.post("/api/explain", files={"file": ("Doe_Jane_PID-123.dcm", _dicom(tmp_path), "application/dicom")}, data={"method": "gradcam"})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    import base64

    from PIL import Image

    heat = np.asarray(Image.open(io.BytesIO(base64.b64decode(res["heatmap_png"]))))
    assert heat.ndim == 3 and heat.shape[2] == 4 and heat[..., 3].max() > heat[..., 3].min()  # a real map, not a flat layer
    text = r.text + caplog.text
    for phi in ("Doe", "Jane", "PID-123", "19450312", "Doe_Jane"):
        assert phi not in text


@pytest.mark.parametrize("payload, status, words", [
    (b"", 400, "empty file"),
    (b"%PDF-1.4 not a scan" * 10, 415, "unsupported file type"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 400, "not a readable PNG"),  # truncated PNG
    (b"\x00" * 128 + b"DICM" + b"\x02\x00" * 30, 400, "DICOM file"),  # a preamble and junk
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 300_000, 413, "over the limit"),  # too big in bytes
])
def test_bad_uploads_are_one_line_4xx(client, payload, status, words):
    r = client.post("/api/predict", files={"file": ("x.bin", payload, "application/octet-stream")})
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg and "Traceback" not in msg


def test_huge_dimensions_refused_before_decoding(client):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (2000, 1000)).save(buf, format="PNG")  # 2 Mpx of zeros compresses to a few kB: a small bomb
    r = client.post("/api/predict", files={"file": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413 and "pixels is over the limit" in r.json()["error"]


def test_upload_names_are_never_paths(client, tmp_path):
    before = {p.name for p in client.app.state.work.iterdir()}
    r = client.post("/api/predict", files={"file": ("../../../../tmp/evil.png", _png(), "image/png")})
    assert r.status_code == 200
    assert not (tmp_path.parent / "evil.png").exists() and not __import__("pathlib").Path("/tmp/evil.png").exists()
    assert {p.name for p in client.app.state.work.iterdir()} == before  # the stored upload is gone after the request


def test_unknown_model_and_method(client):
    assert client.post("/api/predict", files={"file": ("a.png", _png(), "image/png")}, data={"model": "nope"}).status_code == 404
    r = client.post("/api/explain", files={"file": ("a.png", _png(), "image/png")}, data={"method": "magic"})
    assert r.status_code == 400 and "unknown heat-map method" in r.json()["error"]


def test_dicom_outputs_zip(client, tmp_path):
    import pydicom

    r = client.post("/api/dicom", files={"file": ("s.dcm", _dicom(tmp_path), "application/dicom")}, data={"deidentify": "true"})
    assert r.status_code == 200, r.text
    z = zipfile.ZipFile(io.BytesIO(r.content))
    names = z.namelist()
    assert len(names) == 1 and names[0].endswith("_sr.dcm") and "upload" not in names[0]
    sr = pydicom.dcmread(io.BytesIO(z.read(names[0])))
    assert sr.PatientID == "ANONYMOUS" and "Doe" not in str(sr)
    assert client.post("/api/dicom", files={"file": ("a.png", _png(), "image/png")}).status_code == 415


def test_token_guards_the_api(tiny_run):
    app = create_app(ServeSettings([str(tiny_run)], token="s3cret"))
    with TestClient(app) as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/models").status_code == 401
        assert c.get("/api/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post("/api/predict", files={"file": ("a.png", _png(), "image/png")}).status_code == 401


def _whole_body_png(seed=5) -> tuple[bytes, np.ndarray]:
    from PIL import Image

    from scintix.simulate import simulate_bone_scan

    img = simulate_bone_scan(np.random.default_rng(seed), set()).views["ant"]
    grey = np.clip(img / np.percentile(img, 99.5) * 255, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    return buf.getvalue(), grey


@pytest.fixture(scope="module")
def region_client(tiny_run, tmp_path_factory):
    """The tiny run as a model of the patient's right chest (as p1-thoracic on BS-80K crops)."""
    import shutil

    import yaml

    run = shutil.copytree(tiny_run, tmp_path_factory.mktemp("region") / "chest-run")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["region"] = "chest_right"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with TestClient(create_app(ServeSettings([str(run), str(tiny_run)]))) as c:
        yield c


def _decode(b64: str) -> np.ndarray:
    import base64

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_region_model_reads_only_the_chest_of_a_whole_body_scan(region_client):
    png, grey = _whole_body_png()
    files = {"file": ("wb.png", png, "image/png")}
    r = region_client.post("/api/explain", files=files, data={"model": "chest-run"})
    assert r.status_code == 422 and "view is not known" in r.json()["errors"][0]["error"]  # a PNG does not say which side is the patient's right
    r = region_client.post("/api/explain", files=files, data={"model": "chest-run", "view": "ant"})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    y0, x0, y1, x1 = res["crop_box"]
    thorax = res["regions"]["thorax"]
    assert _decode(res["source_png"]).shape == grey.shape  # the whole view, for the page to show the box on
    assert (y0, x0) <= (thorax[0], thorax[1]) and y1 >= thorax[2] and x1 < thorax[3] and x1 - x0 < 0.7 * (thorax[3] - thorax[1])  # image-left half (ANT)
    assert _decode(res["heatmap_png"]).shape[:2] == (24, 16)  # the map is over the crop the model read
    assert region_client.post("/api/predict", files=files, data={"model": "chest-run", "view": "side"}).status_code == 400
    # a crop already (under 256 rows) is read as given; a whole-body model gets the regions drawn on its input
    small = region_client.post("/api/predict", files={"file": ("c.png", _png(171, 68), "image/png")}, data={"model": "chest-run"}).json()["results"][0]
    assert "crop_box" not in small and "regions" not in small
    plain = region_client.post("/api/predict", files=files, data={"model": tiny_run_id(region_client)}).json()["results"][0]
    assert "crop_box" not in plain and "source_png" not in plain
    assert all(0 <= b[0] < b[2] <= 24 and 0 <= b[1] < b[3] <= 16 for b in plain["regions"].values())  # moved onto the 24x16 input


def tiny_run_id(client) -> str:
    return next(m["id"] for m in client.get("/api/models").json()["models"] if m["region"] is None)


def test_region_model_on_a_real_nm_dicom_takes_the_view_from_its_header(region_client):
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("libjpeg")
    import os

    path = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "JPGExtended.dcm")
    if not os.path.exists(path):
        pytest.skip("pydicom test file not shipped")
    with open(path, "rb") as fh:
        r = region_client.post("/api/predict", files={"file": ("nm.dcm", fh.read(), "application/dicom")}, data={"model": "chest-run"})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["view"] == "ant" and res["crop_box"][3] <= 150  # ANT (from the header): the patient's right is the image's left (midline ~138 of 256)


def test_dicom_zip_with_a_heat_map_secondary_capture(client, tmp_path):
    import pydicom

    src = _dicom(tmp_path)
    r = client.post("/api/dicom", files={"file": ("s.dcm", src, "application/dicom")}, data={"method": "gradcam"})
    assert r.status_code == 200, r.text
    z = zipfile.ZipFile(io.BytesIO(r.content))
    sc_name = next(n for n in z.namelist() if n.endswith("_heatmap_sc.dcm"))
    sc = pydicom.dcmread(io.BytesIO(z.read(sc_name)))
    source = pydicom.dcmread(io.BytesIO(src))
    assert sc.BurnedInAnnotation == "YES" and sc.StudyInstanceUID == source.StudyInstanceUID and sc.SeriesInstanceUID != source.SeriesInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    rgb = sc.pixel_array
    assert rgb.shape == (24, 16, 3) and rgb[..., 0].max() > rgb[..., 2].min()  # coloured, with the banner burned in
    assert any(n.endswith("_sr.dcm") for n in z.namelist())


def test_explain_is_one_pass_with_the_same_probabilities_and_maps_as_explain(tiny_run, tmp_path):
    from PIL import Image

    from scintix.explain.run import explain_arrays
    from scintix.inference.predict import prepare_units
    from scintix.serve.service import analyse, heatmap_rgba, load_served

    served = next(iter(load_served([str(tiny_run)], channels_last=False).values()))
    scan = tmp_path / "s.png"
    Image.fromarray((np.random.default_rng(3).random((40, 24)) * 255).astype(np.uint8)).save(scan)
    calls = []
    hook = served.run.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        plain = analyse(served, scan)["results"][0]
        calls.clear()
        explained = analyse(served, scan, "gradcam")["results"][0]
    finally:
        hook.remove()
    assert len(calls) == 1  # the heat map comes from the prediction's own forward pass
    for c, p in plain["probabilities"].items():  # and the probability is /api/predict's
        assert explained["probabilities"][c] == pytest.approx(p, abs=1e-6)
    _, arrays, _ = prepare_units(served.run.cfg, str(scan))
    expected = heatmap_rgba(explain_arrays(served.run, arrays, "gradcam", amp=True)[0][0])  # at the run's precision, as the probability
    assert np.array_equal(_decode(explained["heatmap_png"]), expected)
