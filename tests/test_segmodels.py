"""utils.models.deeplab (ASPP, the pyramid pooling module, dilated ResNets, DeepLab builders) and utils.segmodels
(receptive fields, a VOC-class model applied to photos)."""
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from utils.models import (
    ASPP,
    VOC_CLASS_NAMES,
    DeepLabV3Plus,
    PyramidPooling,
    build_deeplabv3,
    build_deeplabv3plus,
    build_pspnet,
    dilate_resnet_,
    resnet_backbone,
)
from utils.segmodels import effective_receptive_field, receptive_field_size, segment_with_voc_model


@pytest.mark.parametrize("kernels, dilations, strides, expected", [
    ([3], None, None, 3),
    ([3, 3, 3], None, None, 7),
    ([3, 3, 3], [1, 2, 4], None, 15),
    ([3, 3, 3], [2, 2, 2], None, 13),
    ([5, 3], [2, 1], None, 11),
    ([3, 2, 3], None, [1, 2, 1], 8),            # conv, 2x2 pooling, conv: the last conv's taps are 2 px apart
    ([7, 3, 3], [1, 1, 1], [2, 2, 1], 19),      # a strided stem: 1 + 6 + 2*2 + 4*2
])
def test_receptive_field_size_by_hand(kernels, dilations, strides, expected):
    assert receptive_field_size(kernels, dilations, strides) == expected


def test_receptive_field_size_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="one entry per layer"):
        receptive_field_size([3, 3], dilations=[1])
    with pytest.raises(ValueError, match="dilations"):
        receptive_field_size([3], dilations=[0])


def _ones_stack(dilations):
    layers = [nn.Conv2d(1, 1, 3, padding=d, dilation=d, bias=False) for d in dilations]
    for conv in layers:
        nn.init.constant_(conv.weight, 1.0)
    return nn.Sequential(*layers)


@pytest.mark.parametrize("dilations", [(1, 1, 1), (1, 2, 4), (2, 2, 2)])
def test_effective_field_spans_the_theoretical_field(dilations):
    erf = effective_receptive_field(_ones_stack(dilations), (1, 1, 41, 41))
    rows, cols = np.nonzero(erf)
    assert cols.max() - cols.min() + 1 == receptive_field_size([3] * 3, dilations)
    assert erf.max() == 1.0 and erf[20, 20] > 0


def test_gridding_leaves_holes_and_growing_rates_do_not():
    grid = effective_receptive_field(_ones_stack((2, 2, 2)), (1, 1, 41, 41))
    span = slice(20 - 6, 20 + 7)
    assert np.count_nonzero(grid[span, span]) == 7 * 7  # only every other pixel: 7 of 13 per axis
    assert grid[21, 21] == 0.0
    dense = effective_receptive_field(_ones_stack((1, 2, 4)), (1, 1, 41, 41))
    assert np.count_nonzero(dense) == 15 * 15


def test_effective_field_argument_checks():
    with pytest.raises(ValueError, match="input_shape"):
        effective_receptive_field(_ones_stack((1,)), (2, 1, 9, 9))
    with pytest.raises(ValueError, match="outside"):
        effective_receptive_field(_ones_stack((1,)), (1, 1, 9, 9), position=(20, 0))


def test_aspp_shapes_and_branches():
    aspp = ASPP(32, 16, atrous_rates=(1, 2, 3)).eval()
    x = torch.randn(2, 32, 9, 11)
    outs = aspp.branch_outputs(x)
    assert len(outs) == 5 and all(o.shape == (2, 16, 9, 11) for o in outs)
    assert aspp(x).shape == (2, 16, 9, 11)
    dilations = [b[0].dilation for b in aspp.branches]
    assert dilations == [(1, 1), (1, 1), (2, 2), (3, 3)]
    assert len(ASPP(8, 4, (2,), image_pooling=False).branch_outputs(torch.randn(1, 8, 5, 5))) == 2


def test_aspp_rate_beyond_the_map_is_a_1x1_convolution():
    """On a 5x5 map a rate-6 3x3 kernel sees only its centre tap (the rest falls on padding)."""
    conv = nn.Conv2d(1, 1, 3, padding=6, dilation=6, bias=False)
    centre = nn.Conv2d(1, 1, 1, bias=False)
    centre.weight.data = conv.weight.data[:, :, 1:2, 1:2].clone()
    x = torch.randn(1, 1, 5, 5)
    assert torch.allclose(conv(x), centre(x), atol=1e-6)


@pytest.mark.parametrize("bad", [(), 6, (0, 2), ("a",)])
def test_aspp_rejects_bad_rates(bad):
    with pytest.raises(ValueError, match="atrous_rates"):
        ASPP(8, 4, bad)


