"""A fully connected (dense) CRF for semantic segmentation, with mean-field inference in PyTorch.

A network's prediction is coarse: it is computed at a fraction of the image's resolution and upsampled,
so its class boundaries are blurred and often miss the object's edge by a few pixels, and it leaves
isolated wrong pixels. The dense CRF of Krähenbühl and Koltun ("Efficient Inference in Fully Connected
CRFs with Gaussian Edge Potentials", NeurIPS 2011) refines it by asking every pair of pixels that are
close *and* alike in colour to take the same label.

>>> q = dense_crf(probs, image, window=7)           # doctest: +SKIP
>>> labels = q.argmax(0)                             # doctest: +SKIP

The model
---------
A labelling ``x`` (one class per pixel) has the energy::

    E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)

* the unary ``psi_u(x_i) = -log P(x_i)`` is what the network says about pixel ``i`` alone
  (:func:`unary_from_probs`);
* the Potts compatibility ``mu(l, l') = [l != l']`` charges a pair only when its two labels differ;
* the kernel is a sum of two Gaussians of the pixel positions ``p`` (in pixels, (row, column)) and
  colours ``I`` (on the 0-255 scale, as in the paper)::

      k(f_i, f_j) = w_app    * exp(-|p_i - p_j|^2 / (2 theta_alpha^2) - |I_i - I_j|^2 / (2 theta_beta^2))
                  + w_smooth * exp(-|p_i - p_j|^2 / (2 theta_gamma^2))

  The *appearance* (bilateral) term ties far-reaching pixels of similar colour, which is what moves a
  boundary onto the colour edge; the *smoothness* term ties close pixels whatever their colour, which
  removes isolated pixels.

Mean-field inference approximates the distribution ``P(x) ~ exp(-E(x))`` by independent per-pixel
marginals ``Q_i``, started at ``softmax(-unary)`` (the network's own probabilities) and updated
``iterations`` times by::

    messages_i(l) = sum_{j != i} k(f_i, f_j) Q_j(l)                        (message passing)
    Q_i(l)        = softmax_l( -psi_u(i, l) - sum_{l'} mu(l, l') messages_i(l') )

(:func:`crf_messages` computes the first line, :func:`mean_field_update` the second.)

Kernel normalisation
--------------------
The default weights below are the values popularised by the DeepLab-v1/v2 and pydensecrf examples
(``w_app = 10``, ``theta_alpha = 80``, ``theta_beta = 13``, ``w_smooth = 3``, ``theta_gamma = 3``, five
iterations). They were tuned for the reference implementation used through pydensecrf, which divides
each Gaussian kernel by the square root of the two pixels' degrees, ``k_ij / sqrt(d_i d_j)`` with
``d_i = sum_{j != i} k_ij`` (pydensecrf's default, ``NORMALIZE_SYMMETRIC``; its permutohedral lattice
approximates these sums and also counts the pixel itself, so its numbers differ a little from these,
which follow the formula above and leave ``j = i`` out). A message is then about a
weighted *average* of the neighbours' ``Q`` times the weight. Inside a region, where neighbouring pixels
have about the same degree, the neighbours can then shift a pixel's log-odds by about
``w_app + w_smooth`` nats (13 with the defaults, a probability ratio of about 440 000), and a unary
margin well beyond that is kept; near the image border, where the degrees drop, the pull can be
somewhat larger. Without the normalisation (``normalize=False``, the formula above taken literally) a
message is a *sum* over hundreds or thousands of neighbours: with the default weights the neighbours can
outvote any unary (the largest, at the probability floor, is 18.4 nats), and how strongly they do
grows with the window. The normalised kernel is still symmetric, so it is the same
model with ``k_ij`` replaced by ``k_ij / sqrt(d_i d_j)`` (each of the two Gaussians normalised by its own
degrees); ``normalize=True`` is the default.

Exact and windowed message passing
----------------------------------
The paper computes the messages of all pixel pairs in linear time with a permutohedral lattice. This
module keeps to plain PyTorch:

* ``window=None``: the exact sum over all pairs, from an ``(HW, HW)`` kernel matrix; memory grows as
  ``(HW)^2``, so it is refused above :data:`EXACT_MAX_PIXELS` pixels (a 64 x 64 image). It is the
  reference the windowed version is tested against.
* ``window=r``: only pairs with ``|dy| <= r`` and ``|dx| <= r``, by a loop over the ``(2r+1)^2 - 1``
  offsets (half of them, the other half by symmetry). Memory: the kernel weights of every offset,
  about ``H W ((2r+1)^2 - 1) / 2`` floats (29 MB at 256 x 256 with ``r = 7``), plus a few ``(C, H, W)``
  tensors. With ``theta_gamma = 3`` the smoothness term is essentially complete within ``r = 7`` or
  more; the appearance term (``theta_alpha = 80``) is cut off, so the window limits how far colour
  evidence travels in one iteration. It is an approximation of the dense CRF, not the same model, and
  the window must be wider than the prediction's boundary errors: a boundary two pixels off the colour
  edge is not moved with ``r = 1``. On 256 x 256 with ``C = 3`` and one CPU thread, five iterations
  take about 0.1 s with ``r = 7`` and 0.2 s with ``r = 10``.

Conventions
-----------
* ``probs``: ``(C, H, W)`` floating point class probabilities (torch tensor or NumPy array), each
  pixel's ``C`` values non-negative and summing to 1 (e.g. ``logits.softmax(0)`` of one image).
* ``image``: ``(H, W, 3)`` RGB or ``(H, W)`` grey, ``uint8`` (NumPy array or torch tensor), values on
  the 0-255 scale the colour bandwidth ``theta_beta`` is given in. A grey image is one colour channel.
* Results are ``float32`` tensors on the device of ``probs``; no gradients are tracked. The work is
  done in float32, or in float64 when ``probs`` is float64: mean field amplifies rounding errors over
  the iterations (to about 1e-5 in ``Q`` after five in float32), which only a reference comparison
  needs to avoid.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

from .validation import check_int

__all__ = [
    "EXACT_MAX_PIXELS",
    "PROB_FLOOR",
    "crf_labels",
    "crf_messages",
    "dense_crf",
    "mean_field_update",
    "unary_from_probs",
]

#: Largest image (in pixels) for exact message passing (``window=None``): its (HW, HW) kernel takes 64 MB
#: in float32 (twice that in float64), and a few such matrices are alive while it is built.
EXACT_MAX_PIXELS = 4096

#: Probabilities are clamped to at least this before the logarithm, so a zero gives a finite unary (18.4).
PROB_FLOOR = 1e-8

_SUM_TOLERANCE = 1e-3  # how far a pixel's probabilities may sum from 1


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------

def _as_float_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch tensor or NumPy array, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"`{name}` must be floating point, got dtype {x.dtype}")
    if x.ndim != 3:
        raise ValueError(f"`{name}` must be (C, H, W), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(x.shape)})")
    return x


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 for float64 input, float32 otherwise: the precision the CRF is computed in."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check_probs(probs) -> torch.Tensor:
    """``probs`` as a ``(C, H, W)`` tensor in its working dtype, after checking that it is a distribution per pixel."""
    probs = _as_float_tensor(probs, "probs")
    probs = probs.to(_work_dtype(probs))
    if not bool(torch.isfinite(probs).all()):
        raise ValueError("`probs` holds NaN or infinite values")
    low = float(probs.min())
    if low < 0:
        raise ValueError(f"`probs` must be non-negative probabilities, got a minimum of {low:.4g}")
    sums = probs.sum(0)
    worst = float((sums - 1).abs().max())
    if worst > _SUM_TOLERANCE:
        hint = (" (one channel: for a binary model pass the two classes, torch.stack([1 - p, p]))"
                if probs.shape[0] == 1 else " (pass softmax(logits, dim=0), not logits)")
        raise ValueError(f"`probs` must sum to 1 over the class dimension (dim 0) at every pixel; the sums "
                         f"lie in [{float(sums.min()):.4g}, {float(sums.max()):.4g}]{hint}")
    return probs


def _check_image(image, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """``image`` as a ``(K, H, W)`` tensor of 0-255 colours (``K`` = 3, or 1 for grey), device and dtype of ``like``."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"`image` must be a uint8 NumPy array or torch tensor, got {type(image).__name__}")
    if image.dtype != torch.uint8:
        raise ValueError(f"`image` must be uint8 with colours on the 0-255 scale that `theta_beta` is "
                         f"given in, got dtype {image.dtype}; convert a float image in [0, 1] with "
                         "(image * 255).round() cast to uint8")
    if image.ndim == 2:
        image = image.unsqueeze(-1)
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"`image` must be (H, W, 3) RGB or (H, W) grey, got shape {tuple(image.shape)}"
                         + (" (channels first? pass (H, W, 3))" if image.ndim == 3 and image.shape[0] == 3
                            else ""))
    if tuple(image.shape[:2]) != (height, width):
        raise ValueError(f"`image` is {image.shape[0]} x {image.shape[1]} pixels but `probs` is {height} x "
                         f"{width}: they must cover the same pixels")
    return image.to(device=like.device, dtype=like.dtype).permute(2, 0, 1).contiguous()


