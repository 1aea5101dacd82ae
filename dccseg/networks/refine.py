"""Refine network: a ResNet encoder + DeepLab decoder mapping (B, C, H, W) patches to (B, 2, H, W) logits.

Input channels (method.md §1.2): the image in [-1, 1] and the binary coarse mask of one organ, either
as 6 channels (3 copies each, the paper) or 2 (one each). Output: background/foreground logits.

The DeepLab decoder's logits lie on layer1's grid (a quarter of the input's, 6 mm at the 1.5 mm refine grid),
upsampled bilinearly. ``sharpen_channels`` > 0 adds a full-resolution head (``SharpenHead``): two 3x3 convs over the
input and those logits, added to them, so borders can follow the image at the input's own resolution.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
from torch import nn

from dccseg.errors import DccsegError
from dccseg.networks.config_dict import config_from_dict, config_to_dict
from dccseg.networks.deeplab import AsppOnlyDecoder, DeepLabV3PlusDecoder, conv_bn_relu, upsample_to
from dccseg.networks.resnet import STAGE_BLOCKS, ResNetEncoder, init_weights, stage_strides_and_dilations

DECODERS = ("deeplabv3plus", "aspp_only")
INPUT_CHANNELS = (2, 6)
NUM_CLASSES = 2
BASE_ASPP_RATES = (6, 12, 18)  # at output stride 8, as in the authors' code


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """Architecture of the refine network. The field defaults are the product default (see docs/networks.md).

    `aspp_rates=None` scales the authors' (6, 12, 18) at output stride 8 to the actual output stride
    (halved at 16), so the branches see the same image-space context. `width` is the stem/layer1 width
    (64 = standard ResNet); `decoder_channels` the width of the V3+ 3x3 convs; `sharpen_channels` the width of the
    full-resolution head (0: none, as every model before 0.4.6).
    """

    depth: int = 18
    stem: str = "standard"
    output_stride: int = 16
    in_channels: int = 2
    decoder: str = "deeplabv3plus"
    aspp_depth: int = 64
    aspp_rates: tuple[int, int, int] | None = None
    decoder_channels: int = 64
    width: int = 32
    patch_size: int = 128
    sharpen_channels: int = 0

    def __post_init__(self) -> None:
        if self.depth not in STAGE_BLOCKS:
            raise DccsegError(f"Refine depth must be one of {sorted(STAGE_BLOCKS)}, got {self.depth}.")
        if self.in_channels not in INPUT_CHANNELS:
            raise DccsegError(f"Refine in_channels must be 2 (image+mask) or 6 (paper), got {self.in_channels}.")
        if self.decoder not in DECODERS:
            raise DccsegError(f"Refine decoder must be one of {list(DECODERS)}, got {self.decoder!r}.")
        stage_strides_and_dilations(self.stem, self.output_stride)
        if min(self.aspp_depth, self.decoder_channels, self.width) < 1:
            raise DccsegError("Refine aspp_depth, decoder_channels and width must be positive.")
        if self.sharpen_channels < 0:
            raise DccsegError(f"Refine sharpen_channels must be 0 (no full-resolution head) or positive, got {self.sharpen_channels}.")
        if self.aspp_rates is not None and (len(self.aspp_rates) != 3 or min(self.aspp_rates) < 1):
            raise DccsegError(f"aspp_rates must be three positive dilation rates, got {self.aspp_rates}.")
        if self.patch_size % self.output_stride:
            raise DccsegError(f"patch_size {self.patch_size} must be a multiple of the output stride {self.output_stride}.")

    @property
    def rates(self) -> tuple[int, int, int]:
        if self.aspp_rates is not None:
            return tuple(self.aspp_rates)
        return tuple(max(1, r * 8 // self.output_stride) for r in BASE_ASPP_RATES)

    @classmethod
    def paper(cls) -> "RefineConfig":
        """method.md [R]: CIFAR-stem ResNet-50 (OS 8), 6 channels, DeepLabV3+ with ASPP depth 512."""
        return cls(depth=50, stem="cifar", output_stride=8, in_channels=6, decoder="deeplabv3plus",
                   aspp_depth=512, decoder_channels=256, width=64)

    @classmethod
    def code(cls) -> "RefineConfig":
        """The authors' code: the paper's encoder with the ASPP-only head (no low-level skip)."""
        return dataclasses.replace(cls.paper(), decoder="aspp_only")

    @classmethod
    def fast(cls) -> "RefineConfig":
        """The product default, chosen from the CPU measurements in docs/networks.md."""
        return cls()

    @classmethod
    def tiny(cls) -> "RefineConfig":
        """A few-thousand-parameter network for tests."""
        return cls(depth=18, stem="standard", output_stride=8, in_channels=2, aspp_depth=8,
                   decoder_channels=8, width=4, patch_size=32)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RefineConfig":
        return config_from_dict(cls, data)


class SharpenHead(nn.Module):
    """Two 3x3 conv-BN-ReLU layers over (input, upsampled logits) at full resolution and a 1x1 conv to a logit correction.

    The last conv starts at zero, so a network given this head starts exactly as it was without it.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(conv_bn_relu(in_channels + NUM_CLASSES, channels, 3), conv_bn_relu(channels, channels, 3))
        self.correction = nn.Conv2d(channels, NUM_CLASSES, 1)
        init_weights(self.layers)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)

    def forward(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.correction(self.layers(torch.cat([x, logits], dim=1)))


class RefineNet(nn.Module):
    """`encoder` (a ResNetEncoder, replaceable by pretrained weights) + `decoder` (+ `sharpen`); logits at input size."""

    def __init__(self, config: RefineConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config)
        low_ch, high_ch = self.encoder.out_channels
        if config.decoder == "aspp_only":
            self.decoder = AsppOnlyDecoder(high_ch, config.aspp_depth, config.rates, NUM_CLASSES)
        else:
            self.decoder = DeepLabV3PlusDecoder(
                low_ch, high_ch, config.aspp_depth, config.rates, NUM_CLASSES, config.decoder_channels
            )
        init_weights(self.decoder)
        self.sharpen = SharpenHead(config.in_channels, config.sharpen_channels) if config.sharpen_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        logits = upsample_to(self.decoder(features["low"], features["high"]), x.shape[-2:])
        return logits if self.sharpen is None else self.sharpen(x, logits)


def load_refine_state(net: RefineNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a whole refine network's weights; from a network without the full-resolution head, ``net``'s head keeps its start (no correction)."""
    missing, unexpected = net.load_state_dict(state_dict, strict=False)
    if unexpected or any(not key.startswith("sharpen.") for key in missing):
        net.load_state_dict(state_dict)  # raises, naming what does not fit


def build_encoder(config: RefineConfig) -> ResNetEncoder:
    """The ResNet encoder described by `config` (also what contrastive pretraining trains)."""
    return ResNetEncoder(config.depth, config.stem, config.output_stride, config.in_channels, config.width)


def build_refine_net(config: RefineConfig) -> RefineNet:
    """(B, config.in_channels, H, W) -> (B, 2, H, W) logits; H, W multiples of the output stride."""
    return RefineNet(config)


def load_encoder_state(net: RefineNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load pretrained encoder weights into `net.encoder`.

    Accepts a bare encoder state dict or one with an "encoder." prefix (a PretrainNet state dict; the
    projection head is ignored). Raises DccsegError naming the mismatch when depth, stem, width or
    input channels differ (output stride is a dilation choice and does not change the weights).
    """
    prefix = "encoder."
    if any(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    expected = net.encoder.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        c = net.config
        details = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
                f"shape (checkpoint vs network) {wrong_shape[:3]}" if wrong_shape else "",
            )
            if part
        )
        raise DccsegError(
            f"Encoder weights do not fit the refine network (depth={c.depth}, stem={c.stem}, width={c.width}, "
            f"in_channels={c.in_channels}): {details}. Build the refine network with the encoder's own config."
        )
    net.encoder.load_state_dict(state_dict, strict=True)


def make_refine_input(image_patch: torch.Tensor, mask_patch: torch.Tensor, in_channels: int) -> torch.Tensor:
    """(B, H, W) image in [-1, 1] and (B, H, W) binary mask -> (B, in_channels, H, W) network input.

    2 channels: [image, mask]; 6 channels: [image x3, mask x3] (method.md §1.2).
    """
    if in_channels not in INPUT_CHANNELS:
        raise DccsegError(f"in_channels must be 2 or 6, got {in_channels}.")
    if image_patch.ndim != 3 or image_patch.shape != mask_patch.shape:
        raise DccsegError(
            f"Refine input needs image and mask patches of the same (B, H, W) shape, got "
            f"{tuple(image_patch.shape)} and {tuple(mask_patch.shape)}."
        )
    copies = in_channels // 2
    image = image_patch.unsqueeze(1)
    mask = mask_patch.unsqueeze(1).to(image.dtype)
    return torch.cat([image] * copies + [mask] * copies, dim=1)
