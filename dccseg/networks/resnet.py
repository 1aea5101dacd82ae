"""2D ResNet encoder (plain torch) for the refine network and contrastive pretraining.

Variants (method.md §1.6): depth 18/34 (basic blocks) or 50 (bottlenecks); a "cifar" stem (3x3
stride-1 conv, BN, ReLU, no max-pool: the paper's encoder) or the "standard" ImageNet stem
(7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool); output stride 8 or 16 reached DeepLab-style by
replacing the stride of the last stages with dilation.
"""

from __future__ import annotations

import torch
from torch import nn

from dccseg.errors import DccsegError

STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
STEM_STRIDE = {"cifar": 1, "standard": 4}
STAGE_STRIDES = (1, 2, 2, 2)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_ch, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided/dilated), 1x1 expand x4, with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


def _stem(kind: str, in_channels: int, width: int) -> nn.Sequential:
    if kind == "cifar":
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 7, 2, padding=3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, padding=1),
    )


def stage_strides_and_dilations(stem: str, output_stride: int) -> list[tuple[int, int]]:
    """(stride, dilation) of each of the four stages so that layer4 sits at `output_stride`.

    Stages that would push the total stride past `output_stride` keep stride 1 and multiply the
    dilation instead (DeepLab). Raises DccsegError when the stem alone already exceeds it.
    """
    if stem not in STEM_STRIDE:
        raise DccsegError(f"Unknown ResNet stem {stem!r}; use one of {sorted(STEM_STRIDE)}.")
    natural = STEM_STRIDE[stem] * 8
    if output_stride not in (8, 16) or output_stride > natural:
        raise DccsegError(
            f"Output stride {output_stride} is not possible with the {stem!r} stem (its natural output stride is "
            f"{natural}); use 8{' or 16' if natural >= 16 else ''}."
        )
    total, dilation, plan = STEM_STRIDE[stem], 1, []
    for stride in STAGE_STRIDES:
        if total * stride > output_stride:
            dilation *= stride
            plan.append((1, dilation))
        else:
            total *= stride
            plan.append((stride, dilation))
    return plan


class ResNetEncoder(nn.Module):
    """ResNet trunk returning {"low": layer1 features, "high": layer4 features}.

    `out_channels` is (low, high); `output_stride` is layer4's stride; `low_level_stride` is layer1's.
    """

    def __init__(
        self, depth: int = 50, stem: str = "cifar", output_stride: int = 8, in_channels: int = 6, width: int = 64
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise DccsegError(f"Unsupported ResNet depth {depth}; use one of {sorted(STAGE_BLOCKS)}.")
        if in_channels < 1 or width < 1:
            raise DccsegError(f"ResNet needs in_channels >= 1 and width >= 1 (got {in_channels}, {width}).")
        block = Bottleneck if depth == 50 else BasicBlock
        plan = stage_strides_and_dilations(stem, output_stride)
        self.stem = _stem(stem, in_channels, width)
        stages, in_ch = [], width
        for i, (n_blocks, (stride, dilation)) in enumerate(zip(STAGE_BLOCKS[depth], plan)):
            stage_width = width * 2**i
            blocks = [block(in_ch, stage_width, stride, dilation)]
            in_ch = stage_width * block.expansion
            blocks += [block(in_ch, stage_width, 1, dilation) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = (width * block.expansion, in_ch)
        self.output_stride = output_stride
        self.low_level_stride = STEM_STRIDE[stem]
        init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.layer1(self.stem(x))
        high = self.layer4(self.layer3(self.layer2(low)))
        return {"low": low, "high": high}


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convs; BN gamma 1, beta 0; no zero-init residual (method.md §1.6)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
