"""Phase simulation on the real non-contrast CT (round trip) and the phase guess on phantoms of every phase."""

import json
from importlib import resources

import numpy as np
import pytest
import SimpleITK as sitk

from dccseg.cli import main
from dccseg.organs import ORGAN_BY_KEY, ORGANS
from dccseg.phantoms import CONTRAST_PHASES, load_template, measure_organ_means, procedural_phantom, simulate_phase, synthesize_from_labels
from dccseg.phantoms.acquisition import AcquisitionSettings
from dccseg.phantoms.hu_table import ORGAN_TISSUE, TISSUE_BY_NAME, hu_range
from dccseg.phase_guess import guess_phase
from dccseg.volume import Volume

EXAMPLE = resources.files("dccseg") / "data" / "totalseg_example"


@pytest.fixture(scope="module")
def real_ct():
    read = lambda name: Volume.from_sitk(sitk.ReadImage(str(EXAMPLE / name)))  # noqa: E731
    return read("example_ct.nii.gz"), read("example_ct_organs.nii.gz")


def test_non_contrast_to_arterial_and_back(real_ct):
    ct, labels = real_ct
    aorta = labels.array == ORGAN_BY_KEY["aorta"].label
    original = measure_organ_means(ct, labels)
    target = {o.label: TISSUE_BY_NAME[ORGAN_TISSUE[o.key]].midpoint("arterial") for o in ORGANS}
    arterial = simulate_phase(ct, labels, "non-contrast", "arterial", source_means=original, target_means=target)
    low, high = hu_range("aorta", "arterial")
    assert low <= arterial.array[aorta].mean() <= high
    assert np.array_equal(arterial.array[ct.array < -400], ct.array[ct.array < -400].astype(np.float32))
    back = simulate_phase(arterial, labels, "arterial", "non-contrast", source_means=target, target_means=original)
    for organ in ORGANS:
        mask = labels.array == organ.label
        if mask.any():
            assert abs(back.array[mask].mean() - ct.array[mask].mean()) < 3.0, organ.key


def test_random_targets_stay_in_the_phase_ranges(real_ct):
    ct, labels = real_ct
    out = simulate_phase(ct, labels, "non-contrast", "portal-venous", seed=3)
    means = measure_organ_means(out, labels)
    for key in ("aorta", "liver", "spleen", "portal_and_splenic_vein"):
        low, high = hu_range(ORGAN_TISSUE[key], "portal-venous")
        assert low - 3 <= means[ORGAN_BY_KEY[key].label] <= high + 3, key


@pytest.mark.parametrize("phase", CONTRAST_PHASES)
def test_phase_guess_recovers_the_phantom_phase(phase):
    for seed in range(3):
        ct, labels = procedural_phantom((32, 64, 64), phase=phase, seed=seed)
        guessed, confidence, evidence = guess_phase(ct, labels)
        assert guessed == phase and confidence > 0.4 and "aorta" in evidence["mean_hu"]


def test_phase_guess_on_synthetic_and_real_ct(real_ct):
    ct, labels = real_ct
    assert guess_phase(ct, labels)[0] == "non-contrast"
    assert guess_phase(ct, None)[:2] == ("unknown", 0.0)
    template, names = load_template()
    for phase in ("arterial", "portal-venous"):
        # the whole abdomen at a standard dose without streaks: this checks the HU the phase table renders
        synthetic, organs = synthesize_from_labels(template, names, phase=phase, seed=11, output_spacing=(6.0, 6.0, 6.0), field_of_view=None,
                                                   acquisition=AcquisitionSettings(low_dose=0.0, streaks=0.0))
        assert guess_phase(synthetic, organs)[0] == phase


def test_cli_simulate_then_guess(tmp_path, capsys):
    image, label = str(EXAMPLE / "example_ct.nii.gz"), str(EXAMPLE / "example_ct_organs.nii.gz")
    out = tmp_path / "arterial.nii.gz"
    assert main(["phantom", "simulate-phase", image, label, str(out), "--from", "non-contrast", "--to", "arterial", "--progress", "none"]) == 0
    capsys.readouterr()
    assert main(["phase", "guess", str(out), "--label", label, "--json", "--progress", "none"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["phase"] == "arterial" and answer["confidence"] > 0.9
