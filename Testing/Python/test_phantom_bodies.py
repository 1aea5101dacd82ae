"""The seven bundled bodies: both TotalSegmentator name sets, lenient NIfTI reading, the body split, and the variety
augmentations of synthesis (field of view, acquisition, scan styles)."""

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk

from dccseg.commands.phantom import _template_names
from dccseg.errors import DccsegError
from dccseg.io import read_image
from dccseg.phantoms.acquisition import AcquisitionSettings, acquire, slice_profile
from dccseg.phantoms.field_of_view import AIR_HU, FieldOfViewSettings, choose_z_range, crop_in_plane
from dccseg.phantoms.hu_table import TISSUE_INDEX, sample_scan
from dccseg.phantoms.scan_styles import ORAL_CONTRAST_HU, randomise_scan, with_oral_contrast
from dccseg.phantoms.structures import organ_label, structure_group, structure_tissue
from dccseg.phantoms.synthesis import _output_geometry, prepared, synthesize_from_labels
from dccseg.phantoms.templates import BODY_SPLIT, BUNDLED, combine_structures, load_template

MISSING = {"s0001": {"gallbladder"}}  # cholecystectomy: no gallbladder in that body


@pytest.mark.parametrize("body", BUNDLED)
def test_every_bundled_body_loads_with_its_organs(body):
    labels, names = load_template(body)
    assert labels.array.dtype == np.uint8 and int(labels.array.max()) <= len(names)
    present = {names[i - 1] for i in np.unique(labels.array) if i}
    expected = {"spleen", "kidney_right", "kidney_left", "liver", "stomach", "aorta", "inferior_vena_cava", "pancreas",
                "portal_vein_and_splenic_vein", "adrenal_gland_right", "adrenal_gland_left", "gallbladder"} - MISSING.get(body, set())
    assert expected <= present
    assert {"vertebrae", "ribs"} <= set(names) and not any(n.startswith("rib_") for n in names)


def test_both_name_sets_render_as_the_right_tissue():
    v1 = ("heart_atrium_left", "heart_ventricle_right", "heart_myocardium", "lung_upper_lobe_left", "face", "iliac_artery_left")
    v2 = ("heart", "atrial_appendage_left", "pulmonary_vein", "kidney_cyst_left", "sternum", "superior_vena_cava", "brachiocephalic_trunk", "rib_left_11")
    tissues = {n: structure_tissue(structure_group(n)) for n in v1 + v2}
    assert tissues["heart_atrium_left"] == tissues["heart"] == tissues["pulmonary_vein"] == "heart_blood"
    assert tissues["heart_myocardium"] == "myocardium" and tissues["lung_upper_lobe_left"] == "lung"
    assert tissues["sternum"] == tissues["rib_left_11"] == "bone_cortical"
    assert tissues["superior_vena_cava"] == "vein" and tissues["brachiocephalic_trunk"] == tissues["iliac_artery_left"] == "artery"
    assert organ_label("kidney_cyst_left") == organ_label("kidney_left") and tissues["kidney_cyst_left"] == "gallbladder"


def _write_mask(path, box, affine):
    array = np.zeros((10, 10, 10), np.uint8)
    array[box] = 1
    nibabel.Nifti1Image(array, affine).to_filename(str(path))


def test_grouped_template_from_v2_masks_with_axes_itk_refuses(tmp_path):
    """Real TotalSegmentator downloads hold axes slightly off square: ITK refuses them, we square them and go on."""
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[0, 1] = 0.05  # about 2 degrees of shear
    folder = tmp_path / "segmentations"
    folder.mkdir()
    for name, box in (("kidney_left", np.s_[0:4, 0:4, 0:4]), ("kidney_cyst_left", np.s_[1:2, 1:2, 1:2]), ("rib_left_1", np.s_[6:8, 0:2, 0:2]), ("rib_right_2", np.s_[6:8, 8:10, 0:2])):
        _write_mask(folder / f"{name}.nii.gz", box, affine)
    with pytest.raises(RuntimeError, match="orthonormal"):
        sitk.ReadImage(str(folder / "kidney_left.nii.gz"))
    labels, names = combine_structures(folder, grouped=True)
    assert names == ["kidney_left", "ribs", "kidney_cyst_left"]
    assert np.allclose(labels.spacing, 1.5, atol=0.01) and np.allclose(np.asarray(labels.direction).reshape(3, 3) @ np.asarray(labels.direction).reshape(3, 3).T, np.eye(3))
    array = labels.array  # (z, y, x) = nibabel (x, y, z) transposed
    assert array[0, 0, 0] == 1 and array[1, 1, 1] == 1 and array[0, 0, 7] == array[0, 9, 7] == 2


def test_sheared_volumes_are_refused_not_squared(tmp_path):
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[0, 1] = 0.6  # over 20 degrees: not a rounding problem
    nibabel.Nifti1Image(np.zeros((10, 10, 10), np.int16), affine).to_filename(str(tmp_path / "ct.nii.gz"))
    with pytest.raises(DccsegError, match="off square"):
        read_image(tmp_path / "ct.nii.gz", require_ct=False)


