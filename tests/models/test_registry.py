import re

import pytest
import torch
from conftest import one_per_family

from scintix.models import MODELS, create_model, list_models, model_info
from scintix.models.registry import model_kind
from scintix.models.resnet import CrossFeatureBlock
from scintix.models.weights import adapt_first_conv, freeze_backbone, load_pretrained
from scintix.tasks import get_task


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract_forward_backward(name):
    """Every registered model, classifiers and segmenters alike: forward, backward, every parameter gets a gradient,
    the output shape of its task, 1 and 2 channels, non-square input, its named inputs, its CAM layer."""
    torch.manual_seed(0)
    segmenter = model_kind(name) == "segmentation"
    # VGG variants differ from vgg11 only in depth and BatchNorm, not in stem or head: one of them covers 2 channels and
    # multi-label (each pass backpropagates through two 4096-wide layers: ~4 s of the suite per variant)
    configs = ((1, 2, False),) if name.startswith("vgg") and name != "vgg11" else ((1, 2, False), (2, 3, True))
    for in_channels, num_classes, multilabel in configs:
        m = create_model(name, in_channels=in_channels, num_classes=num_classes)
        x = torch.randn(2, in_channels, *((72, 64) if name == "alexnet" else (48, 40)))  # non-square; AlexNet needs >= 63 px
        extra = {k: (["focal uptake in the left rib", ""] if k == "text" else torch.randn_like(x)) for k in m.inputs[1:]}  # P3's cross-feature image, P4's report
        out = m(x, **extra)
        if segmenter:
            assert out.shape == (2, num_classes, *x.shape[-2:]) and torch.isfinite(out).all()
            mask = torch.randint(0, num_classes, (2, 1, *x.shape[-2:]))
            loss = get_task("segmentation").criterion()(out, mask)
        else:
            assert out.shape == (2, num_classes) and torch.isfinite(out).all()
            target = torch.randint(0, 2, (2, num_classes)).float() if multilabel else torch.randint(0, num_classes, (2,))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, target) if multilabel else torch.nn.functional.cross_entropy(out, target)
        loss.backward()
        no_grad = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not no_grad, no_grad[:3]
    m.eval()
    cam = dict(m.named_modules())[m.cam_layer]
    grabbed = []
    h = cam.register_forward_hook(lambda mod, i, o: grabbed.append(o))
    m.eval()(x, **extra)
    h.remove()
    assert grabbed[0].ndim == 4 and grabbed[0].shape[-1] > 0
    if segmenter:
        return
    f = m.forward_features(x, **extra)
    assert f.ndim == 4 and f.shape[1] == m.num_features
    assert torch.allclose(m.forward_head(f), m(x, **extra), atol=1e-5)
    m.reset_classifier(5)
    assert m(x, **extra).shape == (2, 5)


@pytest.mark.parametrize("name", one_per_family(sorted(MODELS)))
def test_narrow_and_small_inputs_run_or_are_refused_naming_the_minimum(name):
    """Every model runs at its minimum side, square and narrow (2 channels, 3 classes as a two-view multi-class run would),
    and the size check refuses one pixel less with a message naming that minimum."""
    from scintix.models.registry import check_input_size, example_inputs, min_input_size

    for small in (False, True):
        need = min_input_size(name, small)
        assert 1 <= need <= 64 or (name == "alexnet" and not small and need == 63)
        with torch.device("meta"):
            m = create_model(name, in_channels=2, num_classes=3, small_input=small or None).eval()
        m.to_empty(device="cpu")  # uninitialised weights: only the shapes are checked, and small CPU forwards beat meta ones
        sizes = ((need, need), (4 * max(need, 32), need), (need, 4 * max(need, 32)))
        for size in sizes:
            x = torch.zeros(2, 2, *size)
            with torch.no_grad():
                out = m(x, **example_inputs(m, x))
            assert out.shape[:2] == (2, 3), (name, size)
        check_input_size(name, sizes[1], small, in_channels=2)  # the check (meta, at the real size) accepts them
        if need > 1:
            with pytest.raises(ValueError, match=f"needs inputs of at least {need} px"):
                check_input_size(name, (need - 1, need - 1), small, in_channels=2)


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "vgg16"])
def test_plain_relu_nets_pass_the_signal_through_at_init(name):
    # No normalisation between their layers: PyTorch's default init shrank the features ~50x (AlexNet stayed at the prior on
    # P2's task); the Kaiming init keeps their scale near the input's, so training can start.
    torch.manual_seed(0)
    x = torch.rand(4, 1, 64, 64)
    m = create_model(name, in_channels=1, num_classes=2).eval()
    with torch.no_grad():
        f = m.pre_logits(m.forward_features(x))
    assert 0.3 < float(f.std() / x.std()) < 30
    assert all(float(p.detach().abs().max()) == 0 for n, p in m.named_parameters() if n.endswith("bias") and not n.startswith("fc."))


