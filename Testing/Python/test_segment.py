"""segment_volume and ``dccseg segment`` end to end with a tiny untrained model on a small phantom."""

import json

import numpy as np
import pytest
import torch
import slicerio
import SimpleITK as sitk
from tiny_models import register_tiny_model

from dccseg.cli import main
from dccseg.errors import DccsegError
from dccseg.inference import segment_volume
from dccseg.io import read_labelmap, write_image
from dccseg.organs import ORGAN_BY_KEY
from dccseg.phantoms.procedural import procedural_phantom
from dccseg.store import ModelCard, ModelStore, load_model
from dccseg.volume import Volume

OBLIQUE_FLIPPED = tuple((np.array([[0.0, -1.0, 0.0], [np.cos(0.3), 0.0, -np.sin(0.3)], [np.sin(0.3), 0.0, np.cos(0.3)]])).reshape(-1))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return register_tiny_model(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def model(store):
    return load_model("tiny-seg", "cpu", store=ModelStore(store))


@pytest.fixture(scope="module")
def phantom():
    ct, _ = procedural_phantom((24, 32, 36), seed=1)
    return Volume(ct.array, ct.spacing, (12.0, -30.0, 7.5), OBLIQUE_FLIPPED)


@pytest.fixture(scope="module")
def full_run(model, phantom):
    timings = {}
    return segment_volume(phantom, model, timings=timings), timings


def test_segment_volume_returns_labels_on_the_exact_input_grid(model, phantom, full_run):
    labels, timings = full_run
    assert labels.shape == phantom.shape and labels.array.dtype == np.uint8
    assert labels.spacing == phantom.spacing and labels.origin == phantom.origin and labels.direction == phantom.direction
    present = set(np.unique(labels.array).tolist()) - {0}
    assert present and present <= set(range(1, 14))
    assert set(timings) == {"coarse", "refine", "fuse"}
    assert np.array_equal(segment_volume(phantom, model).array, labels.array)  # deterministic


def test_the_mirror_check_reads_the_scan_mirrored_and_reports_through_findings(model, phantom, full_run, monkeypatch):
    import dccseg.inference.orientation as orientation
    import dccseg.inference.pipeline as pipeline

    readings, plain_scores = [], pipeline._coarse_scores
    monkeypatch.setattr(pipeline, "_coarse_scores", lambda small, *args, **kw: readings.append(small.array.copy()) or plain_scores(small, *args, **kw))
    monkeypatch.setattr(orientation, "MIRROR_RATIO", 0.0)  # any reading counts as mirrored: the flag must travel to the caller
    monkeypatch.setattr(orientation, "MIN_CONFIDENT_ML", -1.0)
    from dccseg.inference.findings import CoarseFindings

    findings = CoarseFindings()
    labels = segment_volume(phantom, model, findings=findings)
    assert [f["check"] for f in findings.flags] == ["mirrored"] and np.array_equal(labels.array, full_run[0].array)  # a flag never changes the result
    assert len(readings) == 2 and np.array_equal(readings[1], readings[0][:, :, ::-1])  # the coarse grid, then its left-right mirror
    assert findings.confidence and set(findings.confidence) <= set(range(1, 14)) and all(0.0 < c <= 1.0 for c in findings.confidence.values())


def test_organ_subset_only_outputs_those_organs(model, phantom, full_run):
    full = full_run[0]
    liver, spleen = ORGAN_BY_KEY["liver"], ORGAN_BY_KEY["spleen"]
    subset = segment_volume(phantom, model, organs=[liver, spleen], fast=True)
    assert set(np.unique(subset.array).tolist()) <= {0, liver.label, spleen.label}
    assert set(np.unique(full.array).tolist()) - {0, liver.label, spleen.label}, "the full run should find other organs too"


def test_cli_writes_seg_nrrd_and_nifti(store, monkeypatch, phantom, tmp_path, capsys):
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(store))
    source = tmp_path / "ct.nii.gz"
    write_image(phantom, source)
    seg = tmp_path / "out" / "ct.seg.nrrd"
    assert main(["segment", str(source), str(seg), "--model", "tiny-seg", "--device", "cpu", "--progress", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stages = [r["stage"] for r in records if r["fraction"] is not None]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == ["load", "coarse", "refine", "fuse", "write"]
    timing = [r for r in records if "timings" in r]
    assert timing and set(timing[-1]["timings"]) == {"load", "coarse", "refine", "fuse", "write"}
    segmentation = slicerio.read_segmentation(str(seg))
    assert len(segmentation["segments"]) == 13
    nifti = tmp_path / "ct_labels.nii.gz"
    assert main(["segment", str(source), str(nifti), "--model", "tiny-seg", "--device", "cpu", "--organs", "liver,spleen", "--progress", "none"]) == 0
    labels = read_labelmap(nifti)
    assert labels.same_grid(phantom, tolerance=1e-5)
    assert set(np.unique(labels.array).tolist()) <= {0, 1, 6}
    image = sitk.ReadImage(str(nifti))
    assert image.GetPixelID() == sitk.sitkUInt8


def test_cli_segments_a_folder_of_cts(store, monkeypatch, phantom, tmp_path):
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(store))
    folder = tmp_path / "cts"
    folder.mkdir()
    write_image(phantom, folder / "a.nii.gz")
    write_image(phantom.with_array(phantom.array[::-1].copy()), folder / "b.nrrd")
    out = tmp_path / "labels"
    assert main(["segment", str(folder), str(out), "--model", "tiny-seg", "--device", "cpu", "--fast", "--format", ".nii.gz", "--progress", "none"]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["a.nii.gz", "b.nii.gz"]


@pytest.mark.parametrize("problem", ["not_an_image", "two_d", "unknown_model", "unwritable", "bad_suffix", "exists"])
def test_bad_input_gives_one_line_error_and_no_output(store, monkeypatch, phantom, tmp_path, capsys, problem):
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(store))
    source = tmp_path / "ct.nii.gz"
    write_image(phantom, source)
    output = tmp_path / "out.seg.nrrd"
    model = "tiny-seg"
    if problem == "not_an_image":
        source = tmp_path / "text.nii.gz"
        source.write_text("not an image", encoding="utf-8")
    elif problem == "two_d":
        source = tmp_path / "slice.nii.gz"
        sitk.WriteImage(sitk.Image(32, 32, sitk.sitkInt16), str(source))
    elif problem == "unknown_model":
        model = "no-such-model"
    elif problem == "unwritable":
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where a folder should be", encoding="utf-8")
        output = blocker / "out.seg.nrrd"
    elif problem == "bad_suffix":
        output = tmp_path / "out.png"
    elif problem == "exists":
        output.write_text("curated", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["segment", str(source), str(output), "--model", model, "--device", "cpu", "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("dccseg: error:") and "Traceback" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if problem == "exists":
        assert output.read_text(encoding="utf-8") == "curated"



def test_a_card_fusion_trust_reaches_the_fusion_with_the_coarse_masks(tmp_path, phantom, monkeypatch):
    from tiny_models import tiny_card

    import dccseg.inference.pipeline as pipeline

    card = tiny_card(name="tiny-trust")
    trusting = load_model("tiny-trust", "cpu", store=ModelStore(register_tiny_model(tmp_path, ModelCard.from_dict({**card.to_dict(), "preprocessing": {**card.preprocessing, "fusion_trust": 0.3}}))))
    calls = []
    plain_fuse = pipeline.fuse
    monkeypatch.setattr(pipeline, "fuse", lambda shape, accumulators, prior=None, trust=None: calls.append((prior, trust)) or plain_fuse(shape, accumulators, prior, trust))
    segment_volume(phantom, trusting)
    prior, trust = calls[-1]
    assert trust == 0.3 and prior is not None and prior.dtype == torch.uint8 and set(torch.unique(prior).tolist()) - {0}


def test_a_card_coarse_scales_average_the_coarse_network_over_grids(tmp_path, phantom, monkeypatch):
    from tiny_models import tiny_card

    import dccseg.inference.pipeline as pipeline
    from dccseg.inference.settings import InferenceSettings
    from dccseg.preprocess import to_canonical

    card = tiny_card(name="tiny-scales")
    scaled = load_model("tiny-scales", "cpu", store=ModelStore(register_tiny_model(tmp_path, ModelCard.from_dict({**card.to_dict(), "preprocessing": {**card.preprocessing, "coarse_scales": [0.75, 1.0]}}))))
    canonical = to_canonical(phantom)[0]
    settings = InferenceSettings.from_card(scaled.card.preprocessing)
    spacings, plain_scores = [], pipeline._coarse_scores
    monkeypatch.setattr(pipeline, "_coarse_scores", lambda small, *args, **kw: spacings.append(small.spacing) or plain_scores(small, *args, **kw))
    labels = pipeline.coarse_labels(canonical, scaled, settings)
    base = tuple(settings.coarse_spacing)
    assert spacings == [tuple(0.75 * s for s in base), base] and labels.spacing == base and labels.array.dtype == np.uint8
    one = pipeline.coarse_labels(canonical, scaled, InferenceSettings.from_card({**scaled.card.preprocessing, "coarse_scales": [1.0]}))
    logits = pipeline._coarse_scores(pipeline.resample(canonical, base, is_label=False), scaled, settings, pipeline.QUIET, softmax=False)
    assert one.array.shape == labels.array.shape and np.array_equal(one.array, logits.argmax(0).numpy())  # one scale: the plain argmax, as before


def test_a_childs_body_is_read_on_grids_scaled_to_its_size(tmp_path, phantom, model, monkeypatch):
    import io
    import json

    from tiny_models import tiny_card

    import dccseg.inference.pipeline as pipeline
    from dccseg.progress import Progress

    card = tiny_card(name="tiny-sizes")
    sizes = {"liver": 1400.0, "spleen": 300.0, "kidney_right": 120.0, "kidney_left": 110.0}
    sized = load_model("tiny-sizes", "cpu", store=ModelStore(register_tiny_model(tmp_path, ModelCard.from_dict({**card.to_dict(), "preprocessing": {**card.preprocessing, "size_reference_ml": sizes}}))))
    measured, spacings, refine_spacings = [], [], []
    monkeypatch.setattr(pipeline, "size_factor", lambda coarse, reference: measured.append(reference) or 0.3)
    plain_coarse, plain_image = pipeline.coarse_labels, pipeline.RefineImage.of
    monkeypatch.setattr(pipeline, "coarse_labels", lambda canonical, model, settings, progress=pipeline.QUIET, findings=None: spacings.append(settings.coarse_spacing) or plain_coarse(canonical, model, settings, progress, findings))
    monkeypatch.setattr(pipeline.RefineImage, "of", classmethod(lambda cls, canonical, settings: refine_spacings.append(settings.refine_spacing) or plain_image(canonical, settings)))
    stream = io.StringIO()
    labels = segment_volume(phantom, sized, progress=Progress("json", stream), body_scale="auto")
    assert measured == [sizes], "measured once, on the first pass"
    assert spacings == [(8.0, 8.0, 8.0), (4.0, 4.0, 4.0)] and refine_spacings == [(3.0, 3.0)]
    assert labels.same_grid(phantom, 1e-6) and labels.array.dtype == np.uint8
    assert any("body scale 0.50: its organs measure 0.30" in json.loads(line)["message"] for line in stream.getvalue().splitlines()), "never finer than half the card's grids"
    del spacings[:], refine_spacings[:]
    segment_volume(phantom, sized, body_scale=0.75)
    assert spacings == [(6.0, 6.0, 6.0)] and refine_spacings == [(4.5, 4.5)], "a given size needs no first pass"
    del spacings[:], refine_spacings[:]
    segment_volume(phantom, sized)
    assert spacings == [(8.0, 8.0, 8.0)] and refine_spacings == [(6.0, 6.0)] and len(measured) == 1, "adults: the card's grids, nothing measured"
    with pytest.raises(DccsegError, match="has no organ volumes in its card"):
        segment_volume(phantom, model, body_scale="auto")


def test_onto_grid_interpolates_like_resampling_the_volume():
    from dccseg.inference.pipeline import onto_grid
    from dccseg.preprocess import resample, resample_like

    ramp = np.add.outer(np.add.outer(np.arange(20.0), 2 * np.arange(24.0)), 3 * np.arange(28.0)).astype(np.float32)
    volume = Volume(ramp, (1.0, 1.5, 2.0), (4.0, -3.0, 9.0), OBLIQUE_FLIPPED)
    grid, other = resample(volume, (5.0, 5.0, 5.0), is_label=False), resample(volume, (4.0, 4.0, 4.0), is_label=False)
    moved = onto_grid(torch.from_numpy(other.array)[None], other, grid)[0].numpy()
    expected = resample_like(other, grid, is_label=False).array
    inside = tuple(slice(0, n - 1) for n in grid.shape)  # the last plane lies beyond the other grid: clamped here, background there
    assert moved.shape == grid.shape and np.allclose(moved[inside], expected[inside], atol=1e-4)