def test_the_body_split_never_leaks_a_test_body_into_training():
    assert not set(BODY_SPLIT["train"]) & set(BODY_SPLIT["test"])
    assert set(BODY_SPLIT["train"]) | set(BODY_SPLIT["test"]) == set(BUNDLED)
    assert {"s0009"} <= set(BODY_SPLIT["test"]) and len(BODY_SPLIT["test"]) >= 2
    assert _template_names("training-bodies") == list(BODY_SPLIT["train"])


def test_z_ranges_stay_inside_the_volume_and_slabs_are_thin():
    rng = np.random.default_rng(0)
    slab_only = FieldOfViewSettings(cut_inside_organs=0.0, liver_centred=0.0, slab=1.0)
    for _ in range(200):
        zs = choose_z_range(100, (20, 80), (30, 60), 3.0, rng)
        assert 0 <= zs.start < zs.stop <= 100 and zs.stop - zs.start >= 2
        slab = choose_z_range(100, (20, 80), (30, 60), 3.0, rng, slab_only)
        assert slab.stop - slab.start <= 40


def test_in_plane_crop_clears_labels_outside_the_circle_and_keeps_positions():
    rng = np.random.default_rng(1)
    image = np.zeros((4, 60, 80), np.float32)
    labels = np.ones((4, 60, 80), np.uint8)
    settings = FieldOfViewSettings(crop_in_plane=1.0, crop_mm=(60.0, 60.0), off_centre_mm=0.0, circle=1.0)
    out, out_labels, start = crop_in_plane(image, labels, np.array([3.0, 2.0, 2.0]), rng, settings)
    assert out.shape == (4, 30, 30) and start == (15, 25)
    assert out[0, 0, 0] == AIR_HU and out_labels[0, 0, 0] == 0 and out_labels[0, 15, 15] == 1
    source = load_template("totalseg_example")[0]
    full = _output_geometry(source, 0, 10, (10, 50, 60), np.array([3.0, 3.0, 3.0]))
    cut = _output_geometry(source, 0, 10, (10, 50, 60), np.array([3.0, 3.0, 3.0]), (5, 7), (10, 20, 20))
    matrix = np.asarray(source.direction).reshape(3, 3)
    assert np.allclose(np.asarray(cut.origin), np.asarray(full.origin) + matrix @ np.array([7 * 3.0, 5 * 3.0, 0.0]))


def test_acquisition_is_seeded_and_thick_slices_mix_neighbours():
    image = np.zeros((20, 16, 16), np.float32)
    image[10] = 1000.0
    assert slice_profile(image, 5.0, 1.0)[8, 0, 0] == pytest.approx(200.0)
    assert np.array_equal(slice_profile(image, 0.8, 1.0), image)
    spacing = np.array([1.0, 1.0, 1.0])
    a = acquire(image, spacing, np.random.default_rng(3))
    assert np.array_equal(a, acquire(image, spacing, np.random.default_rng(3)))
    quiet = AcquisitionSettings(low_dose=0.0, noise_hu=(5.0, 5.0), streaks=0.0, sharp_kernel=0.0, smooth_kernel=0.0)
    loud = AcquisitionSettings(low_dose=1.0, low_dose_noise_hu=(60.0, 60.0), streaks=0.0, sharp_kernel=0.0, smooth_kernel=0.0)
    flat = np.zeros((8, 32, 32), np.float32)
    assert acquire(flat, spacing, np.random.default_rng(4), loud).std() > 5 * acquire(flat, spacing, np.random.default_rng(4), quiet).std()


def test_scan_styles_keep_the_frame_and_fill_the_lumen():
    rng = np.random.default_rng(5)
    scan = sample_scan("portal-venous", rng)
    random = randomise_scan(scan, rng)
    for fixed in ("air", "lung", "fat"):
        assert random.of(fixed) == scan.of(fixed)
    assert random.of("liver") != scan.of("liver")
    oral = with_oral_contrast(scan, rng)
    assert ORAL_CONTRAST_HU[0] <= oral.of("bowel_contents") <= ORAL_CONTRAST_HU[1] and oral.of("liver") == scan.of("liver")


def test_synthesis_draws_from_a_v2_body_in_the_random_style():
    template = prepared(*load_template("s0009"))
    ct, organs = synthesize_from_labels(template, phase="arterial", seed=2, output_spacing=(6.0, 6.0, 6.0), style="random")
    assert ct.same_grid(organs) and {6, 8} <= set(np.unique(organs.array))
    with pytest.raises(DccsegError, match="style"):
        synthesize_from_labels(template, seed=2, output_spacing=(6.0, 6.0, 6.0), style="cartoon")


def test_synthesis_with_pathology_can_remove_an_organ():
    from dccseg.phantoms.pathology import PathologySettings

    template = prepared(*load_template("s0009"))
    splenectomy = PathologySettings(lesion_probability=0.0, mass_probability=0.0, enlarge_probability=0.0, shrink_probability=0.0,
                                    removal_probability=1.0, removal_organs=("spleen",))
    _, organs = synthesize_from_labels(template, phase="portal-venous", seed=4, output_spacing=(6.0, 6.0, 6.0), field_of_view=None, pathology=splenectomy)
    _, healthy = synthesize_from_labels(template, phase="portal-venous", seed=4, output_spacing=(6.0, 6.0, 6.0), field_of_view=None)
    assert (healthy.array == 1).any() and not (organs.array == 1).any() and (organs.array == 6).any()
