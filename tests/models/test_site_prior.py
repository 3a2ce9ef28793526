"""P4's site prior: a report's tokens vote where lesions are, in the body's frame, added to the foreground logits."""

import numpy as np
import pytest
import torch

from scintix.models import create_model
from scintix.models.text_segmentation import SitePrior
from scintix.text import build_tokenizer

TEXTS = ["focus in the upper body", "focus in the lower body", ""]


def _bodies(n: int, rng):
    """Bodies at different heights and statures; one 4x4 lesion at 20 % or 70 % of the body's height, the report says which."""
    y = torch.zeros(n, 1, 64, 16)
    frames, side = [], []
    for i in range(n):
        top, length = int(rng.integers(1, 16)), int(rng.integers(36, 48))
        s = int(rng.integers(0, 2))
        r = top + int((0.2, 0.7)[s] * length)
        y[i, 0, r : r + 4, 6:10] = 1
        frames.append([top / 64, (top + length) / 64, 0.5])
        side.append(s)
    return y, torch.tensor(frames), torch.tensor(side)


def test_the_prior_grounds_a_site_word_in_the_body_frame_not_in_the_image_frame():
    rng = np.random.default_rng(0)
    y, frames, side = _bodies(128, rng)
    yt, ft, st = _bodies(64, rng)
    dice = {}
    for frame in ("body", "image"):
        torch.manual_seed(0)
        words, prior = torch.nn.Embedding(2, 8), SitePrior(8, 1)
        opt = torch.optim.Adam([*words.parameters(), *prior.parameters()], lr=0.05)
        for step in range(60):
            i = torch.from_numpy(np.random.default_rng(step).choice(128, 16, replace=False))
            out = prior(words(side[i])[:, None], torch.zeros(16, 1, dtype=torch.bool), torch.ones(16, dtype=torch.bool), (64, 16),
                        frames[i] if frame == "body" else None)
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(out, y[i]).backward()
            opt.step()
        with torch.no_grad():
            pred = prior(words(st)[:, None], torch.zeros(64, 1, dtype=torch.bool), torch.ones(64, dtype=torch.bool), (64, 16), ft if frame == "body" else None) > 0
        t = yt.bool()
        dice[frame] = float(2 * (pred & t).sum() / (pred.sum() + t.sum()))
    assert dice["body"] > 0.9 and dice["image"] < 0.5, dice  # the same word lands on a different pixel row in every scan


def test_the_prior_maps_its_cells_through_the_frame_and_is_silent_without_a_report():
    prior = SitePrior(4, 1, grid=(10, 4))
    with torch.no_grad():
        prior.vote.bias.view(10, 4)[5, 2] = 1.0  # one cell: rows 50-60 % of the frame, columns 0.5-0.75 of its width
    text, pad = torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool)
    pad[:, 2] = True  # the third token is padding: two tokens vote
    frame = torch.tensor([[0.0, 1.0, 0.5], [0.2, 0.6, 0.25]])  # the image itself; a body in rows 20-60 %, centred at x 0.25
    with torch.no_grad():
        out = prior(text, pad, torch.tensor([True, True]), (100, 40), frame)
        silent = prior(text, pad, torch.tensor([False, True]), (100, 40), frame)
    assert out.shape == (2, 1, 100, 40)
    peak = [divmod(int(o.argmax()), 40) for o in out[:, 0]]
    assert peak[0] in [(54, 24), (54, 25), (55, 24), (55, 25)]  # the cell's centre, y 0.55, x 0.625: between pixels 54|55 and 24|25
    assert peak[1][0] in (41, 42) and peak[1][1] in (14, 15)  # the same cell in that body: y 0.2 + 0.55 * 0.4, x 0.625 - 0.25
    assert float(out[0].max()) == pytest.approx(2 * 0.95 * 0.95, abs=1e-5)  # two tokens' votes summed, read half a pixel off the cell centre each way
    assert float(out[1, 0, 90:].abs().max()) == 0  # below the body: outside the frame, no vote
    assert float(silent[0].abs().max()) == 0 and torch.equal(silent[1], out[1])  # no report: no prior


