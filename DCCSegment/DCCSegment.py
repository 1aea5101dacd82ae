"""DCCSegment: one click segments 13 abdominal organs of a CT; the work runs in a background engine process."""

from __future__ import annotations

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


class DCCSegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "DCC Segment"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["DCC Segment developers"]
        self.parent.helpText = (
            "Segments spleen, kidneys, gallbladder, esophagus, liver, stomach, aorta, inferior vena cava, portal and "
            "splenic vein, pancreas and adrenal glands on abdominal CT in any contrast phase. Select a CT, a model and "
            "click Segment; the result is a segmentation you can correct in Segment Editor and add to a training set "
            "with the DCC Train module."
        )
        self.parent.acknowledgementText = "Coarse-to-fine segmentation with organ-wise dynamic contrast correlation (DCC) pretraining."


class DCCSegmentWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        from DCCSegmentLib.segment_panel import SegmentPanel

        self.logic = DCCSegmentLogic()
        self.panel = SegmentPanel(self.layout, self.logic)
        self.layout.addStretch(1)

    def enter(self):
        self.panel.on_enter()

    def cleanup(self):
        self.panel.cleanup()


class DCCSegmentLogic(ScriptedLoadableModuleLogic):
    """Facade over DCCSegmentLib for the widget, the self-test and the Python console."""

    module_dir = MODULE_DIR

    def ensure_ready(self, ask: bool = True) -> bool:
        from DCCSegmentLib.install import ensure_engine

        return ensure_engine(MODULE_DIR, ask=ask)

    def engine(self):
        from DCCSegmentLib.slicer_io import slicer_engine

        return slicer_engine()

    def models(self):
        from DCCSegmentLib.models import list_models

        return list_models(self.engine())

    def organ_table(self, card_organs=None):
        from DCCSegmentLib.organ_table import load_organ_table

        return load_organ_table(card_organs)

    def start(self, volume_node, model=None, device="auto", organs=None, fast=False, child=False):
        """Write the volume to a work folder and start ``dccseg segment`` on it; returns the running job."""
        from DCCSegmentLib.parameters import SegmentParameters
        from DCCSegmentLib.slicer_io import new_work_dir, remove_work_dir, write_volume

        work = new_work_dir()
        try:
            write_volume(volume_node, work / "input.nrrd")
        except RuntimeError:
            remove_work_dir(work)
            raise
        parameters = SegmentParameters(work / "input.nrrd", work / "organs.seg.nrrd", model, device, tuple(organs) if organs is not None else None, fast, statistics=True, child=child)
        return self.restart(parameters)

    def restart(self, parameters):
        """Start a job with these parameters (a retry on the CPU or in fast mode reuses the written input)."""
        from DCCSegmentLib.segment_job import SegmentJob

        job = SegmentJob(self.engine(), parameters)
        job.start()
        return job

    def load_result(self, job, volume_node):
        """Load the job's segmentation as a node of ``volume_node``, then delete the job's work folder."""
        from DCCSegmentLib.slicer_io import load_result

        try:
            return load_result(job.parameters.output_path, volume_node)
        finally:
            self.discard(job)

    def discard(self, job):
        """Delete the job's work folder (the CT copy and the engine's output); a retry needs a new ``start``."""
        from DCCSegmentLib.slicer_io import remove_work_dir

        remove_work_dir(job.parameters.input_path.parent)

    def segment(self, volume_node, model=None, device="auto", organs=None, fast=False, timeout_s=1800.0, child=False):
        """Segment and wait (scripts and tests); raise RuntimeError with the engine's advice on failure."""
        job = self.start(volume_node, model, device, organs, fast, child)
        deadline = time.monotonic() + timeout_s
        while True:
            update = job.step()
            if update.finished:
                break
            if time.monotonic() > deadline:
                job.cancel()
                self.discard(job)
                raise RuntimeError(f"segmentation took longer than {timeout_s:.0f} s")
            slicer.app.processEvents()
            time.sleep(0.1)
        if not update.succeeded:
            self.discard(job)
            raise RuntimeError(update.advice.text)
        return self.load_result(job, volume_node)


