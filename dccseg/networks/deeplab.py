"""DeepLab decoders for the refine network (method.md §1.7).

`ASPP`: 1x1 branch, three dilated 3x3 branches, and an image-pooling branch, each followed by ReLU
(BN on the conv branches); concatenated and projected to `depth` channels with a 1x1 conv, BN, ReLU.
The image-pooling branch has no normalisation (a 1x1 conv with bias, then ReLU): BatchNorm on a 1x1
map fails for batch size 1 in train mode, and the branch is a global statistic anyway.

`DeepLabV3PlusDecoder` ([R] default): ASPP on the high-level map, layer1 features reduced to 48
channels, concatenated with the upsampled ASPP output, two 3x3 convs, a 1x1 conv to the classes.
`AsppOnlyDecoder` ([C] the authors' code): ASPP, then a 1x1 conv to the classes, no low-level skip.
Both return logits at the low-level (V3+) or high-level (ASPP only) resolution; the refine network
upsamples them to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def upsample_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize with align_corners=True, as in the authors' code."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ImagePooling(nn.Module):
    """Global average pool, 1x1 conv (with bias, no norm), ReLU, broadcast back to the map size."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return y.expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with five branches and a 1x1 projection to `depth` channels."""

    def __init__(self, in_ch: int, depth: int, rates: tuple[int, int, int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_ch, depth, 1)]
            + [conv_bn_relu(in_ch, depth, 3, dilation=r) for r in rates]
            + [ImagePooling(in_ch, depth)]
        )
        self.project = conv_bn_relu(len(self.branches) * depth, depth, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class AsppOnlyDecoder(nn.Module):
    """The authors' head: ASPP then a 1x1 conv to the classes (logits at the encoder's output stride)."""

    def __init__(self, high_ch: int, depth: int, rates: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.aspp = ASPP(high_ch, depth, rates)
        self.classifier = nn.Conv2d(depth, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.aspp(high))


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP + 48-channel low-level skip + two 3x3 convs + 1x1 classifier (logits at layer1's resolution)."""

    def __init__(
        self,
        low_ch: int,
        high_ch: int,
        depth: int,
        rates: tuple[int, int, int],
        num_classes: int,
        decoder_channels: int = 256,
        low_level_channels: int = 48,
    ) -> None:
        super().__init__()
        self.aspp = ASPP(high_ch, depth, rates)
        self.low_project = conv_bn_relu(low_ch, low_level_channels, 1)
        self.fuse = nn.Sequential(
            conv_bn_relu(depth + low_level_channels, decoder_channels, 3),
            conv_bn_relu(decoder_channels, decoder_channels, 3),
        )
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        context = upsample_to(self.aspp(high), low.shape[-2:])
        return self.classifier(self.fuse(torch.cat([context, self.low_project(low)], dim=1)))
