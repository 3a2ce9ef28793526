"""P4's text path: tokenizers, the gated text-guided U-Net, report dropout, a report-dependent task, the CLI end to end."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scintix.models import create_model
from scintix.text import build_tokenizer, detect_kind, load_tokenizer
from scintix.text.tokenizer import CLS, PAD, UNK

ZH = ["合成图像。右侧股骨见局灶性放射性浓聚（共1处），考虑骨转移。", "全身骨骼显影清晰，未见异常放射性浓聚。"]
EN = ["Focal increased uptake in the right femur (1 lesion).", "Bilateral pulmonary infection, two infected areas, lower left lung."]


def test_tokenizers_round_trip_chinese_and_english(tmp_path):
    zh = build_tokenizer(ZH, "auto", max_length=64)
    assert zh.kind == "char" and detect_kind(EN) == "word"
    assert zh.tokens(ZH[0]) == ["[CLS]", *[c for c in ZH[0].replace("（", "(").replace("）", ")").replace("，", ",") if not c.isspace()]]  # NFKC folds full-width marks
    assert UNK not in zh.ids(ZH[1]) and zh.ids("左侧")[1:] == [UNK, zh.index["侧"]]  # 左 was never seen in training
    en = build_tokenizer(EN, "word", max_length=64)
    assert en.tokens("Uptake in the LEFT femur.") == ["[CLS]", "uptake", "in", "the", "left", "femur", "."]
    assert en.tokens("metastasis")[1] == "[UNK]"
    for tok in (zh, en):  # saved with the run, loaded identically
        tok.save(tmp_path / f"{tok.kind}.json")
        back = load_tokenizer(tmp_path / f"{tok.kind}.json")
        assert back.vocab == tok.vocab and back.kind == tok.kind and back.ids(ZH[0] + EN[0]) == tok.ids(ZH[0] + EN[0])
    ids, padding, has_text = en.encode([EN[0], "", None, "x " * 200])
    assert ids.shape == (4, 64) and ids[:, 0].eq(CLS).all()
    assert has_text.tolist() == [True, False, False, True] and padding[1, 1:].all() and not padding[3].any()  # cut to max_length
    assert ids[1, 1:].eq(PAD).all()
    assert build_tokenizer(EN, "word", min_freq=2).tokens("the lung")[1:] == ["[UNK]", "[UNK]"]  # seen once each
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: damaged tokenizer file"):
        load_tokenizer(tmp_path / "bad.json")


def test_zero_gate_is_the_plain_unet_and_no_report_is_the_image_path():
    tok = build_tokenizer(EN, "word")
    torch.manual_seed(0)
    text_model = create_model("text_unet", tokenizer=tok).eval()
    torch.manual_seed(0)
    unet = create_model("unet").eval()
    assert all(torch.equal(a, b) for a, b in zip(unet.net.state_dict().values(), text_model.net.state_dict().values()))  # same seed, same U-Net
    x = torch.randn(2, 1, 48, 40)
    with torch.no_grad():
        plain = unet(x)
        assert (text_model(x, text=EN) - plain).abs().amax() > 0  # the gates start near 0, not at 0
        for f in text_model.fusions:
            f.gate.zero_()
        assert torch.equal(text_model(x, text=EN), plain)  # gates at 0: exactly the U-Net, whatever the report
        for f in text_model.fusions:
            f.gate.data.fill_(0.7)
        guided = text_model(x, text=EN)
        assert (guided - plain).abs().amax() > 1e-3  # open gates: the report changes the output ...
        assert torch.equal(text_model(x), plain) and torch.equal(text_model(x, text=["", None]), plain)  # ... and no report is the image path
        assert torch.equal(text_model(x, text=[EN[0], ""])[1], plain[1])  # per scan, in a mixed batch
    film = create_model("text_unet_film", tokenizer=tok).eval()
    unet.net.load_state_dict(film.net.state_dict())
    with torch.no_grad():
        assert torch.equal(film(x, text=EN), unet(x))  # FiLM starts as the identity too


def test_warm_start_from_a_trained_unet_checkpoint(tmp_path):
    torch.manual_seed(3)
    unet = create_model("unet").eval()
    for p in unet.parameters():  # "trained": away from any seed's init
        p.data.add_(0.01 * torch.randn_like(p))
    torch.save({"model": unet.state_dict(), "epoch": 5}, tmp_path / "best.pt")  # a scintix run's checkpoint
    torch.manual_seed(0)
    fresh = create_model("text_unet", tokenizer=build_tokenizer(EN, "word"))
    torch.manual_seed(0)
    warm = create_model("text_unet", tokenizer=build_tokenizer(EN, "word"), weights=tmp_path / "best.pt").eval()
    assert all(torch.equal(a, b) for a, b in zip(unet.net.state_dict().values(), warm.net.state_dict().values()))
    fresh_text = {k: v for k, v in fresh.state_dict().items() if not k.startswith("net.")}
    assert all(torch.equal(v, warm.state_dict()[k]) for k, v in fresh_text.items())  # the text layers stay at their init
    x = torch.randn(1, 1, 48, 40)
    with torch.no_grad():
        for f in warm.fusions:
            f.gate.zero_()
        assert torch.equal(warm(x, text=EN[:1]), unet(x))  # it starts as the trained U-Net
    torch.save({"model": create_model("small_cnn").state_dict()}, tmp_path / "cnn.pt")
    with pytest.raises(ValueError, match="backbone tensors of 'text_unet' match"):  # a file for another network is refused
        create_model("text_unet", tokenizer=build_tokenizer(EN, "word"), weights=tmp_path / "cnn.pt")


def test_fusing_only_the_coarser_stages():
    from scintix.models.text_segmentation import NoFusion

    tok = build_tokenizer(EN, "word")
    torch.manual_seed(0)
    model = create_model("text_unet", tokenizer=tok, fuse_stages=(1, 2, 3)).eval()
    assert isinstance(model.fusions[3], NoFusion) and not list(model.fusions[3].parameters()) and not isinstance(model.fusions[0], NoFusion)
    torch.manual_seed(0)
    unet = create_model("unet").eval()
    x = torch.randn(1, 1, 48, 40)
    with torch.no_grad():
        for f in model.fusions[:3]:
            f.gate.zero_()
        assert torch.equal(model(x, text=EN[:1]), unet(x))
    with pytest.raises(ValueError, match="fuse_stages"):
        create_model("text_unet", tokenizer=tok, fuse_stages=(0, 5))
    from scintix.config import load_config

    assert load_config("p4-text", ["text.fuse_stages=[1,2,3]"]).text.fuse_stages == (1, 2, 3)
    with pytest.raises(ValueError, match="text.fuse_stages"):
        load_config("p4-text", ["text.fuse_stages=[]"])


def test_body_frame_position_code_moves_with_the_body():
    """position=body: a pixel's code is its place in the body (top to bottom, from the centre), wherever the body lies."""
    from scintix.models.text_segmentation import body_frame, position_code

    img = torch.zeros(2, 1, 64, 32)
    img[0, 0, 8:40, 10:18] = 1.0  # a "body" 32 rows tall, centred at x 14
    img[1, 0, 20:52, 14:22] = 1.0  # the same body 12 rows lower and 4 columns right
    frame = body_frame(img)
    assert torch.allclose(frame[0], torch.tensor([8 / 64, 40 / 64, 14 / 32]), atol=0.02)
    assert torch.allclose(frame[1] - frame[0], torch.tensor([12 / 64, 12 / 64, 4 / 32]), atol=1e-6)
    code = position_code(64, 32, 16, frame=frame).reshape(2, 64, 32, 16)
    assert torch.allclose(code[0, 8:40, 2:28], code[1, 20:52, 6:32], atol=1e-5)  # same body pixel, same code
    assert not torch.allclose(code[0, 8:40, 2:28], code[0, 20:52, 6:32], atol=1e-2)  # the image's pixel is not what counts
    whole = torch.tensor([[0.0, 1.0, 0.5]])
    assert torch.allclose(position_code(16, 8, 12, frame=whole)[0], position_code(16, 8, 12), atol=1e-6)  # the image's own frame
    assert torch.equal(body_frame(torch.zeros(1, 1, 8, 8)), whole)  # a blank image
    tok = build_tokenizer(EN, "word")
    torch.manual_seed(0)
    model = create_model("text_unet", tokenizer=tok, position="body").eval()
    with torch.no_grad():
        out = model(img, text=EN)
    assert out.shape == (2, 2, 64, 32) and torch.isfinite(out).all()
    from scintix.config import load_config

    assert load_config("p4-text", ["text.position=body"]).text.position == "body"
    with pytest.raises(ValueError, match="text.position"):
        load_config("p4-text", ["text.position=patient"])