def _check_positive(name: str, value) -> float:
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number (a bandwidth), got {value!r}")
    return float(value)


def _check_weight(name: str, value) -> float:
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number (a kernel weight), got {value!r}")
    return float(value)


def _check_kernel_args(w_app, theta_alpha, theta_beta, w_smooth, theta_gamma, window) -> dict:
    return {
        "w_app": _check_weight("w_app", w_app),
        "theta_alpha": _check_positive("theta_alpha", theta_alpha),
        "theta_beta": _check_positive("theta_beta", theta_beta),
        "w_smooth": _check_weight("w_smooth", w_smooth),
        "theta_gamma": _check_positive("theta_gamma", theta_gamma),
        "window": check_int("window", window, 1, none_ok=True, note=" (pixels)"),
    }


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False, got {value!r}")
    return bool(value)


# --------------------------------------------------------------------------------------------------
# The kernel: built once per image, applied once per iteration
# --------------------------------------------------------------------------------------------------

def _overlap(dy: int, dx: int, height: int, width: int):
    """Slices of the pixels ``i`` whose neighbour ``j = i + (dy, dx)`` lies in the image, and of those ``j``."""
    i = (slice(0, height - dy), slice(max(0, -dx), width - max(0, dx)))
    j = (slice(dy, height), slice(max(0, dx), width - max(0, -dx)))
    return i, j


