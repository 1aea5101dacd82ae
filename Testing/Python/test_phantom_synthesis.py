"""Label-driven synthesis on the bundled template, template building, and the HU table samplers."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from dccseg.errors import DccsegError
from dccseg.organs import ORGAN_BY_KEY
from dccseg.phantoms import ANATOMY_PRESETS, build_template_from_structure_dir, load_template, sample_scan, sample_timed_scan, synthesize_from_labels
from dccseg.phantoms.acquisition import AcquisitionSettings
from dccseg.phantoms.hu_table import TISSUE_INDEX, TISSUES
from dccseg.phantoms.synthesis import prepared


@pytest.fixture(scope="module")
def quick_template():
    """The bundled template, prepared once; tests render it at 6 mm (an eighth of the voxels) to stay fast."""
    labels, names = load_template()
    return prepared(labels, names), labels, names


def test_bundled_template_is_small_and_holds_the_organs_first():
    labels, names = load_template()
    assert labels.shape == (112, 101, 122) and labels.array.dtype == np.uint8
    assert len(names) == 37 and names[0] == "spleen" and names[9] == "portal_vein_and_splenic_vein"  # 104 v1 structures, grouped
    assert set(np.unique(labels.array)) >= set(range(1, 14)) - {5}


def test_synthesis_gives_plausible_ct_and_organ_labels(quick_template):
    template, labels, _ = quick_template
    standard = AcquisitionSettings(low_dose=0.0, streaks=0.0)  # the whole abdomen at a standard dose: checks the rendered HU
    ct, organs = synthesize_from_labels(template, phase="arterial", seed=1, output_spacing=(6.0, 6.0, 6.0), field_of_view=None, acquisition=standard)
    assert ct.shape == organs.shape and ct.same_grid(organs) and ct.spacing == (6.0, 6.0, 6.0)
    assert ct.direction == labels.direction
    assert set(np.unique(organs.array)) <= set(range(14)) and {1, 2, 3, 6, 8} <= set(np.unique(organs.array))
    air = ct.array[0, 0, 0]
    assert air < -900
    aorta = np.median(ct.array[organs.array == ORGAN_BY_KEY["aorta"].label])
    liver = np.median(ct.array[organs.array == ORGAN_BY_KEY["liver"].label])
    assert aorta > 200 and 40 < liver < 100
    assert -150 < np.median(ct.array[ct.array > -500]) < 100


def test_synthesis_is_deterministic_and_keeps_the_anatomy_across_phases(quick_template):
    template = quick_template[0]
    a = synthesize_from_labels(template, phase="non-contrast", seed=5, output_spacing=(6.0, 6.0, 6.0))
    b = synthesize_from_labels(template, phase="non-contrast", seed=5, output_spacing=(6.0, 6.0, 6.0))
    c = synthesize_from_labels(template, phase="portal-venous", seed=5, output_spacing=(6.0, 6.0, 6.0))
    d = synthesize_from_labels(template, phase="non-contrast", seed=6, output_spacing=(6.0, 6.0, 6.0))
    assert np.array_equal(a[0].array, b[0].array) and np.array_equal(a[1].array, b[1].array)
    assert np.array_equal(a[1].array, c[1].array) and not np.allclose(a[0].array, c[0].array)
    assert a[1].shape != d[1].shape or not np.array_equal(a[1].array, d[1].array)


def test_synthesis_keeps_left_and_right(quick_template):
    template = quick_template[0]
    _, organs = synthesize_from_labels(template, phase="delayed", seed=2, output_spacing=(6.0, 6.0, 6.0))
    matrix = np.asarray(organs.direction).reshape(3, 3)

    def x_of(key):
        index = np.argwhere(organs.array == ORGAN_BY_KEY[key].label).mean(axis=0)[::-1]
        return (np.asarray(organs.origin) + matrix @ (index * np.asarray(organs.spacing)))[0]

    assert x_of("liver") < x_of("spleen") and x_of("kidney_right") < x_of("kidney_left")


def test_build_template_from_a_structure_folder(tmp_path):
    masks = tmp_path / "segmentations"
    masks.mkdir()
    for name, box in (("liver", (slice(0, 4), slice(0, 4), slice(0, 4))), ("vertebrae_L1", (slice(2, 6), slice(2, 6), slice(2, 6))), ("portal_vein_and_splenic_vein", (slice(6, 8), slice(6, 8), slice(6, 8)))):
        array = np.zeros((8, 8, 8), np.uint8)
        array[box] = 1
        sitk.WriteImage(sitk.GetImageFromArray(array), str(masks / f"{name}.nii.gz"))
    out = build_template_from_structure_dir(masks, tmp_path / "t" / "template.nii.gz")
    names = json.loads((out.parent / "structures.json").read_text(encoding="utf-8"))
    assert names == {"1": "liver", "2": "portal_vein_and_splenic_vein", "3": "vertebrae_L1"}
    combined = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert combined[3, 3, 3] == 1 and combined[5, 5, 5] == 3 and combined[7, 7, 7] == 2
    labels, loaded = load_template(str(tmp_path))
    assert loaded == ["liver", "portal_vein_and_splenic_vein", "vertebrae_L1"] and np.array_equal(labels.array, combined)


def test_unknown_template_is_a_user_error(tmp_path):
    with pytest.raises(DccsegError, match="unknown template"):
        load_template(str(tmp_path / "missing"))


def test_sampled_scans_stay_in_range_and_timed_scans_interpolate():
    rng = np.random.default_rng(0)
    for phase in ("non-contrast", "arterial", "portal-venous", "delayed"):
        scan = sample_scan(phase, rng)
        for tissue in TISSUES:
            low, high = tissue.range(phase)
            assert low <= scan.mean[TISSUE_INDEX[tissue.name]] <= high
    late_arterial = sample_timed_scan(rng, timing=1.5)
    assert late_arterial.phase in ("arterial", "portal-venous")
    assert 150 <= late_arterial.of("aorta") <= 450 and 70 <= late_arterial.of("liver") <= 130
    assert sample_timed_scan(rng, timing=0.0).of("aorta") <= 50


def test_wide_anatomy_moves_organs_further_and_typical_is_the_default(quick_template):
    template = quick_template[0]
    plain = synthesize_from_labels(template, phase="arterial", seed=3, output_spacing=(6.0, 6.0, 6.0))
    typical = synthesize_from_labels(template, phase="arterial", seed=3, output_spacing=(6.0, 6.0, 6.0), anatomy=ANATOMY_PRESETS["typical"])
    assert np.array_equal(plain[1].array, typical[1].array)  # seeds rendered before the setting existed still give the same anatomy

    def spleen_to_left_kidney(anatomy):
        offsets = []
        for seed in range(6):
            _, organs = synthesize_from_labels(template, phase="arterial", seed=seed, output_spacing=(6.0, 6.0, 6.0), field_of_view=None, anatomy=anatomy)
            assert set(range(1, 14)) - {5} <= set(np.unique(organs.array))  # every organ of the template survives the stronger warp
            centre = [np.argwhere(organs.array == ORGAN_BY_KEY[key].label).mean(axis=0) for key in ("spleen", "kidney_left")]
            offsets.append((centre[0] - centre[1]) * 6.0)
        return float(np.linalg.norm(np.std(offsets, axis=0)))

    assert spleen_to_left_kidney(ANATOMY_PRESETS["wide"]) > 1.5 * spleen_to_left_kidney(ANATOMY_PRESETS["typical"])