def test_alexnet_on_a_narrow_two_view_input():
    from scintix.models.registry import check_input_size

    with pytest.raises(ValueError, match=r"'alexnet' needs inputs of at least 63 px per side; data.image_size is \[128, 32\].*small_input=true"):
        check_input_size("alexnet", (128, 32), in_channels=2)
    check_input_size("alexnet", (128, 32), small_input=True, in_channels=2)  # the stride-1 stem takes it


@pytest.mark.parametrize("name", sorted(MODELS))
def test_small_input_28px(name):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        m = create_model(name, small_input=True).eval()
        assert m(torch.zeros(2, 1, 28, 28)).shape == ((2, 2, 28, 28) if model_kind(name) == "segmentation" else (2, 2))


def test_whole_body_size():
    for name in ("dspic", "resnet18"):
        m = create_model(name, in_channels=2, num_classes=3).eval()
        with torch.no_grad():
            assert m(torch.zeros(1, 2, 1024, 256)).shape == (1, 3)


def test_small_input_stem_keeps_resolution_for_28px():
    m = create_model("resnet18", small_input=True).eval()
    assert m.forward_features(torch.zeros(1, 1, 28, 28)).shape[-1] == 4  # 28 -> 28,14,7,4 (no stride-2 stem)
    assert create_model("resnet18").eval().forward_features(torch.zeros(1, 1, 28, 28)).shape[-1] == 1


@pytest.mark.parametrize(
    "name,count",
    [("resnet18", 11_689_512), ("resnet50", 25_557_032), ("resnet101", 44_549_160), ("vgg16", 138_357_544), ("vgg16_bn", 138_365_992),
     ("vgg19", 143_667_240), ("alexnet", 61_100_840), ("densenet121", 7_978_856), ("densenet169", 14_149_480)],
)
def test_parameter_counts_match_published(name, count):
    # torchvision's counts for 3 input channels and 1000 classes.
    with torch.device("meta"):
        assert sum(p.numel() for p in create_model(name, in_channels=3, num_classes=1000).parameters()) == count


def test_model_info_flops():
    info = model_info("resnet18", (224, 224), in_channels=3, num_classes=1000)
    assert info["params"] == 11_689_512
    assert 3.5 < info["gflops"] < 3.8  # 1.82 GMAC, the published ResNet-18 figure


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KeyError, match="resnet18") as err:
        create_model("resnet-18")
    assert all(n in str(err.value) for n in list_models())


def _to_torchvision(name: str, key: str) -> str:
    """The inverse key mapping, written independently: how torchvision names each tensor."""
    if name.startswith("resnet"):
        return key if key.startswith("fc.") else key.removeprefix("features.")
    if name.startswith("densenet"):
        if key.startswith("fc."):
            return "classifier." + key[3:]
        return key.replace("features.0.", "features.", 1).replace(".layers.", ".")
    head = {"vgg": {"pre_logits.2": "classifier.0", "pre_logits.5": "classifier.3", "fc": "classifier.6"},
            "alexnet": {"pre_logits.3": "classifier.1", "pre_logits.6": "classifier.4", "fc": "classifier.6"}}["alexnet" if name == "alexnet" else "vgg"]
    for ours, theirs in head.items():
        if key.startswith(ours + "."):
            return theirs + key[len(ours):]
    return key


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "densenet121", "vgg11_bn", "alexnet", "resnet_crossfeature"])
def test_torchvision_layout_round_trip(name, tmp_path):
    torch.manual_seed(0)
    src = create_model(name, in_channels=3, num_classes=1000)
    tv = {_to_torchvision(name, k): v for k, v in src.state_dict().items() if ".cross." not in k}
    assert not any(k.startswith("features.0.") for k in tv) or not name.startswith("densenet")
    torch.save(tv, tmp_path / "tv.pth")
    dst = create_model(name, in_channels=1, num_classes=2)
    report = load_pretrained(dst, name, tmp_path / "tv.pth")
    assert any(k.startswith("fc.") for k in report["skipped"])  # 1000-class head replaced
    first = {"resnet": "features.conv1.weight", "densenet": "features.0.conv0.weight"}.get(re.sub(r"\d.*|_.*", "", name), "features.0.weight")
    for k, v in dst.state_dict().items():
        if k.startswith("fc.") or ".cross." in k:
            continue
        expected = src.state_dict()[k]
        if k == first:
            expected = expected.sum(1, keepdim=True)
        assert torch.equal(v, expected), k


