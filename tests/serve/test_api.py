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
