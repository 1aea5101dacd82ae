"""Coarse 3D network: shapes after padding, padding helpers, config round trip, weight budget."""

import json

import pytest
import torch

from dccseg.errors import DccsegError
from dccseg.networks import CoarseConfig, RefineConfig, build_coarse_net, build_refine_net, crop_to_shape, pad_to_multiple


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run many small ops: a second thread only adds synchronisation waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "cfg",
    [CoarseConfig.tiny(), CoarseConfig(architecture="segresnet", channels=(8, 16, 32)),
     CoarseConfig(architecture="dynunet", channels=(4, 8, 16), num_res_units=1)],
)
def test_coarse_net_on_a_size_that_is_not_a_multiple(cfg):
    net = build_coarse_net(cfg).eval()
    x = torch.randn(1, 1, 9, 13, 10)
    padded = pad_to_multiple(x, cfg.size_divisor, value=-1.0)
    assert padded.shape[-3:] == (12, 16, 12)
    with torch.no_grad():
        logits = crop_to_shape(net(padded), x.shape[-3:])
    assert logits.shape == (1, 14, 9, 13, 10)
    assert torch.isfinite(logits).all()


def test_pad_to_multiple_keeps_voxels_and_fills_the_high_end():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 1, 2, 3, 5)
    padded = pad_to_multiple(x, 4, value=-7.0)
    assert padded.shape == (1, 1, 4, 4, 8)
    assert torch.equal(crop_to_shape(padded, (2, 3, 5)), x)
    assert (padded[..., 2:, :, :] == -7).all() and (padded[..., 3:, :] == -7).all() and (padded[..., 5:] == -7).all()
    assert pad_to_multiple(padded, 4) is padded
    with pytest.raises(DccsegError):
        pad_to_multiple(torch.zeros(1, 4, 4, 4), 4)


def test_size_divisor_counts_downsamplings():
    assert CoarseConfig().size_divisor == 16
    assert CoarseConfig.tiny().size_divisor == 4


def test_invalid_coarse_configs_are_refused():
    with pytest.raises(DccsegError, match="segresnet channels"):
        CoarseConfig(architecture="segresnet", channels=(8, 24, 32))
    for bad in ({"architecture": "vnet"}, {"channels": (16,)}, {"dropout": 1.5}, {"out_channels": 1}):
        with pytest.raises(DccsegError):
            CoarseConfig(**bad)


@pytest.mark.parametrize("cfg", [CoarseConfig(), CoarseConfig.tiny(), CoarseConfig("dynunet", (8, 16), 2, 0.1)])
def test_coarse_config_json_round_trip(cfg):
    assert CoarseConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_default_networks_fit_the_weight_budget():
    params = sum(p.numel() for net in (build_coarse_net(CoarseConfig()), build_refine_net(RefineConfig()))
                 for p in net.parameters())
    assert params * 4 / 2**20 <= 30