def _inverse_sqrt_degree(degree: torch.Tensor) -> torch.Tensor:
    # A pixel with no neighbour of any weight (d = 0) has only zero weights: 0 * anything finite is 0.
    return degree.clamp_min(torch.finfo(degree.dtype).tiny).rsqrt()


class _ExactKernel:
    """All pairs: the ``(N, N)`` matrix of the (normalised, weighted) kernel with a zero diagonal."""

    def __init__(self, colours: torch.Tensor, w_app, theta_alpha, theta_beta, w_smooth, theta_gamma,
                 normalize: bool):
        k, height, width = colours.shape
        n = height * width
        like = {"device": colours.device, "dtype": colours.dtype}
        rows, cols = torch.meshgrid(torch.arange(height, **like), torch.arange(width, **like), indexing="ij")
        positions = torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)  # (N, 2)
        matrix = torch.zeros(n, n, **like)
        terms = []
        if w_app > 0:
            features = torch.cat([positions / theta_alpha, colours.reshape(k, n).T / theta_beta], dim=1)
            terms.append((w_app, features))
        if w_smooth > 0:
            terms.append((w_smooth, positions / theta_gamma))
        for weight, features in terms:
            # exp(-|f_i - f_j|^2 / 2), summed feature by feature from the differences themselves
            # (|a|^2 + |b|^2 - 2ab would lose the small distances that matter most).
            gaussian = torch.zeros(n, n, **like)
            for column in features.T:
                gaussian.add_((column.view(-1, 1) - column.view(1, -1)).square_())
            gaussian.mul_(-0.5).exp_().fill_diagonal_(0.0)
            if normalize:
                scale = _inverse_sqrt_degree(gaussian.sum(1))
                gaussian.mul_(scale.view(-1, 1)).mul_(scale.view(1, -1))
            matrix.add_(gaussian, alpha=weight)
        self.matrix = matrix

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        c, height, width = q.shape
        return (q.reshape(c, -1) @ self.matrix).reshape(c, height, width)  # the matrix is symmetric


