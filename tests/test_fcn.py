"""Tests of the FCN-32s / 16s / 8s of utils.models: the bilinear kernel by hand and against F.interpolate,
shapes, parameter counts worked out from the layers, the zero-initialised skips, errors, a short overfit."""
import pytest
import torch
import torch.nn.functional as F

from utils.models import FCNVGG, bilinear_kernel, count_parameters


def _interior(t, border):
    return t[..., border:t.shape[-2] - border, border:t.shape[-1] - border]


def _bilinear_transpose(x, factor):
    """Upsampling by ``factor`` with a bilinear ``bilinear_kernel``, written without the model's layers."""
    c = x.shape[1]
    return F.conv_transpose2d(x, bilinear_kernel(c, c, 2 * factor), stride=factor, padding=factor // 2)


# --------------------------------------------------------------------------------------------------
# bilinear_kernel
# --------------------------------------------------------------------------------------------------

def test_bilinear_kernel_size_4_by_hand():
    # factor 2, center 1.5: the 1-D tent is 1 - |[0, 1, 2, 3] - 1.5| / 2 = [1, 3, 3, 1] / 4
    expected = torch.tensor([[1.0, 3.0, 3.0, 1.0],
                             [3.0, 9.0, 9.0, 3.0],
                             [3.0, 9.0, 9.0, 3.0],
                             [1.0, 3.0, 3.0, 1.0]]) / 16
    w = bilinear_kernel(3, 3, 4)
    assert w.shape == (3, 3, 4, 4) and w.dtype == torch.float32
    for c in range(3):
        torch.testing.assert_close(w[c, c], expected, rtol=0, atol=0)
    off_diagonal = ~torch.eye(3, dtype=torch.bool)
    assert (w[off_diagonal] == 0).all()


def test_bilinear_kernel_odd_size_by_hand():
    # factor 2, center 1: the tent is 1 - |[0, 1, 2] - 1| / 2 = [1/2, 1, 1/2]
    tent = torch.tensor([0.5, 1.0, 0.5])
    torch.testing.assert_close(bilinear_kernel(1, 1, 3)[0, 0], tent[:, None] * tent[None, :], rtol=0, atol=0)


@pytest.mark.parametrize("factor", [2, 8])
def test_transposed_convolution_is_bilinear_interpolation_inside(factor):
    # Kernel 2f, stride f, padding f/2: output pixel j samples the input at (j + 0.5) / f - 0.5, as
    # interpolate(align_corners=False) does. The two differ only where that coordinate falls outside
    # [0, n - 1]: interpolate repeats the edge pixel, the transposed convolution sees a zero. That is
    # j < f/2 - 1/2 at the start (and likewise at the end): a border of exactly f/2 pixels.
    x = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(0))
    ours = _bilinear_transpose(x, factor)
    reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ours.shape == reference.shape == (2, 3, 7 * factor, 9 * factor)
    border = factor // 2
    torch.testing.assert_close(_interior(ours, border), _interior(reference, border))
    # the border is no narrower than that: its innermost row and column already differ (x > 0, so the
    # zeros beyond the edge lose weight)
    diff = (ours - reference).abs()
    assert diff[..., border - 1, border:-border].min() > 1e-3  # row f/2 - 1 from the top
    assert diff[..., border:-border, -border].min() > 1e-3  # column f/2 - 1 from the right


def test_bilinear_kernel_errors():
    with pytest.raises(ValueError, match="in_channels.*out_channels.*equal.*3 and 4"):
        bilinear_kernel(3, 4, 4)
    with pytest.raises(ValueError, match="`kernel_size`"):
        bilinear_kernel(2, 2, 0)
    with pytest.raises(ValueError, match="`in_channels`"):
        bilinear_kernel(0, 0, 4)
    with pytest.raises(ValueError, match="`kernel_size`"):
        bilinear_kernel(2, 2, 4.0)


