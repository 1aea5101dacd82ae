"""The inference copy of the refine network: BatchNorm folding keeps the outputs."""

import torch
from torch import nn

from dccseg.inference.optimize import fold_batchnorm, inference_network
from dccseg.networks import RefineConfig, build_refine_net


def _net_with_random_statistics(config: RefineConfig) -> nn.Module:
    torch.manual_seed(0)
    net = build_refine_net(config).eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return net


def test_folding_removes_batchnorm_and_keeps_the_logits():
    net = _net_with_random_statistics(RefineConfig.tiny())
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules()), "the original is left untouched"
    x = torch.randn(3, 2, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(net(x), folded(x), atol=1e-4)


def test_inference_network_is_cached_and_channels_last():
    net = _net_with_random_statistics(RefineConfig.tiny())
    fast = inference_network(net, 2, 32, torch.device("cpu"))
    assert fast is inference_network(net, 2, 32, torch.device("cpu"))
    assert fast is not net
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
