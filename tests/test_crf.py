"""Tests of utils.crf: a mean-field step worked by hand, exact against windowed, known outcomes, errors."""
import math

import numpy as np
import pytest
import torch

from utils.crf import (
    EXACT_MAX_PIXELS,
    PROB_FLOOR,
    crf_labels,
    crf_messages,
    dense_crf,
    mean_field_update,
    unary_from_probs,
)


def _random_case(seed, c=3, h=7, w=9, dtype=np.float32):
    rng = np.random.default_rng(seed)
    probs = torch.from_numpy(rng.dirichlet(np.ones(c), size=(h, w)).astype(dtype)).permute(2, 0, 1).contiguous()
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return probs, image


# --------------------------------------------------------------------------------------------------
# 1. no pairwise term: nothing changes
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [None, 1, 3])
def test_without_pairwise_weights_the_output_is_the_input(window):
    probs, image = _random_case(0)
    q = dense_crf(probs, image, w_app=0.0, w_smooth=0.0, window=window)
    unary = unary_from_probs(probs)
    torch.testing.assert_close(q, torch.softmax(-unary, dim=0), atol=1e-6, rtol=0)
    torch.testing.assert_close(q, probs, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------------
# 2. the windowed messages are the exact ones once the window covers the image
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("normalize", [True, False])
def test_windowed_equals_exact_when_the_window_covers_the_image(seed, normalize):
    probs, image = _random_case(seed, dtype=np.float64)  # float64 work: no rounding noise to amplify
    exact = dense_crf(probs, image, normalize=normalize)
    for window in (max(probs.shape[1:]) - 1, 100):
        windowed = dense_crf(probs, image, window=window, normalize=normalize)
        torch.testing.assert_close(windowed, exact, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", range(4))
def test_windowed_equals_exact_in_float32_up_to_rounding(seed):
    # In float32 five mean-field iterations amplify rounding differences to about 1e-5.
    probs, image = _random_case(seed)
    torch.testing.assert_close(dense_crf(probs, image, window=8), dense_crf(probs, image), atol=5e-5, rtol=0)


def test_a_smaller_window_drops_far_pairs():
    probs, image = _random_case(1)
    full = crf_messages(probs, image, window=8, normalize=False)
    near = crf_messages(probs, image, window=1, normalize=False)
    assert (near < full).all()  # every pixel has neighbours beyond one pixel, all with positive weight


# --------------------------------------------------------------------------------------------------
# 3. hand-made cases whose answer is known
# --------------------------------------------------------------------------------------------------

FLAT = np.full((5, 5, 3), (120, 60, 30), dtype=np.uint8)


def _centre_case(p_centre):
    """5x5, class 0 at 0.95 everywhere except the centre, which gives class 1 probability ``p_centre``."""
    probs = torch.tensor([0.95, 0.05]).view(2, 1, 1).repeat(1, 5, 5)
    probs[:, 2, 2] = torch.tensor([1 - p_centre, p_centre])
    return probs


@pytest.mark.parametrize("window", [None, 1, 2])
def test_a_weak_isolated_pixel_is_flipped(window):
    probs = _centre_case(0.6)
    assert probs.argmax(0)[2, 2] == 1
    labels = crf_labels(probs, FLAT, window=window)
    assert (labels == 0).all()
    # with gentler weights, too
    assert (crf_labels(probs, FLAT, window=window, w_app=3.0, w_smooth=1.0) == 0).all()


@pytest.mark.parametrize("window", [None, 1, 2])
def test_a_confident_pixel_is_not_overruled(window):
    # The neighbours shift the centre's log-odds by about w_app + w_smooth = 4 nats; 0.999 is 6.9 nats.
    probs = _centre_case(0.999)
    labels = crf_labels(probs, FLAT, window=window, w_app=3.0, w_smooth=1.0)
    assert labels[2, 2] == 1
    assert (labels.flatten()[torch.arange(25) != 12] == 0).all()


def test_the_default_weights_overrule_a_margin_of_seven_nats():
    # The defaults pull by about w_app + w_smooth = 13 nats: 0.999 (6.9 nats) is not confident enough.
    assert crf_labels(_centre_case(0.999), FLAT)[2, 2] == 0


H, W, EDGE, SHIFT = 8, 12, 6, 4


def _two_regions(seed):
    """Left half dark, right half bright (with a little colour noise); the prediction's boundary is two
    columns too far left, its confidence is 0.55-0.8 and one pixel in ten is flipped."""
    rng = np.random.default_rng(seed)
    image = np.empty((H, W, 3), dtype=np.int64)
    image[:, :EDGE], image[:, EDGE:] = 40, 200
    image = np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    predicted = np.zeros((H, W), dtype=np.int64)
    predicted[:, SHIFT:] = 1
    flip = rng.random((H, W)) < 0.1
    predicted[flip] = 1 - predicted[flip]
    confidence = rng.uniform(0.55, 0.8, (H, W))
    p1 = np.where(predicted == 1, confidence, 1 - confidence)
    return torch.from_numpy(np.stack([1 - p1, p1]).astype(np.float32)), image


@pytest.mark.parametrize("seed", range(5))
def test_the_boundary_moves_onto_the_colour_edge(seed):
    probs, image = _two_regions(seed)
    truth = torch.zeros(H, W, dtype=torch.long)
    truth[:, EDGE:] = 1
    assert (probs.argmax(0) != truth).sum() >= 2 * H  # the two shifted columns, and the flips
    for window in (None, 3, 5):
        assert torch.equal(crf_labels(probs, image, window=window), truth), window
    # A window narrower than the error (two columns) cannot see across it.
    assert not torch.equal(crf_labels(probs, image, window=1), truth)
    # It is the appearance (colour) term that finds the edge: smoothness alone does not.
    assert not torch.equal(crf_labels(probs, image, w_app=0.0), truth)


# --------------------------------------------------------------------------------------------------
# 4. one mean-field update by hand
# --------------------------------------------------------------------------------------------------

PARAMS = {"w_app": 2.0, "theta_alpha": 2.0, "theta_beta": 50.0, "w_smooth": 1.5, "theta_gamma": 1.0}


def _update_by_hand(probs: np.ndarray, image: np.ndarray, normalize: bool):
    """One update on a tiny image, every sum written out; returns (messages, Q), both (C, H, W)."""
    c, h, w = probs.shape
    pixels = [(y, x) for y in range(h) for x in range(w)]
    n = len(pixels)

    def gaussians(a, b):
        (ya, xa), (yb, xb) = pixels[a], pixels[b]
        d_pos = (ya - yb) ** 2 + (xa - xb) ** 2
        d_col = float(np.sum((image[ya, xa].astype(float) - image[yb, xb].astype(float)) ** 2))
        appearance = math.exp(-d_pos / (2 * PARAMS["theta_alpha"] ** 2) - d_col / (2 * PARAMS["theta_beta"] ** 2))
        smooth = math.exp(-d_pos / (2 * PARAMS["theta_gamma"] ** 2))
        return appearance, smooth

    k_app = np.zeros((n, n))
    k_smooth = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                k_app[i, j], k_smooth[i, j] = gaussians(i, j)
    if normalize:
        d_app, d_smooth = k_app.sum(1), k_smooth.sum(1)
        for i in range(n):
            for j in range(n):
                k_app[i, j] /= math.sqrt(d_app[i] * d_app[j])
                k_smooth[i, j] /= math.sqrt(d_smooth[i] * d_smooth[j])
    kernel = PARAMS["w_app"] * k_app + PARAMS["w_smooth"] * k_smooth

    unary = -np.log(np.maximum(probs, PROB_FLOOR)).reshape(c, n)
    q0 = np.exp(-unary) / np.exp(-unary).sum(0)
    messages = np.zeros((c, n))
    q = np.zeros((c, n))
    for i in range(n):
        for label in range(c):
            messages[label, i] = sum(kernel[i, j] * q0[label, j] for j in range(n) if j != i)
        energy = np.zeros(c)
        for label in range(c):
            pairwise = sum(messages[other, i] for other in range(c) if other != label)  # Potts
            energy[label] = unary[label, i] + pairwise
        q[:, i] = np.exp(-energy) / np.exp(-energy).sum()
    return messages.reshape(c, h, w), q.reshape(c, h, w)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("window", [None, 1])
def test_one_update_by_hand(normalize, window):
    probs = np.array([[[0.7, 0.2], [0.1, 0.5]],
                      [[0.2, 0.3], [0.6, 0.25]],
                      [[0.1, 0.5], [0.3, 0.25]]])
    image = np.array([[[10, 20, 30], [40, 50, 60]], [[200, 210, 220], [15, 25, 35]]], dtype=np.uint8)
    messages, q = _update_by_hand(probs, image, normalize)
    probs_t = torch.from_numpy(probs)
    got_messages = crf_messages(probs_t, image, window=window, normalize=normalize, **PARAMS)
    np.testing.assert_allclose(got_messages.numpy(), messages, rtol=1e-5, atol=1e-6)
    step = mean_field_update(unary_from_probs(probs_t).double(), torch.from_numpy(messages))
    np.testing.assert_allclose(step.numpy(), q, rtol=0, atol=1e-6)
    once = dense_crf(probs_t, image, iterations=1, window=window, normalize=normalize, **PARAMS)
    np.testing.assert_allclose(once.numpy(), q, rtol=0, atol=1e-6)


def test_mean_field_update_is_softmax_of_minus_unary_plus_messages():
    # The Potts cost sum_{l' != l} m(l') differs from -m(l) by a per-pixel constant, which softmax ignores.
    g = torch.Generator().manual_seed(0)
    unary, messages = torch.rand(4, 3, 5, generator=g) * 5, torch.rand(4, 3, 5, generator=g) * 10
    torch.testing.assert_close(mean_field_update(unary, messages), torch.softmax(-unary + messages, dim=0))
    torch.testing.assert_close(mean_field_update(unary, torch.zeros_like(messages)), torch.softmax(-unary, dim=0))


# --------------------------------------------------------------------------------------------------
# 5. symmetry and invariance
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [None, 2])
def test_permuting_the_classes_permutes_the_output(window):
    probs, image = _random_case(3, c=4, dtype=np.float64)  # float64: no rounding noise from the summation order
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(dense_crf(probs[perm], image, window=window),
                               dense_crf(probs, image, window=window)[perm], atol=1e-6, rtol=0)


@pytest.mark.parametrize("window", [None, 2])
def test_a_grey_image_is_one_colour_channel(window):
    probs, image = _random_case(4)
    grey = image[..., 0]
    one_channel = np.zeros_like(image)
    one_channel[..., 0] = grey  # the same colour distances as the grey values
    torch.testing.assert_close(dense_crf(probs, grey, window=window), dense_crf(probs, one_channel, window=window))


def test_numpy_and_torch_inputs_agree():
    probs, image = _random_case(5)
    torch.testing.assert_close(dense_crf(probs.numpy(), image, window=2),
                               dense_crf(probs, torch.from_numpy(image), window=2))


# --------------------------------------------------------------------------------------------------
# 6. errors
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"iterations": 0}, "`iterations` must be an int >= 1"),
    ({"iterations": 2.0}, "`iterations` must be an int >= 1"),
    ({"window": 0}, "`window` must be an int >= 1 or None"),
    ({"window": 1.5}, "`window` must be an int >= 1 or None"),
    ({"theta_alpha": 0.0}, "`theta_alpha` must be a positive number"),
    ({"theta_beta": -13.0}, "`theta_beta` must be a positive number"),
    ({"theta_gamma": float("nan")}, "`theta_gamma` must be a positive number"),
    ({"w_app": -1.0}, "`w_app` must be a non-negative number"),
    ({"w_smooth": float("inf")}, "`w_smooth` must be a non-negative number"),
    ({"normalize": "yes"}, "`normalize` must be True or False"),
    ({"normalize": None, "window": 2}, "`normalize` must be True or False"),
])
def test_bad_parameters_are_refused(kwargs, match):
    probs, image = _random_case(0)
    with pytest.raises(ValueError, match=match):
        dense_crf(probs, image, **kwargs)


