"""dccseg.inference.body_size: a child's body is measured by its organs and read on grids scaled to its size; partial scans are not measured."""

import numpy as np
import pytest

from dccseg.errors import DccsegError
from dccseg.inference.body_size import AUTO, MIN_SCALE, parse_body_scale, size_factor, within_range
from dccseg.inference.settings import InferenceSettings
from dccseg.organs import ORGAN_BY_KEY
from dccseg.volume import Volume

REFERENCE = {"liver": 64.0, "spleen": 8.0, "kidney_right": 8.0, "kidney_left": 8.0}  # ml: cubes of 4 and 2 cm


def body(scale: float, cut_liver: bool = False, organs=("liver", "spleen", "kidney_right", "kidney_left")) -> Volume:
    """A coarse label map at 2.5 mm holding cubes of the reference volumes, every edge times ``scale`` (z, y, x)."""
    labels = np.zeros((40, 60, 60), dtype=np.uint8)
    corners = {"liver": (5, 5, 5), "spleen": (5, 40, 40), "kidney_right": (22, 5, 40), "kidney_left": (22, 40, 5)}
    for key in organs:
        edge = max(1, round((40 if key == "liver" else 20) * scale / 2.5))
        z, y, x = corners[key]
        labels[z:z + edge, y:y + edge, x:x + edge] = ORGAN_BY_KEY[key].label
    if cut_liver:
        labels[:5] = np.where(labels[5] == ORGAN_BY_KEY["liver"].label, labels[5], 0)[None]
    return Volume(labels, (2.5, 2.5, 2.5), (0.0, 0.0, 0.0), np.eye(3))


def test_a_childs_size_is_measured_by_its_organs():
    assert size_factor(body(1.0), REFERENCE) == pytest.approx(1.0)
    assert size_factor(body(0.5), REFERENCE) == pytest.approx(0.5)
    assert within_range(0.25) == MIN_SCALE, "never finer than half the card's spacing"
    assert within_range(1.2) == 1.0 and within_range(0.7) == 0.7, "never coarser than the card's"


def test_organs_cut_by_the_scan_and_too_few_organs_measure_nothing():
    cut = body(0.5, cut_liver=True)
    assert size_factor(cut, {"liver": 64.0, "spleen": 8.0}) is None, "the liver touches the first slice: only the spleen is whole"
    assert size_factor(body(0.5, organs=("liver",)), REFERENCE) is None


def test_one_small_organ_does_not_make_a_body_small():
    labels = body(1.0)
    labels.array[labels.array == ORGAN_BY_KEY["kidney_left"].label] = 0
    labels.array[22:25, 40:43, 5:8] = ORGAN_BY_KEY["kidney_left"].label  # an atrophic kidney
    assert size_factor(labels, REFERENCE) == pytest.approx(1.0)


def test_the_body_scale_option_takes_auto_or_a_childs_size():
    assert parse_body_scale("auto") == AUTO and parse_body_scale("0.6") == 0.6 and parse_body_scale("1") == 1.0
    for bad in ("0.3", "1.5", "child", "nan"):
        with pytest.raises(DccsegError, match="--body-scale takes 'auto' or the patient's size"):
            parse_body_scale(bad)


def test_scaled_settings_multiply_the_coarse_and_in_plane_refine_spacings_once():
    from tiny_models import tiny_card

    settings = InferenceSettings.from_card({**tiny_card().preprocessing, "size_reference_ml": REFERENCE})
    assert settings.size_reference_ml == REFERENCE
    half = settings.scaled(0.5)
    assert half.coarse_spacing == (4.0, 4.0, 4.0) and half.refine_spacing == (3.0, 3.0) and half.refine_slice_thickness == settings.refine_slice_thickness
    assert half.size_reference_ml is None


def test_the_card_checks_its_reference_volumes():
    from tiny_models import tiny_card

    from dccseg.store import ModelCard

    card = tiny_card()
    with_sizes = ModelCard.from_dict({**card.to_dict(), "preprocessing": {**card.preprocessing, "size_reference_ml": REFERENCE}})
    assert with_sizes.preprocessing["size_reference_ml"] == REFERENCE
    for bad in ({"liver": 0}, {"stomach": 100.0}, {}, [1400.0]):
        with pytest.raises(DccsegError, match="size_reference_ml must map"):
            ModelCard.from_dict({**card.to_dict(), "preprocessing": {**card.preprocessing, "size_reference_ml": bad}})


def test_reference_volumes_average_whole_organs_only():
    from dccseg.inference.body_size import reference_volumes

    volumes = reference_volumes([body(1.0), body(0.5, cut_liver=True)])
    assert volumes["liver"] == pytest.approx(64.0), "the cut liver is left out"
    assert volumes["spleen"] == pytest.approx((8.0 + 1.0) / 2)
    assert reference_volumes([body(1.0, organs=("liver",))]) == {"liver": pytest.approx(64.0)}


def test_a_labelled_child_is_trained_at_an_adults_size():
    from dccseg.inference.body_size import at_adult_size, labelled_body_scale
    from dccseg.preprocess import resample

    child = body(0.5)
    assert labelled_body_scale(child, AUTO, REFERENCE) == pytest.approx(0.5), "measured by its reference labels"
    assert labelled_body_scale(body(0.5, organs=("liver",)), AUTO, REFERENCE) == 1.0, "too few whole organs: left as it is"
    assert labelled_body_scale(child, 0.7, REFERENCE) == 0.7, "a given size is taken as it is"
    grown = at_adult_size(Volume(child.array, child.spacing, (10.0, -20.0, 5.0), child.direction), 0.5)
    assert grown.spacing == (5.0, 5.0, 5.0) and grown.origin == (20.0, -40.0, 10.0) and grown.array is child.array
    on_card_grid = resample(grown, (5.0, 5.0, 5.0), is_label=True)
    assert size_factor(on_card_grid, REFERENCE) == pytest.approx(1.0), "on the card's grid the child's organs have an adult's size"