def test_first_conv_adaptation_keeps_grey_response():
    torch.manual_seed(0)
    w = torch.randn(8, 3, 3, 3)
    grey = torch.rand(1, 1, 10, 10)
    rgb = torch.nn.functional.conv2d(grey.repeat(1, 3, 1, 1), w)
    assert torch.allclose(torch.nn.functional.conv2d(grey, adapt_first_conv(w, 1)), rgb, atol=1e-5)
    assert torch.allclose(torch.nn.functional.conv2d(grey.repeat(1, 2, 1, 1), adapt_first_conv(w, 2)), rgb, atol=1e-5)
    assert torch.allclose(adapt_first_conv(w, 2, "mean")[:, 0], w.mean(1))


def test_wrong_architecture_file_is_refused(tmp_path):
    torch.save(create_model("vgg11").state_dict(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match="backbone tensors"):
        create_model("resnet18", weights=tmp_path / "w.pt")


def test_local_scintix_weights_and_freezing(tmp_path):
    a = create_model("small_cnn", num_classes=2)
    torch.save({"model": a.state_dict()}, tmp_path / "w.pt")
    b = create_model("small_cnn", num_classes=4, weights=tmp_path / "w.pt", freeze=True)
    assert torch.equal(a.features[0][0].weight, b.features[0][0].weight) and b.fc.out_features == 4
    assert [n for n, p in b.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    freeze_backbone(b, False)
    assert all(p.requires_grad for p in b.parameters())


def test_crossfeature_block_with_zero_cross_is_a_plain_block():
    from monai.networks.nets.resnet import ResNetBlock

    torch.manual_seed(0)
    cross_block = CrossFeatureBlock(32, 64, 2, cross_channels=1).eval()
    torch.nn.init.normal_(cross_block.cross.weight)  # non-zero P: the reduction must come from x_i = 0
    plain = ResNetBlock(32, 64, spatial_dims=2, stride=2, downsample=cross_block.downsample).eval()
    plain.load_state_dict({k: v for k, v in cross_block.state_dict().items() if not k.startswith("cross.")}, strict=False)
    x = torch.randn(2, 32, 16, 12)
    assert torch.allclose(cross_block(x, torch.zeros(2, 1, 64, 48)), plain(x), atol=1e-6)
    assert not torch.allclose(cross_block(x, torch.rand(2, 1, 64, 48)), plain(x))


def test_crossfeature_model_zero_cross_equals_plain_path():
    torch.manual_seed(0)
    m = create_model("resnet_crossfeature").eval()
    for mod in m.modules():
        if isinstance(mod, CrossFeatureBlock):
            torch.nn.init.normal_(mod.cross.weight)
    x = torch.randn(2, 1, 64, 48)
    plain = m.forward_head(m.features(x, torch.zeros_like(x)))
    # Zeroing every P gives the same network as feeding x_i = 0.
    for mod in m.modules():
        if isinstance(mod, CrossFeatureBlock):
            torch.nn.init.zeros_(mod.cross.weight)
    assert torch.allclose(m(x), plain, atol=1e-5)


def test_deep_supervision_trains_the_extra_heads_and_infers_the_main_output():
    torch.manual_seed(0)
    m = create_model("dynunet", in_channels=1, num_classes=2, deep_supervision=True)
    x = torch.randn(2, 1, 48, 32)
    out = m.train()(x)
    assert out.shape == (2, 3, 2, 48, 32)  # main output + two coarser heads, upsampled
    get_task("segmentation").criterion()(out, torch.randint(0, 2, (2, 1, 48, 32))).backward()
    heads = [p for n, p in m.named_parameters() if "deep_supervision_heads" in n]
    assert heads and all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)
    assert m.eval()(x).shape == (2, 2, 48, 32)


def test_resnet_stems_set_the_feature_map_and_other_models_refuse_the_option():
    import torch

    from scintix.config import load_config
    from scintix.models.registry import create_model

    with torch.device("meta"):  # shapes only: nothing allocated or initialised
        x = torch.zeros(1, 1, 160, 64)
        shapes = {stem: tuple(create_model("resnet18", stem=stem).features(x).shape[-2:]) for stem in ("stride2", "stride1", "small")}
        assert shapes == {"stride2": (5, 2), "stride1": (10, 4), "small": (20, 8)}  # the 5x2 map of a 160x64 crop is what P1's issue names
        default, small = create_model("resnet18"), create_model("resnet18", small_input=True)
        assert tuple(default.features(x).shape[-2:]) == (5, 2) and tuple(small.features(x).shape[-2:]) == (20, 8)
        assert {k: v.shape for k, v in small.state_dict().items()} == {k: v.shape for k, v in create_model("resnet18", stem="small").state_dict().items()}
    with pytest.raises(ValueError, match="has no option model.stem"):
        create_model("small_cnn", stem="stride1")
    with pytest.raises(ValueError, match="model.stem='s3'"):
        load_config("p1-thoracic", ["model.stem=s3"])
