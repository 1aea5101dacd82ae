"""Networks: the coarse 3D MONAI network, the refine ResNet + DeepLab network, and the pretraining head."""

from dccseg.networks.coarse import CoarseConfig, build_coarse_net, crop_to_shape, pad_to_multiple
from dccseg.networks.pretrain import PretrainNet, ProjectionHead
from dccseg.networks.refine import (
    RefineConfig,
    RefineNet,
    build_encoder,
    build_refine_net,
    load_encoder_state,
    load_refine_state,
    make_refine_input,
)
from dccseg.networks.resnet import ResNetEncoder

__all__ = [
    "CoarseConfig",
    "PretrainNet",
    "ProjectionHead",
    "RefineConfig",
    "RefineNet",
    "ResNetEncoder",
    "build_coarse_net",
    "build_encoder",
    "build_refine_net",
    "crop_to_shape",
    "load_encoder_state",
    "load_refine_state",
    "make_refine_input",
    "pad_to_multiple",
]
