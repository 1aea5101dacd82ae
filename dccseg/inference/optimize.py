"""A faster inference copy of a 2D network: BatchNorm folded into the preceding conv, channels-last layout.

Folding is only applied to the unambiguous pairs (a Conv2d directly followed by a BatchNorm2d in
a Sequential, or sibling ``convN``/``bnN`` modules) and the copy is checked against the original
on a random batch; if they disagree, the original layout is used unfolded.
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn

FOLD_TOLERANCE = 1e-3
_CACHE: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight = nn.Parameter(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach())


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of ``net`` (eval mode) with conv -> BatchNorm pairs folded into the conv."""
    net = copy.deepcopy(net).eval()
    for module in list(net.modules()):
        children = dict(module.named_children())
        if isinstance(module, nn.Sequential):
            pairs = [(a, b, name_b) for (_, a), (name_b, b) in zip(children.items(), list(children.items())[1:])]
        else:
            pairs = [(child, children.get("bn" + name[4:]), "bn" + name[4:]) for name, child in children.items() if name.startswith("conv")]
        for conv, bn, bn_name in pairs:
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats and bn.affine:
                _fold_pair(conv, bn)
                setattr(module, bn_name, nn.Identity())
    return net


def inference_network(net: nn.Module, in_channels: int, size: int, device: torch.device) -> nn.Module:
    """The folded channels-last copy of a 2D ``net`` on ``device`` (cached per network), or ``net`` itself."""
    cached = _CACHE.get(net)
    if cached is not None and next(cached.parameters()).device == device:
        return cached
    net.eval()
    folded = fold_batchnorm(net).to(device=device, memory_format=torch.channels_last)
    probe = torch.randn(2, in_channels, size, size, device=device, generator=None)
    with torch.inference_mode():
        original = net.to(device)(probe)
        fast = folded(probe.contiguous(memory_format=torch.channels_last))
    scale = original.abs().max().clamp(min=1.0)
    chosen = folded if torch.allclose(original, fast, atol=FOLD_TOLERANCE * float(scale), rtol=0) else net
    _CACHE[net] = chosen
    return chosen