def test_bad_probabilities_are_refused():
    probs, image = _random_case(0)
    with pytest.raises(ValueError, match=r"`probs` must be \(C, H, W\)"):
        dense_crf(probs[0], image)
    with pytest.raises(ValueError, match=r"`probs` must be \(C, H, W\)"):
        dense_crf(probs[None], image)
    with pytest.raises(ValueError, match="`probs` must be floating point"):
        dense_crf(probs.argmax(0, keepdim=True), image)
    bad = probs.clone()
    bad[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        dense_crf(bad, image)
    bad = probs.clone()
    bad[0, 1, 1], bad[1, 1, 1] = -0.2, bad[1, 1, 1] + 0.2
    with pytest.raises(ValueError, match="non-negative"):
        dense_crf(bad, image)
    with pytest.raises(ValueError, match="sum to 1.*softmax"):
        dense_crf(probs * 2, image)
    with pytest.raises(ValueError, match=r"sum to 1.*1 - p"):
        dense_crf(probs[:1], image)
    with pytest.raises(ValueError, match="`probs` must be a torch tensor or NumPy array"):
        dense_crf(probs.tolist(), image)


def test_bad_images_are_refused():
    probs, image = _random_case(0)
    with pytest.raises(ValueError, match="`image` is 7 x 8 pixels but `probs` is 7 x 9"):
        dense_crf(probs, image[:, :8])
    with pytest.raises(ValueError, match="must be uint8.*0-255"):
        dense_crf(probs, image.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"channels first\?"):
        dense_crf(probs, torch.from_numpy(image).permute(2, 0, 1))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB or \(H, W\) grey"):
        dense_crf(probs, np.zeros((7, 9, 4), dtype=np.uint8))


def test_exact_mode_refuses_a_large_image_and_points_to_window():
    side = math.isqrt(EXACT_MAX_PIXELS) + 1
    probs = torch.full((2, side, side), 0.5)
    image = np.zeros((side, side, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="pass `window=r`"):
        dense_crf(probs, image)
    assert dense_crf(probs, image, window=2, iterations=1).shape == (2, side, side)


def test_mean_field_update_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        mean_field_update(torch.zeros(2, 3, 4), torch.zeros(3, 3, 4))
    with pytest.raises(ValueError, match=r"`messages` must be a \(C, H, W\)"):
        mean_field_update(torch.zeros(2, 3, 4), np.zeros((2, 3, 4)))


# --------------------------------------------------------------------------------------------------
# 7. the output
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [None, 3])
def test_output_is_a_float32_distribution_of_the_input_shape(dtype, window):
    probs, image = _random_case(6, c=5, dtype=dtype)
    q = dense_crf(probs, image, window=window)
    assert q.shape == probs.shape
    assert q.dtype == torch.float32
    assert (q >= 0).all()
    torch.testing.assert_close(q.sum(0), torch.ones(q.shape[1:]), atol=1e-6, rtol=0)
    labels = crf_labels(probs, image, window=window)
    assert labels.dtype == torch.int64 and labels.shape == probs.shape[1:]
    assert torch.equal(labels, q.argmax(0))


def test_unary_from_probs_clamps_zero():
    probs = torch.tensor([1.0, 0.0]).view(2, 1, 1)
    assert unary_from_probs(probs).flatten().tolist() == pytest.approx([0.0, -math.log(PROB_FLOOR)])
