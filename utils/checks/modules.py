"""Helpers of the checks that compare a learner's ``nn.Module`` with the course's: layers, weights, statistics."""
from __future__ import annotations

__all__ = ["copy_reference_weights", "layers_of", "randomise_batch_norms"]


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