class _WindowedKernel:
    """Pairs within ``window`` pixels (rows and columns): one weight map per offset of the upper half."""

    def __init__(self, colours: torch.Tensor, w_app, theta_alpha, theta_beta, w_smooth, theta_gamma,
                 normalize: bool, window: int):
        _, height, width = colours.shape
        self.height, self.width = height, width
        reach_y, reach_x = min(window, height - 1), min(window, width - 1)  # farther offsets pair nothing
        # Each unordered pair once: offsets (dy, dx) with dy > 0, or dy == 0 and dx > 0.
        self.offsets = [(dy, dx) for dy in range(reach_y + 1) for dx in range(-reach_x, reach_x + 1)
                        if dy > 0 or dx > 0]
        scaled = colours / (math.sqrt(2.0) * theta_beta)  # |I_i - I_j|^2 / (2 theta_beta^2) = |scaled diff|^2
        like = {"device": colours.device, "dtype": colours.dtype}
        appearance, smooth = [], []
        degree_app = torch.zeros(height, width, **like)
        degree_smooth = torch.zeros(height, width, **like)
        for dy, dx in self.offsets:
            i, j = _overlap(dy, dx, height, width)
            d2 = float(dy * dy + dx * dx)
            if w_app > 0:
                diff = scaled[:, i[0], i[1]] - scaled[:, j[0], j[1]]
                a = diff.square_().sum(0).add_(d2 / (2 * theta_alpha ** 2)).neg_().exp_()
                appearance.append(a)
                degree_app[i] += a
                degree_app[j] += a
            s = math.exp(-d2 / (2 * theta_gamma ** 2))
            smooth.append(s)
            if w_smooth > 0:
                degree_smooth[i] += s
                degree_smooth[j] += s
        if normalize:
            norm_app, norm_smooth = _inverse_sqrt_degree(degree_app), _inverse_sqrt_degree(degree_smooth)
        self.weights = []
        for index, (dy, dx) in enumerate(self.offsets):
            i, j = _overlap(dy, dx, height, width)
            shape = (height - dy, width - abs(dx))
            if w_smooth > 0 and normalize:
                weight = (norm_smooth[i] * norm_smooth[j]).mul_(w_smooth * smooth[index])
            else:
                weight = torch.full(shape, w_smooth * smooth[index], **like)
            if w_app > 0:
                a = appearance[index]
                if normalize:
                    a.mul_(norm_app[i]).mul_(norm_app[j])
                weight.add_(a, alpha=w_app)
                appearance[index] = None  # its memory goes into `weight`
            self.weights.append(weight)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        messages = torch.zeros_like(q)
        for (dy, dx), weight in zip(self.offsets, self.weights):
            i, j = _overlap(dy, dx, self.height, self.width)
            messages[:, i[0], i[1]].addcmul_(weight, q[:, j[0], j[1]])  # i hears from j = i + (dy, dx)
            messages[:, j[0], j[1]].addcmul_(weight, q[:, i[0], i[1]])  # and j from i: k is symmetric
        return messages


def _build_kernel(colours, params: dict, normalize: bool):
    window = params["window"]
    args = (colours, params["w_app"], params["theta_alpha"], params["theta_beta"], params["w_smooth"],
            params["theta_gamma"], _check_bool("normalize", normalize))
    if window is None:
        _, height, width = colours.shape
        if height * width > EXACT_MAX_PIXELS:
            megabytes = (height * width) ** 2 * 4 / 2**20
            raise ValueError(f"exact message passing (`window=None`) builds an (HW, HW) kernel matrix: "
                             f"{height} x {width} = {height * width} pixels would take {megabytes:.0f} MB "
                             f"(the limit is {EXACT_MAX_PIXELS} pixels); pass `window=r` (e.g. window=7) to "
                             "pair only pixels within r rows and columns of each other")
        return _ExactKernel(*args)
    return _WindowedKernel(*args, window=window)


# --------------------------------------------------------------------------------------------------
# The pieces of one iteration, and the whole inference
# --------------------------------------------------------------------------------------------------

def unary_from_probs(probs) -> torch.Tensor:
    """The unary potential ``psi_u = -log P``: the cost the network puts on each label of each pixel.

    Parameters
    ----------
    probs : (C, H, W) float tensor or ndarray
        Class probabilities, non-negative, summing to 1 over dim 0 at every pixel.

    Returns
    -------
    (C, H, W) float32 tensor
        ``-log(max(probs, PROB_FLOOR))``, in ``[0, 18.42]``: 0 for a certain label, large for an
        impossible one. The floor keeps a probability of exactly 0 finite, so the CRF can still, in
        principle, choose that label.

    Raises
    ------
    ValueError
        If ``probs`` is not ``(C, H, W)`` floating point, holds NaN, infinite or negative values, or does
        not sum to 1 over the classes.
    """
    probs = _check_probs(probs)
    return -probs.clamp_min(PROB_FLOOR).log().float()


