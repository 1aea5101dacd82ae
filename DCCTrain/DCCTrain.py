"""DCCTrain: curate corrected cases into a dataset and retrain the model in a detached background process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

MODULE_DIR = Path(__file__).resolve().parent


class DCCTrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "DCC Train"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["DCCSegment"]
        self.parent.contributors = ["DCC Segment developers"]
        self.parent.helpText = (
            "Add corrected segmentations to a training dataset (with contrast phase, reviewer and time; existing cases are "
            "never overwritten without asking) and retrain the DCC Segment model in the background. Training survives "
            "closing Slicer; progress, loss and Dice are plotted live. The new model version appears in DCC Segment."
        )
        self.parent.acknowledgementText = "Organ-wise dynamic contrast correlation (DCC) contrastive pretraining."


class DCCTrainWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        from DCCTrainLib.train_panel import TrainPanel

        self.logic = DCCTrainLogic()
        self.panel = TrainPanel(self.layout, self.logic)
        self.layout.addStretch(1)

    def cleanup(self):
        self.panel.cleanup()


class DCCTrainLogic(ScriptedLoadableModuleLogic):
    """Facade over DCCTrainLib (and the shared DCCSegmentLib) for the widget, the self-test and scripts."""

    module_dir = MODULE_DIR

    def ensure_ready(self, ask: bool = True) -> bool:
        from DCCSegmentLib.install import ensure_engine

        return ensure_engine(MODULE_DIR, ask=ask)

    def engine(self):
        from DCCSegmentLib.slicer_io import slicer_engine

        return slicer_engine()

    def match_segments(self, segmentation_node):
        """Organ id for each segment (label None: not in the organ table, will be skipped)."""
        from DCCSegmentLib.organ_table import load_organ_table, map_segments
        from DCCSegmentLib.slicer_io import segment_descriptions

        return map_segments(segment_descriptions(segmentation_node), load_organ_table())

    def export_case(self, volume_node, segmentation_node, matches):
        """Write the volume and an organ-id labelmap of the matched segments; returns (image, label) paths."""
        from DCCSegmentLib.slicer_io import new_work_dir, remove_work_dir, write_organ_labelmap, write_volume

        if not any(m.label is not None for m in matches):
            raise ValueError("none of the segments is an organ of the organ table; name them like 'liver' or 'right kidney'")
        work = new_work_dir()
        image, label = work / "image.nrrd", work / "label.nrrd"
        try:
            write_volume(volume_node, image)
            write_organ_labelmap(segmentation_node, volume_node, matches, label)
        except RuntimeError:
            remove_work_dir(work)
            raise
        return image, label

    def discard_export(self, image):
        """Delete the folder ``export_case`` wrote (the engine has copied what it needed into the dataset)."""
        from DCCSegmentLib.slicer_io import remove_work_dir

        remove_work_dir(image.parent)

    def guess_phase(self, image, label):
        from DCCTrainLib.dataset_client import guess_phase

        return guess_phase(self.engine(), image, label)

    def add_case(self, case, replace=False):
        """Add through the engine; raises DCCTrainLib.dataset_client.CaseExists unless ``replace``."""
        from DCCTrainLib.dataset_client import add_case

        return add_case(self.engine(), case, replace=replace)

    def case_rows(self, dataset: Path):
        from DCCTrainLib.dataset_client import case_rows, validate

        report = validate(self.engine(), dataset) if (dataset / "dataset.json").is_file() else None
        return case_rows(dataset, report)

    def start_training(self, parameters):
        from DCCTrainLib.runs import launch, new_run_dir

        return launch(self.engine(), parameters, new_run_dir(parameters.dataset))

    def resume_training(self, record):
        from DCCTrainLib.runs import launch

        return launch(self.engine(), record.parameters, record.run_dir, resume=True)

    def stop_training(self, record):
        from DCCTrainLib.runs import stop

        stop(record)


class DCCTrainTest(ScriptedLoadableModuleTest):
    """Whole flow in Slicer: phantoms -> Add case (never overwriting) -> a short detached training run."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_add_cases_and_train()

    def test_add_cases_and_train(self):
        from DCCSegment import load_phantom
        from DCCTrainLib.dataset_client import CaseExists, NewCase
        from DCCTrainLib.run_state import MetricsReader, read_status
        from DCCTrainLib.train_parameters import TrainParameters

        logic = DCCTrainLogic()
        self.assertTrue(logic.ensure_ready(ask=False), "the engine could not be installed")
        dataset = Path(slicer.util.tempDirectory(key="DCCTrainTest")) / "dataset"
        for seed in (0, 1, 2):
            volume, reference = load_phantom(logic.engine(), seed)
            segmentation = slicer.util.loadSegmentation(str(reference))
            matches = logic.match_segments(segmentation)
            self.assertEqual(sorted(m.label for m in matches), list(range(1, 14)))
            image, label = logic.export_case(volume, segmentation, matches)
            case = NewCase(dataset, f"phantom{seed}", image, label, "portal-venous", reviewer="self-test")
            logic.add_case(case)
        with self.assertRaises(CaseExists):
            logic.add_case(case)
        logic.discard_export(case.image)
        self.assertFalse(case.image.parent.exists())
        record = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
        self.assertEqual(sorted(c["id"] for c in record["cases"]), ["phantom0", "phantom1", "phantom2"])
        self.assertTrue(all(r.status.startswith("ok") for r in logic.case_rows(dataset)))

        run, proc = logic.start_training(TrainParameters(dataset, stage="coarse", epochs=1, device="cpu", config="tiny"))
        deadline = time.monotonic() + 1200
        status = None
        while time.monotonic() < deadline and (status is None or not status.finished):
            slicer.app.processEvents()
            time.sleep(1.0)
            status = read_status(run.run_dir)
        self.assertIsNotNone(status, f"no status.json; see {run.log_path}")
        self.assertEqual(status.state, "finished", f"{status.line()}; see {run.log_path}")
        self.assertGreaterEqual(len(MetricsReader(run.run_dir).read_new()), 1)
        self.check_stop_reaches_the_trainer(logic, dataset)
        self.delayDisplay("DCCTrain self-test passed")

    def check_stop_reaches_the_trainer(self, logic, dataset):
        """Through PythonSlicer (a launcher) Stop must stop the trainer itself, and Resume wait for it."""
        from DCCTrainLib.run_state import read_status
        from DCCTrainLib.train_parameters import TrainParameters

        run, proc = logic.start_training(TrainParameters(dataset, stage="coarse", epochs=50, device="cpu", config="tiny"))
        deadline = time.monotonic() + 300
        while run.engine_pid() is None and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.5)
        self.assertIsNotNone(run.engine_pid(), f"the trainer wrote no pid; see {run.log_path}")
        self.assertTrue(run.is_alive())
        with self.assertRaises(RuntimeError):
            logic.resume_training(run)
        logic.stop_training(run)
        deadline = time.monotonic() + 600
        while run.is_alive() and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(1.0)
        self.assertFalse(run.is_alive(), f"the trainer did not stop; see {run.log_path}")
        self.assertEqual(read_status(run.run_dir).state, "stopped")
        if os.name != "nt":
            self.assertEqual(proc.wait(timeout=10), 130, "the launcher must exit with the stopped trainer's status, not die of SIGTERM")