def test_a_text_model_with_the_prior_starts_as_the_same_model_without_it_and_learns_through_it():
    tok = build_tokenizer(TEXTS, "word")
    kw = dict(tokenizer=tok, report_dropout=0.0, features=(8, 8, 16, 32, 64, 8), text_dim=16, text_layers=1, text_heads=2, position="body")
    torch.manual_seed(0)
    plain = create_model("text_unet", **kw).eval()
    torch.manual_seed(0)
    with_prior = create_model("text_unet", prior=True, **kw).eval()
    assert set(with_prior.state_dict()) - set(plain.state_dict()) == {k for k in with_prior.state_dict() if k.startswith("prior.")}
    assert all(torch.equal(v, with_prior.state_dict()[k]) for k, v in plain.state_dict().items())  # the same weights from the same seed
    x = torch.rand(3, 1, 64, 16)
    with torch.no_grad():
        assert torch.equal(plain(x, text=TEXTS), with_prior(x, text=TEXTS))  # zero-initialised votes
    y = torch.zeros(3, 64, 16, dtype=torch.long)
    y[:, 10:14, 6:10] = 1
    loss = torch.nn.functional.cross_entropy(with_prior.train()(x, text=TEXTS), y)
    loss.backward()
    g = with_prior.prior.vote.weight.grad
    assert g is not None and float(g.abs().sum()) > 0  # the segmentation loss reaches the votes directly


def test_a_run_config_builds_the_prior_and_refuses_it_on_patches():
    from scintix.config import load_config
    from scintix.runfolder import build_model_for_run

    tok = build_tokenizer(TEXTS, "word")
    small = ["text.dim=16", "text.layers=1", "text.heads=2"]
    assert build_model_for_run(load_config("p4-text", [*small, "text.prior=true"]), 2, tokenizer=tok, pretrained=False).prior is not None
    assert build_model_for_run(load_config("p4-text", small), 2, tokenizer=tok, pretrained=False).prior is None  # off unless asked
    with pytest.raises(ValueError, match="text.prior with data.patch_size"):
        build_model_for_run(load_config("p4-text", [*small, "text.prior=true", "data.patch_size=[64,32]"]), 2, tokenizer=tok, pretrained=False)


def test_a_site_map_fed_into_the_unet_starts_as_the_model_without_it_and_is_taught_by_its_own_head():
    tok = build_tokenizer(TEXTS, "word")
    kw = dict(tokenizer=tok, report_dropout=0.0, features=(8, 8, 16, 32, 64, 8), text_dim=16, text_layers=1, text_heads=2)
    torch.manual_seed(0)
    plain = create_model("text_unet", **kw).eval()
    torch.manual_seed(0)
    fed = create_model("text_unet", prior_input=True, **kw).eval()
    assert {k.split(".")[0] for k in set(fed.state_dict()) - set(plain.state_dict())} == {"site_input", "site_inject"}
    assert all(torch.equal(v, fed.state_dict()[k]) for k, v in plain.state_dict().items())  # the same weights from the same seed
    x = torch.rand(3, 1, 64, 16)
    with torch.no_grad():
        assert torch.equal(plain(x, text=TEXTS), fed(x, text=TEXTS))  # a zero map through a zero convolution
    y = torch.zeros(3, 64, 16, dtype=torch.long)
    y[:, 10:14, 6:10] = 1
    out = fed.train()(x, text=TEXTS)
    assert out.shape == (3, 2, 2, 64, 16)  # training: the segmentation, then the map's own head
    assert torch.equal(out[:, 1, 0], torch.zeros_like(out[:, 1, 0]))  # the head's background logit is 0, its lesion logit the map
    from scintix.tasks import get_task

    get_task("segmentation").criterion()(out, y[:, None]).backward()
    g = fed.site_input.vote.weight.grad
    assert g is not None and float(g.abs().sum()) > 0  # taught by its head while the convolution into the U-Net is still 0
    fed.zero_grad()
    with torch.no_grad():
        fed.site_input.vote.bias.fill_(1.0)
        fed.site_inject.weight.fill_(0.1)
        silent = fed.eval()(x, text=[None, None, None])
        spoken = fed(x, text=TEXTS)
        assert torch.equal(silent, plain(x, text=[None, None, None]))  # no report: no map, the plain model's output
        assert not torch.equal(spoken, plain(x, text=TEXTS))


def test_a_run_config_builds_the_site_map_input():
    from scintix.config import load_config
    from scintix.runfolder import build_model_for_run

    tok = build_tokenizer(TEXTS, "word")
    small = ["text.dim=16", "text.layers=1", "text.heads=2"]
    assert build_model_for_run(load_config("p4-text", [*small, "text.prior_input=true"]), 2, tokenizer=tok, pretrained=False).site_input is not None
    assert build_model_for_run(load_config("p4-text", small), 2, tokenizer=tok, pretrained=False).site_input is None
    with pytest.raises(ValueError, match="text.prior_input with data.patch_size"):
        build_model_for_run(load_config("p4-text", [*small, "text.prior_input=true", "data.patch_size=[64,32]"]), 2, tokenizer=tok, pretrained=False)