def test_report_dropout_withholds_reports_in_training_only():
    tok = build_tokenizer(EN, "word")
    m = create_model("text_unet", tokenizer=tok, report_dropout=0.4)
    torch.manual_seed(0)
    _, _, kept = m.train().encode_text([EN[0]] * 2000, 2000, "cpu")
    assert 0.55 < kept.float().mean() < 0.65
    _, _, kept = m.eval().encode_text([EN[0]] * 50, 50, "cpu")
    assert kept.all()


def _two_blobs(n: int, rng):
    """Two identical blobs left and right; the report says which one is the lesion."""
    x = rng.normal(0, 0.05, (n, 1, 32, 32)).astype(np.float32)
    y = np.zeros((n, 1, 32, 32), np.int64)
    texts = []
    for i in range(n):
        rows = rng.integers(4, 22, 2)
        x[i, 0, rows[0] : rows[0] + 6, 4:10] += 1.0
        x[i, 0, rows[1] : rows[1] + 6, 22:28] += 1.0
        side = int(rng.integers(0, 2))
        cols = (slice(4, 10), slice(22, 28))[side]
        y[i, 0, rows[side] : rows[side] + 6, cols] = 1
        texts.append(f"lesion in the {('left', 'right')[side]} lobe")
    return torch.from_numpy(x), torch.from_numpy(y), texts