class DCCSegmentTest(ScriptedLoadableModuleTest):
    """Whole flow in Slicer: procedural phantom -> Segment with the built-in model -> segmentation node."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_phantom()
        self.setUp()
        self.test_result_follows_the_volume_transform()
        self.setUp()
        self.test_child_mode_runs_with_the_built_in_model()

    def test_segment_phantom(self):
        logic = DCCSegmentLogic()
        self.assertTrue(logic.ensure_ready(ask=False), "the engine could not be installed")
        volume = load_phantom(logic.engine(), seed=0)[0]
        work_dirs = work_folders()
        segmentation = logic.segment(volume, device="cpu")
        self.assertEqual(work_folders(), work_dirs, "the job's work folder (a CT copy) must be deleted")
        self.assertIsNone(segmentation.GetStorageNode(), "a storage node would make Save write into the deleted work folder")
        segmentation.AddDefaultStorageNode()
        self.assertFalse(segmentation.GetStorageNode().GetFileName(), "Save must use the folder the user chooses")

        names = {o.name for o in logic.organ_table()}
        segment_names = [segmentation.GetSegmentation().GetNthSegment(i).GetName() for i in range(segmentation.GetSegmentation().GetNumberOfSegments())]
        self.assertGreaterEqual(len(segment_names), 1)
        self.assertLessEqual(len(segment_names), 13)
        self.assertTrue(set(segment_names) <= names, f"unexpected segments {set(segment_names) - names}")
        self.assertEqual(segmentation.GetName(), f"{volume.GetName()} organs")
        role = segmentation.GetReferenceImageGeometryReferenceRole()
        self.assertEqual(segmentation.GetNodeReferenceID(role), volume.GetID())
        first = segmentation.GetSegmentation().GetNthSegmentID(0)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, first, volume)
        self.assertEqual(mask.shape, slicer.util.arrayFromVolume(volume).shape)
        self.assertGreater(int(mask.sum()), 0)
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        self.assertEqual(sh.GetItemParent(sh.GetItemByDataNode(segmentation)), sh.GetItemParent(sh.GetItemByDataNode(volume)))
        self.delayDisplay("DCCSegment self-test passed")

    def test_child_mode_runs_with_the_built_in_model(self):
        """The Child box (``--body-scale auto``): the built-in card holds the organ volumes it measures by, and the result lands on the CT."""
        logic = DCCSegmentLogic()
        self.assertTrue(logic.ensure_ready(ask=False), "the engine could not be installed")
        volume = load_phantom(logic.engine(), seed=2)[0]
        segmentation = logic.segment(volume, device="cpu", child=True)
        first = segmentation.GetSegmentation().GetNthSegmentID(0)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, first, volume)
        self.assertEqual(mask.shape, slicer.util.arrayFromVolume(volume).shape)
        self.assertGreater(int(mask.sum()), 0)
        self.delayDisplay("DCCSegment child-mode self-test passed")

    def test_result_follows_the_volume_transform(self):
        """The engine's file holds the CT's local grid: under a parent transform the result must move with the CT."""
        import shutil

        import numpy as np
        import vtk
        from DCCSegmentLib.slicer_io import load_result, new_work_dir, remove_work_dir

        logic = DCCSegmentLogic()
        self.assertTrue(logic.ensure_ready(ask=False), "the engine could not be installed")
        plain, reference = load_phantom(logic.engine(), seed=1)
        moved = slicer.util.loadVolume(plain.GetStorageNode().GetFileName())
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        matrix = vtk.vtkMatrix4x4()
        matrix.SetElement(0, 3, 40.0)
        matrix.SetElement(2, 3, -30.0)
        transform.SetMatrixTransformToParent(matrix)
        moved.SetAndObserveTransformNodeID(transform.GetID())
        work = new_work_dir()
        results = []
        for volume, name in ((plain, "plain"), (moved, "moved")):
            shutil.copy(reference, work / f"{name}.seg.nrrd")
            results.append(load_result(work / f"{name}.seg.nrrd", volume))
        remove_work_dir(work)
        self.assertEqual(results[1].GetTransformNodeID(), transform.GetID())
        masks = [slicer.util.arrayFromSegmentBinaryLabelmap(r, r.GetSegmentation().GetNthSegmentID(0), v) for r, v in zip(results, (plain, moved))]
        self.assertGreater(int(masks[0].sum()), 0)
        self.assertTrue(np.array_equal(masks[0], masks[1]), "the segmentation of the transformed CT is misplaced")
        self.delayDisplay("DCCSegment transform self-test passed")


def work_folders() -> set:
    """The job work folders now in Slicer's temporary directory."""
    from DCCSegmentLib.slicer_io import WORK_KEY

    return set(Path(slicer.app.temporaryPath).glob(f"{WORK_KEY}*"))


PHANTOM_CODE = (
    "import sys\n"
    "from dccseg.phantoms.procedural import procedural_phantom\n"
    "from dccseg.io import write_image, write_segmentation\n"
    "ct, labels = procedural_phantom((48, 64, 64), seed=int(sys.argv[3]))\n"
    "write_image(ct, sys.argv[1])\n"
    "write_segmentation(labels, sys.argv[2])\n"
)


def load_phantom(engine, seed: int):
    """Make a procedural phantom with the engine, load it; returns (volume node, its reference .seg.nrrd path)."""
    from DCCSegmentLib.slicer_io import new_work_dir

    work = new_work_dir()
    ct_path, label_path = work / f"phantom{seed}.nrrd", work / f"phantom{seed}-reference.seg.nrrd"
    engine.run(engine.python_command(PHANTOM_CODE, ct_path, label_path, str(seed)), timeout=300)
    volume = slicer.util.loadVolume(str(ct_path))
    volume.SetName(f"Phantom {seed}")
    return volume, label_path
