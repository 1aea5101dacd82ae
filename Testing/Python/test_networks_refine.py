"""Refine network: ResNet encoder strides, DeepLab heads, input building, encoder loading, pretraining head."""

import json

import pytest
import torch

from dccseg.errors import DccsegError
from dccseg.networks import (
    PretrainNet,
    ProjectionHead,
    RefineConfig,
    ResNetEncoder,
    build_encoder,
    build_refine_net,
    load_encoder_state,
    load_refine_state,
    make_refine_input,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run many small ops: a second thread only adds synchronisation waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**kw) -> RefineConfig:
    return RefineConfig(**{**RefineConfig.tiny().to_dict(), **kw})


@pytest.mark.parametrize("depth", [18, 34, 50])
@pytest.mark.parametrize(
    "stem,output_stride,low_stride", [("standard", 8, 4), ("standard", 16, 4), ("cifar", 8, 1)]
)
def test_encoder_feature_sizes_follow_stem_and_output_stride(depth, stem, output_stride, low_stride):
    enc = ResNetEncoder(depth, stem, output_stride, in_channels=2, width=4).eval()
    with torch.no_grad():
        f = enc(torch.randn(2, 2, 32, 32))
    assert f["low"].shape == (2, enc.out_channels[0], 32 // low_stride, 32 // low_stride)
    assert f["high"].shape == (2, enc.out_channels[1], 32 // output_stride, 32 // output_stride)
    expansion = 4 if depth == 50 else 1
    assert enc.out_channels == (4 * expansion, 32 * expansion)


def test_cifar_stem_cannot_reach_output_stride_16():
    with pytest.raises(DccsegError, match="natural output stride is 8"):
        RefineConfig(stem="cifar", output_stride=16)


def test_invalid_configs_are_refused():
    for bad in ({"depth": 101}, {"in_channels": 3}, {"decoder": "unet"}, {"stem": "deep"}, {"aspp_rates": (1, 2)}, {"sharpen_channels": -1}):
        with pytest.raises(DccsegError):
            tiny(**bad)


def test_aspp_rates_scale_with_output_stride():
    assert tiny(output_stride=8).rates == (6, 12, 18)
    assert tiny(output_stride=16).rates == (3, 6, 9)
    assert tiny(aspp_rates=(2, 4, 6)).rates == (2, 4, 6)


@pytest.mark.parametrize(
    "decoder,in_channels,stem,output_stride",
    [("deeplabv3plus", 2, "standard", 16), ("deeplabv3plus", 6, "cifar", 8), ("aspp_only", 2, "cifar", 8),
     ("aspp_only", 6, "standard", 16), ("deeplabv3plus", 2, "standard", 8)],
)
def test_refine_net_maps_patches_to_two_class_logits(decoder, in_channels, stem, output_stride):
    cfg = tiny(decoder=decoder, in_channels=in_channels, stem=stem, output_stride=output_stride)
    net = build_refine_net(cfg).eval()
    with torch.no_grad():
        y = net(torch.randn(3, in_channels, 32, 32))
    assert y.shape == (3, 2, 32, 32)
    assert torch.isfinite(y).all()


def test_batch_size_one_trains():
    net = build_refine_net(tiny()).train()
    y = net(torch.randn(1, 2, 32, 32))
    y[:, 1].mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert net.decoder.aspp.branches[-1].conv.weight.grad.abs().sum() > 0


def test_the_sharpen_head_starts_as_the_network_without_it_and_then_learns():
    plain = build_refine_net(tiny()).eval()
    sharp = build_refine_net(tiny(sharpen_channels=4))
    load_refine_state(sharp, plain.state_dict())  # an older model's weights: the head starts with no correction
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(sharp.eval()(x), plain(x))
    sharp.train()(x)[:, 1].mean().backward()
    assert sharp.sharpen.correction.weight.grad.abs().sum() > 0, "the head trains from its zero start"
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_refine_state(build_refine_net(tiny()), sharp.state_dict())  # only a missing head is filled in


def test_make_refine_input_stacks_image_and_mask_copies():
    image = torch.linspace(-1, 1, 2 * 4 * 4).reshape(2, 4, 4)
    mask = (image > 0).to(torch.uint8)
    two = make_refine_input(image, mask, 2)
    six = make_refine_input(image, mask, 6)
    assert two.shape == (2, 2, 4, 4) and six.shape == (2, 6, 4, 4)
    assert torch.equal(two[:, 0], image) and torch.equal(two[:, 1], mask.float())
    for c in range(3):
        assert torch.equal(six[:, c], image) and torch.equal(six[:, 3 + c], mask.float())
    with pytest.raises(DccsegError):
        make_refine_input(image, mask[:, :3], 2)
    with pytest.raises(DccsegError):
        make_refine_input(image, mask, 4)


def test_six_channels_equal_two_channels_with_tied_first_layer():
    six = build_encoder(tiny(in_channels=6)).eval()
    two = build_encoder(tiny(in_channels=2)).eval()
    state = six.state_dict()
    w = state["stem.0.weight"]
    state["stem.0.weight"] = torch.stack([w[:, :3].sum(1), w[:, 3:].sum(1)], dim=1)
    two.load_state_dict(state)
    image, mask = torch.rand(2, 16, 16) * 2 - 1, (torch.rand(2, 16, 16) > 0.5).float()
    with torch.no_grad():
        a = six(make_refine_input(image, mask, 6))["high"]
        b = two(make_refine_input(image, mask, 2))["high"]
    assert (a - b).abs().max() < 1e-5 * a.abs().max()


def test_pretrained_encoder_loads_into_refine_net():
    cfg = tiny()
    pretrain = PretrainNet(build_encoder(cfg))
    with torch.no_grad():
        for p in pretrain.encoder.parameters():
            p.add_(1.0)
    net = build_refine_net(cfg)
    load_encoder_state(net, pretrain.state_dict())
    for k, v in pretrain.encoder.state_dict().items():
        assert torch.equal(net.encoder.state_dict()[k], v)
    other_os = build_refine_net(tiny(output_stride=16))
    load_encoder_state(other_os, pretrain.encoder.state_dict())


@pytest.mark.parametrize("change,word", [({"in_channels": 6}, "stem.0.weight"), ({"depth": 34}, "missing"),
                                         ({"stem": "cifar"}, "stem.0.weight"), ({"width": 8}, "shape")])
def test_mismatched_encoder_gives_clear_error(change, word):
    state = build_encoder(tiny()).state_dict()
    net = build_refine_net(tiny(**change))
    with pytest.raises(DccsegError, match=word) as err:
        load_encoder_state(net, state)
    assert "\n" not in str(err.value) and "encoder's own config" in str(err.value)


def test_projection_head_gives_unit_embeddings():
    enc = build_encoder(tiny())
    net = PretrainNet(enc).train()
    z = net(torch.randn(5, 2, 16, 16))
    assert z.shape == (5, 256)
    assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-6)
    assert net.head.mlp[0].out_features == enc.out_channels[1]
    assert net.pooled_features(torch.randn(2, 2, 16, 16)).shape == (2, enc.out_channels[1])
    head = ProjectionHead(16, hidden=8, out_dim=4)
    assert torch.allclose(head(torch.randn(3, 16)).norm(dim=1), torch.ones(3), atol=1e-6)


def test_init_is_kaiming_fan_out_and_unit_batchnorm():
    torch.manual_seed(0)
    enc = ResNetEncoder(18, "standard", 16, in_channels=2, width=64)
    w = enc.layer4[1].conv2.weight
    expected = (2.0 / (w.shape[0] * 9)) ** 0.5
    assert abs(w.std().item() / expected - 1) < 0.02
    bn = enc.layer4[1].bn2
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))


@pytest.mark.parametrize("cfg", [RefineConfig(), RefineConfig.paper(), RefineConfig.code(), RefineConfig.tiny(),
                                 RefineConfig(aspp_rates=(2, 4, 8)), RefineConfig(sharpen_channels=8)])
def test_config_json_round_trip(cfg):
    assert RefineConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_config_from_unknown_keys_is_refused():
    with pytest.raises(DccsegError, match="Unknown RefineConfig keys"):
        RefineConfig.from_dict({**RefineConfig().to_dict(), "layers": 5})


def test_paper_preset_matches_method():
    cfg = RefineConfig.paper()
    assert (cfg.depth, cfg.stem, cfg.output_stride, cfg.in_channels, cfg.aspp_depth) == (50, "cifar", 8, 6, 512)
    enc = build_encoder(cfg)
    assert enc.out_channels == (256, 2048)
    assert RefineConfig.code().decoder == "aspp_only"