def test_pyramid_pooling_doubles_the_channels():
    ppm = PyramidPooling(64)
    x = torch.randn(2, 64, 12, 12)
    y = ppm(x)
    assert ppm.out_channels == 128 and y.shape == (2, 128, 12, 12)
    assert torch.equal(y[:, :64], x)  # the input passes through untouched
    assert [s[0].output_size for s in ppm.stages] == [1, 2, 3, 6]
    with pytest.raises(ValueError, match="bins"):
        PyramidPooling(64, bins=[])
    with pytest.raises(ValueError, match="too small"):
        PyramidPooling(3, bins=(1, 2, 3, 6))


def test_dilate_resnet_matches_torchvision_for_bottlenecks():
    ours = dilate_resnet_(torchvision.models.resnet50(weights=None), 8)
    theirs = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    for (name, a), (_, b) in zip(ours.named_modules(), theirs.named_modules()):
        if isinstance(a, nn.Conv2d):
            assert (a.stride, a.dilation, a.padding) == (b.stride, b.dilation, b.padding), name


@pytest.mark.parametrize("output_stride, last_layer", [(8, "layer4"), (16, "layer4"), (32, "layer4"), (16, "layer3"),
                                                         (8, "layer2")])
def test_resnet18_backbone_output_stride(output_stride, last_layer):
    body = resnet_backbone("resnet18", output_stride, last_layer)
    feats = body(torch.randn(1, 3, 64, 64))
    assert feats["out"].shape[-1] == 64 // output_stride
    assert feats["low"].shape[1:] == (body.low_level_channels, 16, 16)
    assert feats["out"].shape[1] == body.out_channels


def test_backbone_argument_checks():
    with pytest.raises(ValueError, match="output_stride"):
        dilate_resnet_(torchvision.models.resnet18(weights=None), 4)
    with pytest.raises(ValueError, match="name"):
        resnet_backbone("vgg16")
    with pytest.raises(ValueError, match="layer3 ends at stride 16"):
        resnet_backbone("resnet18", 32, "layer3")
    with pytest.raises(ValueError, match="`output_stride` must be 8"):
        resnet_backbone("resnet18", 16, "layer2")
    with pytest.raises(ValueError, match="`last_layer`"):
        resnet_backbone("resnet18", 8, "layer1")


def test_layer2_trunk_is_undilated_and_stops_at_layer2():
    body = resnet_backbone("resnet18", 8, "layer2")
    names = {name.split(".")[0] for name, _ in body.named_children()}
    assert names == {"conv1", "bn1", "relu", "maxpool", "layer1", "layer2"}
    assert all(m.dilation == (1, 1) for m in body.modules() if isinstance(m, nn.Conv2d))
    assert body.out_channels == 128 and body.output_stride == 8
    assert resnet_backbone("resnet50", 8, "layer2").out_channels == 512


def test_builders_return_logits_at_input_size():
    from torchvision.models.segmentation import DeepLabV3

    x = torch.randn(2, 3, 48, 48)
    v3 = build_deeplabv3(5, "resnet18", 8, channels=16, atrous_rates=(1, 2, 3), last_layer="layer3")
    plus = build_deeplabv3plus(5, "resnet18", 16, channels=16, atrous_rates=(1, 2), last_layer="layer3")
    psp = build_pspnet(5, "resnet18", 8, channels=16, last_layer="layer3")
    plus2 = build_deeplabv3plus(5, "resnet18", 8, channels=16, atrous_rates=(1, 2, 3), last_layer="layer2")
    assert isinstance(v3, DeepLabV3) and isinstance(psp, DeepLabV3) and isinstance(plus, DeepLabV3Plus)
    for model in (v3, plus, psp, plus2):
        assert model(x)["out"].shape == (2, 5, 48, 48)
    with pytest.raises(ValueError, match="low_level_channels"):
        DeepLabV3Plus(nn.Identity(), 3)


class _Recorder(nn.Module):
    """A stand-in VOC model: remembers its input, returns 21-class logits favouring class 15 at half size."""

    def forward(self, x):
        self.seen = x
        logits = torch.zeros(x.shape[0], len(VOC_CLASS_NAMES), x.shape[2] // 2, x.shape[3] // 2)
        logits[:, 15] = 1.0
        return {"out": logits}


def test_segment_with_voc_model_normalises_and_returns_photo_size():
    model = _Recorder()
    image = np.full((30, 45, 3), 255, np.uint8)
    labels = segment_with_voc_model(model, image, resize=60, device="cpu")
    assert labels.shape == (30, 45) and labels.dtype == np.int64 and np.all(labels == 15)
    assert tuple(model.seen.shape[-2:]) == (60, 90)  # shorter side resized to 60
    expected = (1 - 0.485) / 0.229  # white, ImageNet-normalised, red channel
    assert model.seen[0, 0].mean().item() == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        segment_with_voc_model(model, image.astype(np.float32), device="cpu")
