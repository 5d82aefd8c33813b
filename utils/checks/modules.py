"""Helpers of the checks that compare a learner's ``nn.Module`` with the course's: layers, weights, statistics."""
from __future__ import annotations

__all__ = ["copy_reference_weights", "layers_of", "randomise_batch_norms", "run_with_reference_weights"]


def layers_of(module, kind) -> list:
    """The sub-modules of ``module`` whose type is exactly ``kind``, in registration order."""
    return [m for m in module.modules() if type(m) is kind]


def copy_reference_weights(reference, module) -> bool:
    """Copy ``reference``'s parameters and buffers into ``module``; return False when they do not line up.

    First in registration order, as ``module.load_state_dict(dict(zip(module.state_dict(),
    reference.state_dict().values())))`` does, when every shape matches; otherwise layer type by layer type
    (transposed convolutions, convolutions, batch norms, each in registration order), so that a module which
    registers its layers in another order than it uses them is still compared fairly.
    """
    import torch
    from torch import nn

    ours, theirs = module.state_dict(), reference.state_dict()
    if len(ours) == len(theirs) and all(a.shape == b.shape for a, b in zip(ours.values(), theirs.values())):
        module.load_state_dict(dict(zip(ours, theirs.values())))
        return True
    pairs, covered = [], 0
    for kind in (nn.ConvTranspose2d, nn.Conv2d, nn.BatchNorm2d):
        mine, ref = layers_of(module, kind), layers_of(reference, kind)
        if len(mine) != len(ref):
            return False
        for m, r in zip(mine, ref):
            ms, rs = m.state_dict(), r.state_dict()
            if ms.keys() != rs.keys() or any(ms[k].shape != rs[k].shape for k in ms):
                return False
            pairs.append((m, rs))
            covered += len(ms)
    if covered != len(ours):  # parameters outside these layers: nothing to copy them from
        return False
    with torch.no_grad():
        for m, rs in pairs:
            m.load_state_dict(rs)
    return True


def randomise_batch_norms(module) -> None:
    """Give every BatchNorm2d non-trivial statistics and affine parameters, so that eval mode is not identity."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in layers_of(module, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.rand(bn.num_features, generator=g) - 0.5)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.copy_(torch.rand(bn.num_features, generator=g) - 0.5)


def run_with_reference_weights(module, reference, inputs, whose: str, layers: str, caller: str):
    """Give ``module`` the weights (and BatchNorm statistics) of ``reference`` and run both on ``inputs``.

    ``reference``'s BatchNorms first get non-trivial statistics (:func:`randomise_batch_norms`); both run in
    eval mode without gradients, and the learner's module through :func:`utils.checks.core.call_answer`.

    Parameters
    ----------
    whose : str
        How the messages name the reference's weights ("the reference's", "the course's").
    layers : str
        The layers to use, said when the weights cannot be copied ("one nn.Conv2d and one nn.BatchNorm2d").
    caller : str
        What is said to have raised ("forward", "the module").

    Returns
    -------
    (got, want, problem)
        The two outputs, or ``problem``: the message when the weights cannot be copied, the learner's module
        raised, or it returned something other than a tensor of the reference's shape (``None`` otherwise).
    """
    import torch

    from .core import call_answer

    randomise_batch_norms(reference)
    reference.eval()
    if not copy_reference_weights(reference, module):
        return None, None, (f"the right number of parameters, but {whose} weights cannot be copied into yours "
                            f"layer by layer: use {layers}")
    module.eval()
    with torch.no_grad():
        got, error = call_answer(module, *inputs)
        want = reference(*inputs)
    if error:
        return None, None, f"with {whose} weights, {caller} raised {error}"
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return None, None, f"with {whose} weights, {caller} no longer returned a {tuple(want.shape)} tensor"
    return got, want, None

