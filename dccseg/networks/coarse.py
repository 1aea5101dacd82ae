"""Coarse 3D network: a MONAI network over the whole volume at ~3-4 mm, 14 output channels.

Channel 0 is background, channels 1..13 the organs of dccseg.organs. Every architecture halves the
resolution `len(channels) - 1` times, so spatial sizes must be multiples of `config.size_divisor`:
pad with `pad_to_multiple` and crop the logits back with `crop_to_shape`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.nets import DynUNet, SegResNet, UNet
from torch import nn

from dccseg.errors import DccsegError
from dccseg.networks.config_dict import config_from_dict, config_to_dict

ARCHITECTURES = ("unet", "segresnet", "dynunet")


@dataclasses.dataclass(frozen=True)
class CoarseConfig:
    """Architecture of the coarse network. The field defaults are the product default (docs/networks.md).

    `channels` are the feature widths per resolution level. For "segresnet" they must double at each
    level (MONAI's SegResNet derives them from `channels[0]`, a multiple of 8 for its GroupNorm).
    `num_res_units` is the residual units per level ("unet"); for "dynunet" any value > 0 selects
    residual blocks; "segresnet" ignores it (it uses 1, 2, 2, ... blocks down, 1 up).
    """

    architecture: str = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    num_res_units: int = 1
    dropout: float = 0.0
    in_channels: int = 1
    out_channels: int = 14

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise DccsegError(f"Coarse architecture must be one of {list(ARCHITECTURES)}, got {self.architecture!r}.")
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise DccsegError(f"Coarse channels need at least two positive widths, got {self.channels}.")
        if self.architecture == "segresnet" and (
            self.channels[0] % 8 or any(c != self.channels[0] * 2**i for i, c in enumerate(self.channels))
        ):
            raise DccsegError(
                f"segresnet channels must start at a multiple of 8 and double per level, got {self.channels}."
            )
        if not 0.0 <= self.dropout < 1.0 or self.num_res_units < 0:
            raise DccsegError("Coarse dropout must be in [0, 1) and num_res_units >= 0.")
        if self.in_channels < 1 or self.out_channels < 2:
            raise DccsegError("Coarse in_channels must be >= 1 and out_channels >= 2.")

    @property
    def size_divisor(self) -> int:
        """Spatial sizes must be multiples of this (2 to the number of downsamplings)."""
        return 2 ** (len(self.channels) - 1)

    @classmethod
    def tiny(cls) -> "CoarseConfig":
        """A small network for tests."""
        return cls(channels=(4, 8, 16), num_res_units=0)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CoarseConfig":
        return config_from_dict(cls, data)


def build_coarse_net(config: CoarseConfig) -> nn.Module:
    """(B, in_channels, D, H, W) -> (B, out_channels, D, H, W) logits; D, H, W multiples of size_divisor."""
    levels = len(config.channels)
    if config.architecture == "unet":
        return UNet(
            spatial_dims=3,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            channels=config.channels,
            strides=(2,) * (levels - 1),
            num_res_units=config.num_res_units,
            dropout=config.dropout,
        )
    if config.architecture == "segresnet":
        return SegResNet(
            spatial_dims=3,
            init_filters=config.channels[0],
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            dropout_prob=config.dropout or None,
            blocks_down=(1,) + (2,) * (levels - 2) + (4,),
            blocks_up=(1,) * (levels - 1),
        )
    return DynUNet(
        spatial_dims=3,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        kernel_size=(3,) * levels,
        strides=(1,) + (2,) * (levels - 1),
        upsample_kernel_size=(2,) * (levels - 1),
        filters=config.channels,
        dropout=config.dropout or None,
        res_block=config.num_res_units > 0,
    )


def pad_to_multiple(x: torch.Tensor, k: int, value: float = 0.0) -> torch.Tensor:
    """Pad the last three (spatial) dims of (B, C, D, H, W) at their high end up to multiples of `k`.

    Use the background intensity as `value` (e.g. -1 for images normalised to [-1, 1]). The original
    voxels keep their indices, so `crop_to_shape(logits, x.shape[-3:])` undoes it.
    """
    if x.ndim != 5:
        raise DccsegError(f"Expected a (B, C, D, H, W) tensor, got shape {tuple(x.shape)}.")
    pads: list[int] = []
    for size in reversed(x.shape[-3:]):
        pads += [0, (-size) % k]
    return F.pad(x, pads, value=value) if any(pads) else x


def crop_to_shape(x: torch.Tensor, spatial_shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """Keep the first `spatial_shape` voxels of the last three dims (inverse of `pad_to_multiple`)."""
    d, h, w = spatial_shape
    return x[..., :d, :h, :w]