# --------------------------------------------------------------------------------------------------
# FCNVGG: shapes, parameters
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 96, 128)])
def test_fcn_output_shape(variant, shape):
    model = FCNVGG(3, 4, variant=variant)
    out = model(torch.rand(*shape))
    assert out.shape == (shape[0], 4, *shape[2:])
    assert out.dtype == torch.float32
    assert model.features(torch.rand(*shape))["score_fr"].shape == (shape[0], 4, shape[2] // 32, shape[3] // 32)


@pytest.mark.parametrize("norm", ["group", "instance", "none", None])
def test_fcn_other_norms(norm):
    assert FCNVGG(1, 2, "8s", base_width=4, norm=norm)(torch.rand(2, 1, 64, 64)).shape == (2, 2, 64, 64)


def test_fcn_encoder_strides_and_widths():
    feats = FCNVGG(3, 4, "8s", base_width=4).features(torch.rand(1, 3, 64, 96))
    for i, width in zip(range(1, 6), (4, 8, 16, 32, 32)):
        assert feats[f"pool{i}"].shape == (1, width, 64 >> i, 96 >> i)
    assert feats["fc7"].shape == (1, 32, 2, 3)


@pytest.mark.parametrize("base_width, num_classes", [(16, 4), (8, 21)])
def test_fcn_parameter_differences_are_the_skip_layers(base_width, num_classes):
    fcn32, fcn16, fcn8 = (FCNVGG(3, num_classes, v, base_width=base_width) for v in ("32s", "16s", "8s"))
    c = num_classes

    def score(in_channels):  # 1x1 convolution with bias
        return in_channels * c + c

    def up(factor):  # transposed convolution, kernel 2f, no bias
        return c * c * (2 * factor) ** 2

    pool3, pool4 = 4 * base_width, 8 * base_width
    common = count_parameters(fcn32) - up(32)
    assert count_parameters(fcn16) == common + score(pool4) + up(2) + up(16)
    assert count_parameters(fcn8) == common + score(pool4) + score(pool3) + up(2) + up(2) + up(8)
    # the same check layer by layer: 8s has the modules of 32s except ``upscore``, plus its own
    names32 = {n for n, _ in fcn32.named_parameters()}
    names8 = {n for n, _ in fcn8.named_parameters()}
    assert names32 - names8 == {"upscore.weight"}
    assert names8 - names32 == {"score_pool4.weight", "score_pool4.bias", "score_pool3.weight", "score_pool3.bias",
                                "upscore2.weight", "upscore_pool4.weight", "upscore8.weight"}


def test_fcn_upsampling_is_bilinear_and_learnable():
    model = FCNVGG(3, 4, "8s")
    for name, factor in [("upscore2", 2), ("upscore_pool4", 2), ("upscore8", 8)]:
        layer = getattr(model, name)
        assert (layer.kernel_size, layer.stride, layer.padding) == ((2 * factor,) * 2, (factor,) * 2,
                                                                   (factor // 2,) * 2)
        assert layer.bias is None and layer.weight.requires_grad
        torch.testing.assert_close(layer.weight, bilinear_kernel(4, 4, 2 * factor), rtol=0, atol=0)
    model(torch.rand(2, 3, 64, 64)).sum().backward()
    assert model.upscore8.weight.grad is not None and model.upscore8.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------
# FCNVGG: the skips start at zero
# --------------------------------------------------------------------------------------------------

def test_fcn8s_at_init_is_the_bilinear_upsampling_of_score_fr():
    torch.manual_seed(0)
    model = FCNVGG(3, 4, "8s").eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        feats = model.features(x)
        assert (model.score_pool4(feats["pool4"]) == 0).all()
        assert (model.score_pool3(feats["pool3"]) == 0).all()
        assert feats["score_fr"].abs().max() > 0
        chain = _bilinear_transpose(_bilinear_transpose(_bilinear_transpose(feats["score_fr"], 2), 2), 8)
        torch.testing.assert_close(model(x), chain)


def test_fcn16s_at_init_is_the_bilinear_upsampling_of_score_fr():
    torch.manual_seed(0)
    model = FCNVGG(3, 4, "16s").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.features(x)
        assert (model.score_pool4(feats["pool4"]) == 0).all()
        torch.testing.assert_close(model(x), _bilinear_transpose(_bilinear_transpose(feats["score_fr"], 2), 16))


def test_fcn_skips_receive_gradients():
    model = FCNVGG(3, 4, "8s")
    model(torch.rand(2, 3, 64, 64)).sum().backward()
    for name in ("score_pool4", "score_pool3"):
        layer = getattr(model, name)
        assert layer.weight.grad.abs().sum() > 0 and layer.bias.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["4s", "fcn8s", 8, None])
def test_fcn_bad_variant(variant):
    with pytest.raises(ValueError, match="`variant` must be one of"):
        FCNVGG(3, 4, variant=variant)


@pytest.mark.parametrize("hw", [(64, 48), (33, 64), (16, 16)])
def test_fcn_input_size_not_divisible_by_32(hw):
    with pytest.raises(ValueError, match=r"`x`.*divisible by 32.*" + f"{hw[0]}x{hw[1]}"):
        FCNVGG(3, 4, "8s", base_width=4)(torch.rand(1, 3, *hw))


def test_fcn_bad_arguments():
    with pytest.raises(ValueError, match="`num_classes`"):
        FCNVGG(3, 0)
    with pytest.raises(ValueError, match="`base_width`"):
        FCNVGG(3, 4, base_width=2.5)
    with pytest.raises(ValueError, match="`norm`"):
        FCNVGG(3, 4, norm="layer")
    with pytest.raises(ValueError, match=r"`x` must be a \(B, C, H, W\) batch"):
        FCNVGG(3, 4)(torch.rand(3, 64, 64))


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------

def test_fcn8s_overfits_one_batch():
    # random 4-class masks drawn on an 8x8 grid of 8-pixel cells, so that a stride-8 network can fit them
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 64, 64, generator=g)
    masks = torch.randint(0, 4, (4, 8, 8), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    model = FCNVGG(3, 4, "8s")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), masks)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