@pytest.mark.slow
def test_a_report_dependent_task_is_learned_with_the_report_only():
    """Two identical blobs; only the report says which is the lesion. Same small U-Net, same steps, with and without the text path."""
    from monai.networks.nets import BasicUNet

    from scintix.models.segmentation import Segmenter
    from scintix.tasks import get_task

    rng = np.random.default_rng(0)
    x, y, texts = _two_blobs(128, rng)
    xt, yt, tt = _two_blobs(32, rng)
    tok = build_tokenizer(texts, "word")
    features = (8, 8, 16, 32, 64, 8)
    dice, flipped = {}, None
    for name in ("unet", "text_unet"):
        torch.manual_seed(0)
        if name == "text_unet":
            m = create_model(name, tokenizer=tok, report_dropout=0.0, features=features, text_dim=32, text_layers=1, text_heads=2)
        else:
            m = Segmenter(BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=features), 2, 16, "net.upcat_1")
        loss_fn = get_task("segmentation").criterion()
        opt = torch.optim.Adam(m.parameters(), lr=2e-3)  # learnt by step ~110 (Dice 0.94 at 100, 1.0 from 120 on); at 5e-3 only at ~150
        extra = (lambda idx: {"text": [texts[i] for i in idx]}) if name == "text_unet" else (lambda idx: {})
        for step in range(130):
            idx = np.random.default_rng(step).choice(len(x), 16, replace=False)
            opt.zero_grad()
            loss_fn(m.train()(x[idx], **extra(idx)), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            pred = m.eval()(xt, **({"text": tt} if name == "text_unet" else {})).argmax(1).bool()
            if name == "text_unet":  # the other side named: the other blob
                swap = [t.replace("left", "?").replace("right", "left").replace("?", "right") for t in tt]
                flipped = m(xt, text=swap).argmax(1).bool()
        t = yt[:, 0].bool()
        dice[name] = float(2 * (pred & t).sum() / (pred.sum() + t.sum()))
    assert dice["text_unet"] > 0.9, dice
    assert dice["unet"] < 0.75, dice  # it cannot know which blob: at best both (Dice 2/3) or a guess
    assert float(2 * (flipped & t).sum() / (flipped.sum() + t.sum())) < 0.2  # it follows the text, right or wrong


def test_hf_folder_offline(tmp_path):
    transformers = pytest.importorskip("transformers")
    from scintix.text.hf import load_hf_model

    with pytest.raises(FileNotFoundError, match="nope: no such model folder"):
        load_hf_model(tmp_path / "nope")
    folder = tmp_path / "tiny-bert"
    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"右侧股骨见浓聚", "left", "lung"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    transformers.BertTokenizer.from_pretrained(str(folder), local_files_only=True).save_pretrained(folder)  # reads vocab.txt (vocab_file= is ignored in 5.x)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(cfg).save_pretrained(folder)
    m = create_model("text_unet", hf_model=str(folder), hf_freeze=True)
    assert m.tokenizer.tokens("右侧股骨 left")[:6] == ["[CLS]", "右", "侧", "股", "骨", "left"]
    m.train()
    assert not m.text_encoder.model.training and not any(p.requires_grad for p in m.text_encoder.parameters())
    out = m(torch.randn(2, 1, 32, 32), text=["右侧股骨见浓聚", ""])
    assert out.shape == (2, 2, 32, 32) and torch.isfinite(out).all()


def _external_manifest(path: Path, rows: list[dict]) -> None:
    """Manifest rows as an external set (no split column: `evaluate --data` scores all of them)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "split"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

def _qata_like(root: Path, n: int = 16) -> Path:
    """A tiny QaTa-style folder: image, mask, one report sentence per image, a predefined split."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = [["path", "mask", "report", "patient_id", "split"]]
    for i in range(n):
        img = rng.integers(0, 60, (32, 32)).astype(np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        side = i % 2
        c0 = 4 if side == 0 else 20
        img[10:20, c0 : c0 + 8] = 220
        mask[10:20, c0 : c0 + 8] = 255
        Image.fromarray(img).save(root / "images" / f"c{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"c{i}.png")
        rows.append([f"images/c{i}.png", f"masks/c{i}.png", f"Unilateral pulmonary infection, one infected area, {('left', 'right')[side]} lung.", f"S{i}", "val" if i >= 12 else "train"])
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root


@pytest.mark.slow
def test_qata_text_cli_run_predict_explain_with_and_without_reports(tmp_path, capsys):
    from scintix.cli.__main__ import main

    data, run = _qata_like(tmp_path / "qata"), tmp_path / "run"
    args = ["-o", "train.epochs=1", "-o", "data.image_size=[32,32]", "-o", "eval.n_bootstrap=20", "-o", "train.batch_size=4", "-o", "train.progress=false",
            "-o", "train.tensorboard=false", "-o", "data.split.val_from_train=0.25", "-o", "train.channels_last=false"]
    assert main(["run", "--recipe", "qata-text", "--data", str(data), "--out", str(run), *args]) == 0
    out = capsys.readouterr().out
    assert "Dice with the report" in out and "paired difference report - no_report" in out
    tok = json.loads((run / "tokenizer.json").read_text())
    assert tok["kind"] == "word" and "lung" in tok["vocab"]
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    tc = m["text_conditions"]
    assert set(tc["conditions"]) == {"report", "no_report", "other_patient_report"} and tc["with_report"] == m["n"] == 4
    assert set(tc["differences"]) == {"report - no_report", "report - other_patient_report"}
    per_scan = list(csv.DictReader(open(run / "eval" / "test" / "text_conditions.csv")))  # each scan's Dice per condition (for CV pooling)
    assert len(per_scan) == 4 and list(per_scan[0]) == ["path", "patient_id", "dice_report", "dice_no_report", "dice_other_patient_report"]
    for name in ("report", "no_report"):
        vals = [float(r[f"dice_{name}"]) for r in per_scan if r[f"dice_{name}"] != ""]
        assert np.mean(vals) == pytest.approx(tc["conditions"][name]["dice"]["value"], abs=1e-5)
    gallery = json.loads((run / "eval" / "test" / "gallery.json").read_text())
    assert gallery and all(g["report"].startswith("Unilateral") for g in gallery)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "How much the model relies on the report" in page and "Unilateral pulmonary infection" in page
    # an external set made of the run's own test scans: the run's test figures, text conditions included
    split = {r["path"]: r["split"] for r in csv.DictReader(open(run / "split.csv"))}
    rows = [r for r in csv.DictReader(open(data / "labels.csv")) if split.get(str(data / r["path"]), split.get(r["path"])) == "test"]
    _external_manifest(data / "test_only.csv", rows)
    assert main(["evaluate", str(run), "--data", str(data / "test_only.csv"), "--out", str(tmp_path / "ext")]) == 0
    ext = json.loads((tmp_path / "ext" / "test" / "metrics.json").read_text())
    assert ext["n"] == m["n"] and ext["per_class"]["infection"]["dice"]["value"] == pytest.approx(m["per_class"]["infection"]["dice"]["value"], abs=1e-6)
    assert ext["text_conditions"]["conditions"]["no_report"]["dice"]["value"] == pytest.approx(tc["conditions"]["no_report"]["dice"]["value"], abs=1e-6)
    # predict: the manifest's reports, none (a folder of images), one given on the command line
    capsys.readouterr()
    assert main(["predict", str(run), str(data / "labels.csv"), "--out", str(tmp_path / "with.csv")]) == 0
    assert main(["predict", str(run), str(data / "images"), "--out", str(tmp_path / "without.csv")]) == 0
    assert main(["predict", str(run), str(data / "images" / "c0.png"), "--out", str(tmp_path / "given.csv"), "--report", "infection in the left lung"]) == 0
    with_rows = list(csv.DictReader(open(tmp_path / "with.csv")))
    without = list(csv.DictReader(open(tmp_path / "without.csv")))
    given = list(csv.DictReader(open(tmp_path / "given.csv")))
    assert len(with_rows) == len(without) == 16 and all(r["error"] == "" for r in with_rows + without + given)
    assert all(r["report"].startswith("Unilateral") for r in with_rows) and all(r["report"] == "" for r in without)
    assert given[0]["report"] == "infection in the left lung"
    # without a report the image path is cut at its own threshold, chosen on val with every report withheld
    chosen = json.loads((run / "eval" / "thresholds.json").read_text())
    thr, thr_none = chosen["thresholds"]["infection"], chosen["thresholds_no_report"]["infection"]
    assert chosen["no_report_chosen_on"].startswith("val") and tc["thresholds"]["no_report"] == chosen["thresholds_no_report"]
    assert {float(r["threshold"]) for r in with_rows + given} == {thr} and {float(r["threshold"]) for r in without} == {thr_none}
    assert all(r["warning"] == "" for r in without)
    assert "every report withheld" in (run / "model_card.md").read_text()
    # an external set where one scan lacks its report: that scan is cut as predict cuts it, the others as before
    rows[0]["report"] = ""
    _external_manifest(data / "one_without.csv", rows)
    assert main(["evaluate", str(run), "--data", str(data / "one_without.csv"), "--out", str(tmp_path / "mixed")]) == 0
    mixed = json.loads((tmp_path / "mixed" / "test" / "metrics.json").read_text())
    assert mixed["threshold_cut"]["scans_without_report"] == 1 and mixed["thresholds"] == chosen["thresholds"]
    before = {Path(r["path"]).name: r for r in csv.DictReader(open(tmp_path / "ext" / "test" / "per_image.csv"))}
    after = {Path(r["path"]).name: r for r in csv.DictReader(open(tmp_path / "mixed" / "test" / "per_image.csv"))}
    blank = Path(rows[0]["path"]).name
    assert all(after[k]["pred_pixels"] == before[k]["pred_pixels"] for k in before if k != blank)
    assert int(after[blank]["pred_pixels"]) == int(next(r for r in without if Path(r["path"]).name == blank)["lesion_pixels"])
    assert f"1 without report {thr_none:.2f}" in capsys.readouterr().out
    # a run evaluated before these were recorded: the with-report threshold, and the row says so
    (run / "eval" / "thresholds.json").write_text(json.dumps({k: v for k, v in chosen.items() if k != "thresholds_no_report"}))
    assert main(["predict", str(run), str(data / "images" / "c0.png"), "--out", str(tmp_path / "old.csv")]) == 0
    old = list(csv.DictReader(open(tmp_path / "old.csv")))[0]
    assert float(old["threshold"]) == thr and "no threshold for that" in old["warning"]
    (run / "eval" / "thresholds.json").write_text(json.dumps({**chosen, "thresholds_no_report": {"infection": 1.5}}))
    assert main(["predict", str(run), str(data / "images" / "c0.png"), "--out", str(tmp_path / "bad.csv")]) == 2
    assert "thresholds_no_report" in capsys.readouterr().err
    (run / "eval" / "thresholds.json").write_text(json.dumps(chosen))
    assert main(["explain", str(run), str(data / "images" / "c0.png"), "--out", str(tmp_path / "maps"), "--report", "infection in the left lung"]) == 0
    words = (tmp_path / "maps" / "c0_words.html").read_text()
    assert "left" in words and "share of attention" in words
    # serving: the report is a form field; without it the model reads the image alone
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from scintix.serve.app import ServeSettings, create_app

    png = (data / "images" / "c0.png").read_bytes()
    with TestClient(create_app(ServeSettings([str(run)]))) as c:
        with_report = c.post("/api/predict", files={"file": ("c0.png", png, "image/png")}, data={"report": "infection in the left lung"}).json()
        without = c.post("/api/predict", files={"file": ("c0.png", png, "image/png")}).json()
    assert with_report["results"][0]["read_report"] is True and without["results"][0]["read_report"] is False


def test_view_prefix_opens_each_report_with_its_view_in_training_and_inference(tiny_manifest, tmp_path):
    from scintix.config import load_config
    from scintix.data.manifest import read_manifest
    from scintix.data.prepare import prepare_data
    from scintix.inference.predict import unit_reports
    from scintix.text.report import model_report

    assert model_report("右侧第2肋见浓聚", "post", True) == "[POST] 右侧第2肋见浓聚"
    assert model_report("right 2nd rib", "ant", False) == "right 2nd rib" and model_report("  ", "ant", True) is None  # no report stays none
    assert model_report("right 2nd rib", None, True) == "right 2nd rib"
    rows = tiny_manifest.read_text().splitlines()
    with_reports = tmp_path / "with_reports.csv"
    with_reports.write_text("\n".join([rows[0] + ",report"] + [r + ",uptake in the right 2nd rib" for r in rows[1:]]) + "\n")
    over = [f"data.source={with_reports}", "data.views=null", "data.view_filter=null", "data.split.ratios=[0.5,0.3,0.2]", "text.view_prefix=true"]
    data = prepare_data(load_config("quickstart", over), tmp_path / "run")
    texts = {s.text for split in data.samples.values() for s in split}
    assert texts == {"[ANT] uptake in the right 2nd rib", "[POST] uptake in the right 2nd rib"}
    stacked = prepare_data(load_config("quickstart", [*over[:1], "data.views=[ant,post]", *over[3:]]), tmp_path / "run2")
    assert {s.text for split in stacked.samples.values() for s in split} == {"uptake in the right 2nd rib"}  # one input holds both views
    records = read_manifest(with_reports)
    cfg = load_config("quickstart", over)
    given = unit_reports(cfg, records, "left humerus")
    assert {v for k, v in given.items() if "_post" in k} == {"[POST] left humerus"}
    assert set(unit_reports(load_config("quickstart", over[:-1]), records).values()) == {"uptake in the right 2nd rib"}


@pytest.mark.slow
def test_p4_text_recipe_trains_the_unet_then_the_text_model_from_it(tmp_path):
    """The shipped two-stage recipe: stage 1 a plain U-Net, stage 2 text_unet whose image path starts from it; OUT predicts as its last stage."""
    import torch

    from scintix.cli.__main__ import main

    sim = tmp_path / "sim"
    assert main(["simulate", str(sim), "--n", "10", "--seed", "3", "--prevalence", "metastasis=0.8", "arthritis=0"]) == 0
    fast = ["-o", "data.image_size=[64,16]", "-o", "train.batch_size=4", "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false", "-o", "train.progress=false", "-o", "train.tensorboard=false",
            "-o", "train.channels_last=false", "-o", "train.precise_bn=false"]
    assert main(["run", "--recipe", "p4-text", "--data", str(sim), "--out", str(tmp_path / "p4"), "--epochs", "1", *fast]) == 0
    s1, s2 = tmp_path / "p4" / "stage1-image-path", tmp_path / "p4" / "stage2-report-fusion"
    assert "name: unet" in (s1 / "config.yaml").read_text() and "name: text_unet" in (s2 / "config.yaml").read_text()
    assert (s2 / "tokenizer.json").is_file() and not (s1 / "tokenizer.json").exists()
    w1 = torch.load(s1 / "checkpoints" / "best.pt", weights_only=True)["model"]
    w2 = torch.load(s2 / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert any(k.startswith("fusions.") for k in w2) and "net.conv_0.conv_0.conv.weight" in w1
    assert main(["predict", str(tmp_path / "p4"), str(sim / "manifest.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    pred = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(pred) == 20 and all(r["error"] == "" for r in pred) and all(r["report"].startswith(("[ANT]", "[POST]")) for r in pred)


def test_a_scan_without_a_report_is_cut_at_the_no_report_threshold():
    """The image path alone of a report-guided run is less confident: cut at the with-report threshold it can lose every lesion."""
    from scintix.inference.predict import segmentation_row
    from scintix.runfolder import LoadedRun
    from scintix.tasks import get_task

    probs = np.zeros((2, 4, 4), np.float32)
    probs[1, :2, :2] = 0.3  # a lesion the image path sees with probability 0.3
    probs[0] = 1 - probs[1]
    run = LoadedRun(Path("."), None, None, ["background", "lesion"], {"lesion": 0.6}, 1.0, torch.device("cpu"), None, get_task("segmentation"),
                    thresholds_no_report={"lesion": 0.2})
    image = np.zeros((1, 4, 4), np.float32)
    assert segmentation_row(run, "a", image, probs, None, report="lesion in the left lung")["lesion_pixels"] == 0
    row = segmentation_row(run, "a", image, probs, None, report="")
    assert row["lesion_pixels"] == 4 and row["threshold"] == 0.2
    old = LoadedRun(Path("."), None, None, ["background", "lesion"], {"lesion": 0.6}, 1.0, torch.device("cpu"), None, get_task("segmentation"))
    assert segmentation_row(old, "a", image, probs, None, report=None)["lesion_pixels"] == 0  # no separate threshold: the run's own


def test_a_split_with_and_without_reports_cuts_each_scan_at_its_own_threshold():
    from scintix.tasks import get_task
    from scintix.training.text_conditions import cut_by_report

    task, classes = get_task("segmentation"), ["background", "lesion"]
    probs = np.zeros((3, 2, 4, 4), np.float32)
    probs[:, 1, :2, :2] = 0.3  # the same lesion, seen with probability 0.3, in three scans
    probs[:, 0] = 1 - probs[:, 1]
    with_report, none = {"lesion": 0.6}, {"lesion": 0.2}
    cut = cut_by_report(["lesion in the left lung", "", None], with_report, none)
    assert cut == [with_report, none, none]
    assert task.masks(probs, cut, classes).reshape(3, -1).sum(1).tolist() == [0, 4, 4]
    res = task.evaluate(probs, (probs[:, 1] > 0).astype(np.int64), ["A", "B", "C"], cut, classes, type("E", (), {"n_bootstrap": 10, "ci_level": 0.95})())
    assert res["thresholds"] == {"per_image": [with_report, none]} and res["per_class"]["lesion"]["dice"]["value"] == pytest.approx(2 / 3)
    assert cut_by_report(["a", "b"], with_report, none) is with_report and cut_by_report(["", ""], with_report, none) is none
    assert cut_by_report(["", "b"], with_report, None) is with_report  # a run without a no-report threshold: one cut


@pytest.mark.slow
def test_a_report_dependent_task_is_learned_through_the_site_map_fed_into_the_unet():
    """The two blobs again, the cross-attention gates held at 0: only the site map entering after the first block reads the report."""
    from scintix.tasks import get_task

    rng = np.random.default_rng(0)
    x, y, texts = _two_blobs(128, rng)
    xt, yt, tt = _two_blobs(32, rng)
    torch.manual_seed(0)
    m = create_model("text_unet", tokenizer=build_tokenizer(texts, "word"), report_dropout=0.0, features=(8, 8, 16, 32, 64, 8), text_dim=32,
                     text_layers=1, text_heads=2, prior_input=True)
    for f in m.fusions:
        f.gate.data.zero_()
        f.gate.requires_grad_(False)
    loss_fn = get_task("segmentation").criterion()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=2e-3)
    for step in range(130):
        idx = np.random.default_rng(step).choice(len(x), 16, replace=False)
        opt.zero_grad()
        out = m.train()(x[idx], text=[texts[i] for i in idx])
        assert out.shape == (16, 2, 2, 32, 32)  # the segmentation and the site map's own head
        loss_fn(out, y[idx]).backward()
        opt.step()
    t = yt[:, 0].bool()
    with torch.no_grad():
        pred = m.eval()(xt, text=tt).argmax(1).bool()
        swap = [s.replace("left", "?").replace("right", "left").replace("?", "right") for s in tt]
        flipped = m(xt, text=swap).argmax(1).bool()
    assert float(2 * (pred & t).sum() / (pred.sum() + t.sum())) > 0.9
    assert float(2 * (flipped & t).sum() / (flipped.sum() + t.sum())) < 0.2  # it follows the text, right or wrong
