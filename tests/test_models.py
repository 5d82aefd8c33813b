"""Tests of utils.models.unet: shapes for every configuration, parameter counts worked out from the paper, errors;
and of the package utils.models, which gathers every family's public names."""
import pytest
import torch

from utils.models import FCN, UNet, count_parameters, unet_original


def _conv(c_in, c_out, k, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def _paper_unet_parameters(in_channels, num_classes, base=64, depth=4):
    """The U-Net of the paper counted from its description: two 3x3 convs (with bias) per level,
    2x2 up-convolutions that halve the channels, a 1x1 classifier."""
    widths = [base * 2 ** i for i in range(depth + 1)]
    total = _conv(in_channels, widths[0], 3) + _conv(widths[0], widths[0], 3)
    for i in range(1, depth + 1):  # contracting path
        total += _conv(widths[i - 1], widths[i], 3) + _conv(widths[i], widths[i], 3)
    for i in range(depth, 0, -1):  # expanding path: up-conv, then two convs on the concatenation
        total += _conv(widths[i], widths[i - 1], 2)
        total += _conv(2 * widths[i - 1], widths[i - 1], 3) + _conv(widths[i - 1], widths[i - 1], 3)
    return total + _conv(widths[0], num_classes, 1)


@pytest.mark.parametrize("in_channels, num_classes", [(1, 2), (3, 21)])
def test_unet_original_parameter_count_matches_the_paper_architecture(in_channels, num_classes):
    model = unet_original(num_classes, in_channels=in_channels)
    assert count_parameters(model) == _paper_unet_parameters(in_channels, num_classes)


def test_unet_original_is_about_31_million_parameters():
    assert 30e6 < count_parameters(unet_original(2, in_channels=1)) < 32e6


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none", None])
@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
@pytest.mark.parametrize("skip", [True, False])
def test_unet_output_shape(depth, norm, upsample, skip):
    model = UNet(3, 5, base_width=4, depth=depth, norm=norm, upsample=upsample, skip=skip)
    out = model(torch.rand(2, 3, 32, 40))
    assert out.shape == (2, 5, 32, 40)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("hw", [(33, 47), (17, 64), (9, 9)])
def test_unet_any_input_size(hw):
    out = UNet(1, 2, base_width=4, depth=3)(torch.rand(1, 1, *hw))
    assert out.shape == (1, 2, *hw)


def test_skip_connections_add_decoder_inputs():
    with_skip = count_parameters(UNet(3, 4, 8, 3, skip=True))
    without = count_parameters(UNet(3, 4, 8, 3, skip=False))
    # Only the first conv of each decoder block changes: it reads 2c instead of c channels (3x3, no bias
    # with batch norm), at the three levels of width 8, 16, 32.
    assert with_skip - without == sum(9 * c * c for c in (8, 16, 32))


def test_unet_gradients_reach_the_first_layer():
    model = UNet(3, 4, 4, 2)
    model(torch.rand(2, 3, 16, 16)).sum().backward()
    first = next(model.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_fcn_shape_and_coarse_output():
    model = FCN(3, 4, base_width=4, depth=3).eval()
    out = model(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 4, 32, 32)
    assert model.classifier(model.encoder(torch.rand(1, 3, 32, 32))).shape == (1, 4, 4, 4)


def test_count_parameters_trainable_only():
    model = UNet(3, 2, 4, 1)
    total = count_parameters(model)
    for p in model.stem.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.stem.parameters())
    assert count_parameters(model) == total - frozen
    assert count_parameters(model, trainable_only=False) == total


@pytest.mark.parametrize("kwargs, message", [
    ({"norm": "layer"}, "`norm` must be one of"),
    ({"upsample": "nearest"}, "`upsample` must be one of"),
    ({"depth": 0}, "`depth` must be an int >= 1, got 0"),
    ({"base_width": 2.5}, "`base_width` must be an int >= 1, got 2.5"),
    ({"num_classes": 0}, "`num_classes` must be an int >= 1"),
    ({"skip": "yes"}, "`skip` must be True or False"),
])
def test_unet_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(**{"in_channels": 3, "num_classes": 2, "base_width": 4, "depth": 2, **kwargs})


def test_unet_error_input_rank():
    with pytest.raises(ValueError, match=r"`x` must be a \(B, C, H, W\) batch, got shape \(3, 16, 16\)"):
        UNet(3, 2, 4, 2)(torch.rand(3, 16, 16))


def test_count_parameters_error():
    with pytest.raises(ValueError, match="`model` must be a torch.nn.Module, got list"):
        count_parameters([])


def test_the_package_gathers_every_family_and_imports_no_transformers_or_segment_anything():
    import subprocess
    import sys
    from pathlib import Path

    import utils.models
    from utils.models import deeplab, maskrcnn, unet

    for module in (unet, deeplab, maskrcnn):
        for name in module.__all__:
            assert getattr(utils.models, name) is getattr(module, name), name
    assert sorted(utils.models.__all__) == sorted({*unet.__all__, *deeplab.__all__, *maskrcnn.__all__})
    code = ("import sys, utils.models; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'segment_anything')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"
