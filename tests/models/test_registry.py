import pytest
import torch

from scintix.models import MODELS, create_model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("in_channels,num_classes,size", [(1, 2, (48, 32)), (2, 3, (40, 40))])
def test_contract_forward_backward(name, in_channels, num_classes, size):
    torch.manual_seed(0)
    m = create_model(name, in_channels=in_channels, num_classes=num_classes)
    x = torch.randn(2, in_channels, *size)
    out = m(x)
    assert out.shape == (2, num_classes) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    f = m.forward_features(x)
    assert f.ndim == 4 and f.shape[1] == m.num_features
    assert isinstance(dict(m.named_modules())[m.cam_layer], torch.nn.Module)
    m.reset_classifier(5)
    assert m(x).shape == (2, 5)


def test_small_input_stem_keeps_resolution_for_28px():
    m = create_model("resnet18", small_input=True).eval()
    assert m.forward_features(torch.zeros(1, 1, 28, 28)).shape[-1] == 4  # 28 -> 28,14,7,4 (no stride-2 stem)
    assert create_model("resnet18").eval().forward_features(torch.zeros(1, 1, 28, 28)).shape[-1] == 1


def test_resnet18_parameter_count_matches_published():
    # torchvision/He et al. ResNet-18 with 3 input channels and 1000 classes: 11,689,512 parameters.
    assert sum(p.numel() for p in create_model("resnet18", in_channels=3, num_classes=1000).parameters()) == 11_689_512


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KeyError, match="resnet18"):
        create_model("resnet-18")


def test_local_weights_load_and_skip_new_head(tmp_path):
    a = create_model("small_cnn", num_classes=2)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    b = create_model("small_cnn", num_classes=4, weights=tmp_path / "w.pt")
    assert torch.equal(a.features[0][0].weight, b.features[0][0].weight)
    assert b.fc.out_features == 4
