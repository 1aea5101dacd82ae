"""What the coarse network says beside its labels: the left-right mirror check, and each organ's confidence."""

import pytest
import torch

from dccseg.inference.findings import organ_confidence
from dccseg.inference.orientation import MIRROR_RATIO, confident_organ_voxels, mirror_flag


def test_confident_organ_voxels_count_organs_above_the_probability_only():
    probabilities = torch.tensor([[0.05, 0.5, 0.95, 0.02], [0.95, 0.5, 0.05, 0.08], [0.0, 0.0, 0.0, 0.9]]).reshape(3, 1, 1, 4)
    assert confident_organ_voxels(probabilities) == 1  # background, a tie, sure background, an organ at 0.9 (not above it)
    probabilities[2, 0, 0, 3] = 0.91
    assert confident_organ_voxels(probabilities) == 2


def test_a_mirror_is_flagged_only_when_it_reads_clearly_better_on_enough_tissue():
    assert mirror_flag(1000, 900, 0.125) is None  # the scan itself reads better
    assert mirror_flag(1000, int(1000 * MIRROR_RATIO) - 1, 0.125) is None  # a little better mirrored is not enough
    flag = mirror_flag(1000, 1800, 0.125)
    assert flag["organ"] is None and flag["check"] == "mirrored" and "1.8 times" in flag["message"] and "orientation" in flag["message"]
    assert mirror_flag(10, 100, 0.125) is None  # 12.5 ml at best: a slab too thin to tell


def test_organ_confidence_is_the_mean_probability_over_the_voxels_labelled_so():
    probabilities = torch.tensor([[0.1, 0.2, 0.9, 0.3], [0.9, 0.6, 0.05, 0.3], [0.0, 0.2, 0.05, 0.4]]).reshape(3, 1, 1, 4)
    confidence = organ_confidence(probabilities)  # organ 1 labels two voxels (0.9, 0.6), organ 2 one (0.4); background is no organ
    assert set(confidence) == {1, 2} and confidence[1] == pytest.approx(0.75) and confidence[2] == pytest.approx(0.4)
