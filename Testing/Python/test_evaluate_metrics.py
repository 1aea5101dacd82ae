"""Dice, HD95, absent-organ rules, aggregation and the Wilcoxon test on hand-checkable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage, stats

from dccseg.errors import DccsegError
from dccseg.evaluation import dice, evaluate_pair, hd95, summarize, wilcoxon_compare
from dccseg.organs import ORGAN_BY_KEY
from dccseg.volume import Volume

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def volume(array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> Volume:
    return Volume(array.astype(np.uint8), tuple(spacing), (0.0, 0.0, 0.0), IDENTITY)


def test_dice_of_overlapping_cubes() -> None:
    a = np.zeros((20, 20, 20), bool)
    b = np.zeros_like(a)
    a[2:12, 2:12, 2:12] = True  # 1000 voxels
    b[7:17, 2:12, 2:12] = True  # 1000 voxels, 500 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0
    assert math.isnan(dice(np.zeros_like(a), np.zeros_like(a)))


@pytest.mark.parametrize("axis, spacing_zyx, shift", [(0, (3.0, 0.7, 0.8), 2), (2, (3.0, 0.7, 0.8), 5), (1, (2.5, 1.5, 0.5), 1)])
def test_hd95_of_shifted_plates_is_the_shift_in_mm(axis: int, spacing_zyx: tuple, shift: int) -> None:
    # A one-voxel-thick plate is all surface, and the nearest point of the shifted plate is straight across.
    a = np.zeros((16, 16, 16), bool)
    index = [slice(3, 13)] * 3
    index[axis] = slice(4, 5)
    a[tuple(index)] = True
    b = np.roll(a, shift, axis=axis)
    assert hd95(a, b, spacing_zyx) == pytest.approx(shift * spacing_zyx[axis])


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_hd95_of_shifted_cubes_is_bounded_by_the_shift_and_matches_monai() -> None:
    spacing = (2.0, 0.75, 0.75)
    a = np.zeros((24, 40, 40), bool)
    a[6:14, 10:30, 10:30] = True
    b = np.roll(a, 3, axis=0)
    value = hd95(a, b, spacing)
    assert 0 < value <= 3 * 2.0 + 1e-9
    rng = np.random.default_rng(1)
    blob_a = ndimage.gaussian_filter(rng.random((24, 40, 40)), 3) > 0.5
    blob_b = ndimage.gaussian_filter(rng.random((24, 40, 40)), 3) > 0.5
    for x, y in ((a, b), (blob_a, blob_b)):
        x[[0, -1]] = y[[0, -1]] = False
        x[:, [0, -1]] = y[:, [0, -1]] = False
        x[:, :, [0, -1]] = y[:, :, [0, -1]] = False
        reference = compute_hausdorff_distance(
            torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None], include_background=True, percentile=95, spacing=spacing
        )
        assert hd95(x, y, spacing) == pytest.approx(float(reference), rel=1e-5)


def test_hd95_empty_masks() -> None:
    empty = np.zeros((8, 8, 8), bool)
    full = empty.copy()
    full[2:5, 2:5, 2:5] = True
    assert math.isnan(hd95(empty, empty, (1, 1, 1)))
    assert math.isinf(hd95(full, empty, (1, 1, 1))) and math.isinf(hd95(empty, full, (1, 1, 1)))


def labelmaps() -> tuple[Volume, Volume]:
    ref = np.zeros((12, 20, 20), np.uint8)
    pred = np.zeros_like(ref)
    ref[2:6, 2:8, 2:8] = ORGAN_BY_KEY["liver"].label
    pred[2:6, 2:8, 2:5] = ORGAN_BY_KEY["liver"].label  # half of the liver: Dice 2*72/(144+72) = 2/3
    ref[8:10, 10:14, 10:14] = ORGAN_BY_KEY["spleen"].label  # missed
    pred[8:10, 15:18, 15:18] = ORGAN_BY_KEY["stomach"].label  # false positive
    return volume(pred, (0.8, 0.8, 2.0)), volume(ref, (0.8, 0.8, 2.0))


def test_evaluate_pair_applies_the_absent_organ_rules() -> None:
    pred, ref = labelmaps()
    organs = [ORGAN_BY_KEY[k] for k in ("spleen", "liver", "stomach", "aorta")]
    result = evaluate_pair(pred, ref, organs, case="c1", phase="arterial")
    liver, spleen, stomach, aorta = (result["organs"][k] for k in ("liver", "spleen", "stomach", "aorta"))
    assert liver["dice"] == pytest.approx(2 / 3) and liver["hd95"] == pytest.approx(3 * 0.8)
    assert spleen == {"label": 1, "dice": 0.0, "hd95": None, "in_reference": True, "in_prediction": False}
    assert stomach["dice"] == 0.0 and stomach["hd95"] is None and not stomach["in_reference"]
    assert aorta["dice"] is None and aorta["hd95"] is None
    assert result["dice_mean"] == pytest.approx((2 / 3 + 0.0) / 2)  # liver and spleen, the organs in the reference
    assert result["hd95_mean"] == pytest.approx(2.4)  # the missed spleen has no finite distance
    assert result["missed"] == ["spleen"] and result["false_positives"] == ["stomach"]
    with pytest.raises(DccsegError, match="different grids"):
        evaluate_pair(volume(pred.array, (1.0, 1.0, 1.0)), ref, organs)


def case(name: str, phase: str, liver: float | None, spleen: float | None) -> dict:
    def organ(value):
        return {"label": 0, "dice": value, "hd95": None if value is None else 1.0, "in_reference": value is not None, "in_prediction": value is not None}

    organs = {"liver": organ(liver), "spleen": organ(spleen)}
    present = [v for v in (liver, spleen) if v is not None]
    return {"case": name, "phase": phase, "organs": organs, "dice_mean": float(np.mean(present)) if present else None, "hd95_mean": 1.0}


def test_summarize_per_organ_case_and_phase() -> None:
    results = [case("a", "arterial", 0.9, 0.7), case("b", "arterial", 0.8, None), case("c", "portal-venous", 0.6, 0.5)]
    summary = summarize(results)
    assert summary["n_cases"] == 3 and summary["organs"] == ["liver", "spleen"]
    assert summary["per_organ"]["liver"]["dice_mean"] == pytest.approx(0.7667, abs=1e-4)
    assert summary["per_organ"]["spleen"]["n"] == 2 and summary["per_organ"]["spleen"]["dice_mean"] == pytest.approx(0.6)
    assert summary["dice_mean_of_cases"] == pytest.approx(np.mean([0.8, 0.8, 0.55]))
    assert summary["dice_mean_of_organs"] == pytest.approx(np.mean([0.7667, 0.6]), abs=1e-4)
    arterial = summary["per_phase"]["arterial"]
    assert arterial["n_cases"] == 2 and arterial["per_organ"]["liver"]["dice_mean"] == pytest.approx(0.85)
    assert arterial["per_organ"]["spleen"]["dice_mean"] == pytest.approx(0.7)
    assert summary["per_phase"]["portal-venous"]["dice_mean_of_cases"] == pytest.approx(0.55)


def test_wilcoxon_matches_scipy_and_warns_without_power() -> None:
    a = [0.91, 0.85, 0.88, 0.79, 0.93, 0.81, 0.87, 0.90]
    b = list(np.subtract(a, [0.02, 0.05, 0.03, -0.01, 0.06, 0.07, 0.04, 0.08]))
    result = wilcoxon_compare(a, b)
    expected = stats.wilcoxon(a, b)
    assert result["n"] == 8 and result["p_value"] == pytest.approx(expected.pvalue) and result["statistic"] == expected.statistic
    assert result["p_value"] == pytest.approx(2 * 2 / 2**8)  # exact: one negative difference of the smallest rank
    assert result["median_difference"] == pytest.approx(np.median(np.subtract(a, b)))
    assert result["note"] == ""
    small = wilcoxon_compare(a[:4], b[:4])
    assert small["n"] == 4 and "no power" in small["note"]
    same = wilcoxon_compare(a, a)
    assert same["p_value"] is None and not same["significant"]


def test_a_cropped_prediction_is_padded_onto_the_reference_grid() -> None:
    from dccseg.evaluation.inputs import align_to_reference

    pred, ref = labelmaps()
    cropped = Volume(pred.array[2:6, 2:10, 2:10], pred.spacing, (2 * 0.8, 2 * 0.8, 2 * 2.0), IDENTITY)  # like a cropped .seg.nrrd
    aligned = align_to_reference(cropped, ref, "pred")
    expected = np.zeros_like(pred.array)
    expected[2:6, 2:10, 2:10] = pred.array[2:6, 2:10, 2:10]
    assert aligned.same_grid(ref) and np.array_equal(aligned.array, expected)
    shifted = Volume(cropped.array, cropped.spacing, (0.3, 0.0, 0.0), IDENTITY)
    with pytest.raises(DccsegError, match="not on the reference's grid"):
        align_to_reference(shifted, ref, "pred")


def test_summary_groups_cases_by_subject():
    from dccseg.evaluation.report import format_summary, summarize

    def result(case, subject, dice):
        return {"case": case, "phase": "arterial", "subject": subject, "dice_mean": dice, "hd95_mean": 1.0,
                "organs": {"liver": {"dice": dice, "hd95": 1.0, "in_reference": True, "in_prediction": True}}}

    summary = summarize([result("a1", "body-a", 0.9), result("a2", "body-a", 0.7), result("b1", "body-b", 0.5)])
    assert summary["per_subject"]["body-a"]["dice_mean_of_cases"] == pytest.approx(0.8)
    assert summary["per_subject"]["body-b"]["per_organ"]["liver"]["dice_mean"] == pytest.approx(0.5)
    assert "Dice by subject" in format_summary(summary)
    assert summarize([result("c", "", 0.4)])["per_subject"] == {}