def mean_field_update(unary: torch.Tensor, messages: torch.Tensor) -> torch.Tensor:
    """One mean-field update with the Potts compatibility: ``Q = softmax(-unary - pairwise)`` per pixel.

    With ``mu(l, l') = [l != l']`` the pairwise cost of label ``l`` at pixel ``i`` is
    ``sum_{l' != l} messages_i(l')``: the kernel-weighted belief of the neighbours in every *other*
    label. It equals ``messages_i.sum() - messages_i(l)``; the sum is the same for every label of the
    pixel and cancels in the softmax, which is why implementations write the update as
    ``softmax(-unary + messages)``. Both give the same ``Q``; this function spells out the first.

    Parameters
    ----------
    unary : (C, H, W) float tensor
        ``psi_u``, e.g. from :func:`unary_from_probs`.
    messages : (C, H, W) float tensor
        ``messages[l, i] = sum_{j != i} k(f_i, f_j) Q_j(l)`` for the current ``Q``, e.g. from
        :func:`crf_messages`.

    Returns
    -------
    (C, H, W) float tensor
        The updated marginals: non-negative, summing to 1 over dim 0 at every pixel.

    Raises
    ------
    ValueError
        If either argument is not a 3-D floating point tensor, or their shapes differ.
    """
    for name, x in (("unary", unary), ("messages", messages)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 3:
            raise ValueError(f"`{name}` must be a (C, H, W) floating point tensor, got "
                             + (f"shape {tuple(x.shape)} and dtype {x.dtype}" if isinstance(x, torch.Tensor)
                                else type(x).__name__))
    if unary.shape != messages.shape:
        raise ValueError(f"`unary` (shape {tuple(unary.shape)}) and `messages` (shape {tuple(messages.shape)}) "
                         "must have the same shape")
    pairwise = messages.sum(0, keepdim=True) - messages  # sum over l' != l of messages(l')
    return torch.softmax(-unary - pairwise, dim=0)


@torch.no_grad()
def crf_messages(q, image, *, w_app: float = 10.0, theta_alpha: float = 80.0, theta_beta: float = 13.0,
                 w_smooth: float = 3.0, theta_gamma: float = 3.0, window: int | None = None,
                 normalize: bool = True) -> torch.Tensor:
    """The message-passing step: ``messages_i(l) = sum_{j != i} k(f_i, f_j) Q_j(l)``.

    Each pixel collects its neighbours' current beliefs, weighted by how close and how alike in colour
    they are. :func:`dense_crf` builds the kernel once and reuses it every iteration; this function
    builds it for one call, so that a single step can be inspected.

    Parameters
    ----------
    q : (C, H, W) float tensor or ndarray
        Current marginals ``Q`` (any finite values are accepted; the messages are linear in ``q``).
    image : (H, W, 3) or (H, W) uint8 ndarray or tensor
        Colours on the 0-255 scale.
    w_app, theta_alpha, theta_beta, w_smooth, theta_gamma, window, normalize
        As in :func:`dense_crf`.

    Returns
    -------
    (C, H, W) float32 tensor
        The messages, on the device of ``q`` (computed in float64 for a float64 ``q``).

    Raises
    ------
    ValueError
        As :func:`dense_crf`, for ``q`` not ``(C, H, W)`` floating point and finite.
    """
    q = _as_float_tensor(q, "q")
    if not bool(torch.isfinite(q).all()):
        raise ValueError("`q` holds NaN or infinite values")
    q = q.to(_work_dtype(q))
    params = _check_kernel_args(w_app, theta_alpha, theta_beta, w_smooth, theta_gamma, window)
    colours = _check_image(image, q.shape[1], q.shape[2], q)
    return _build_kernel(colours, params, normalize)(q).float()


@torch.no_grad()
def dense_crf(probs, image, *, iterations: int = 5, w_app: float = 10.0, theta_alpha: float = 80.0,
              theta_beta: float = 13.0, w_smooth: float = 3.0, theta_gamma: float = 3.0,
              window: int | None = None, normalize: bool = True) -> torch.Tensor:
    """Refine class probabilities with a fully connected CRF (Krähenbühl and Koltun, 2011).

    ``Q`` starts at ``softmax(-unary)`` (the input probabilities, up to the floor of
    :func:`unary_from_probs`) and takes ``iterations`` mean-field updates, each a message-passing step
    (:func:`crf_messages`) and a :func:`mean_field_update`. Pixels that the network is unsure of take
    the label of the pixels near them and alike in colour; confident pixels keep theirs. The default
    parameters are the values popularised by the DeepLab-v1/v2 and pydensecrf examples.

    Parameters
    ----------
    probs : (C, H, W) float tensor or ndarray
        Class probabilities of one image: non-negative, summing to 1 over dim 0 at every pixel (within
        1e-3). Any floating dtype; the work is done on ``probs``' device, in float64 for float64
        ``probs`` and in float32 otherwise.
    image : (H, W, 3) or (H, W) uint8 ndarray or tensor
        The image the probabilities belong to, RGB colours on the 0-255 scale (the scale ``theta_beta``
        is given in). A grey image is used as one colour channel.
    iterations : int
        Number of mean-field updates, >= 1. Five usually reach a near fixed point.
    w_app : float
        Weight of the appearance (bilateral) kernel, >= 0.
    theta_alpha : float
        Its spatial bandwidth in pixels, > 0: how far colour evidence reaches.
    theta_beta : float
        Its colour bandwidth on the 0-255 scale, > 0: how alike two colours must be to count as one.
    w_smooth : float
        Weight of the smoothness kernel, >= 0.
    theta_gamma : float
        Its spatial bandwidth in pixels, > 0.
    window : int or None
        ``None``: every pair of pixels (exact, ``(HW)^2`` memory; at most :data:`EXACT_MAX_PIXELS`
        pixels). An int ``r >= 1``: only pairs within ``r`` rows and ``r`` columns of each other, in
        time and memory linear in the number of pixels and in ``(2r+1)^2``; 7 to 10 suits a
        256 x 256 image. It must be wider than the prediction's boundary errors (see the module's
        notes on what the window cuts off).
    normalize : bool
        Divide each Gaussian kernel by ``sqrt(d_i d_j)``, ``d_i = sum_{j != i} k_ij``, as the reference
        implementation does by default; the default weights assume it. ``False`` uses the energy's
        kernel as written, where a message sums rather than averages the neighbours.

    Returns
    -------
    (C, H, W) float32 tensor
        The refined marginals ``Q``: non-negative, summing to 1 over dim 0 at every pixel, on ``probs``'
        device. ``Q.argmax(0)`` is the refined labelling (:func:`crf_labels`).

    Raises
    ------
    ValueError
        If ``probs`` is not ``(C, H, W)`` floating point or not a probability distribution per pixel
        (NaN, negative, not summing to 1); if ``image`` is not uint8, not (H, W, 3) or (H, W), or not
        the size of ``probs``; if ``iterations`` or ``window`` is not an int >= 1; if a weight is
        negative or a bandwidth not positive; if ``normalize`` is not a bool; if ``window=None`` on an
        image of more than :data:`EXACT_MAX_PIXELS` pixels.

    Examples
    --------
    >>> probs = torch.tensor([0.9, 0.1]).view(2, 1, 1).repeat(1, 5, 5)
    >>> probs[:, 2, 2] = torch.tensor([0.4, 0.6])          # one weak, isolated pixel of class 1
    >>> image = np.full((5, 5, 3), 128, dtype=np.uint8)
    >>> dense_crf(probs, image).argmax(0)[2, 2].item()      # its neighbours win it over
    0
    """
    probs = _check_probs(probs)
    iterations = check_int("iterations", iterations, 1, note=" (mean-field updates)")
    params = _check_kernel_args(w_app, theta_alpha, theta_beta, w_smooth, theta_gamma, window)
    colours = _check_image(image, probs.shape[1], probs.shape[2], probs)
    kernel = _build_kernel(colours, params, normalize)
    unary = -probs.clamp_min(PROB_FLOOR).log()
    q = torch.softmax(-unary, dim=0)
    for _ in range(iterations):
        q = mean_field_update(unary, kernel(q))
    return q.float()


def crf_labels(probs, image, **kwargs) -> torch.Tensor:
    """The refined labelling: ``dense_crf(probs, image, **kwargs).argmax(0)``.

    Parameters
    ----------
    probs, image, **kwargs
        As in :func:`dense_crf`.

    Returns
    -------
    (H, W) int64 tensor
        Class ids in ``[0, C)``, on ``probs``' device.

    Raises
    ------
    ValueError
        As :func:`dense_crf`.
    """
    return dense_crf(probs, image, **kwargs).argmax(0)
