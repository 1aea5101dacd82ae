"""The Slicer side of the data exchange with the engine: scene nodes <-> files. Needs Slicer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import slicer
import vtk

from .engine import Engine
from .organ_table import SegmentMatch


def slicer_engine() -> Engine:
    """The engine run by Slicer's own Python launcher, in the environment Slicer was started from."""
    name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    python = shutil.which("PythonSlicer") or os.path.join(slicer.app.slicerHome, "bin", name)
    return Engine(python=python, env=slicer.util.startupEnvironment())


WORK_KEY = "DCCSegment"


def new_work_dir() -> Path:
    """A fresh folder in Slicer's temporary directory for one job's files; ``remove_work_dir`` deletes it."""
    return Path(slicer.util.tempDirectory(key=WORK_KEY))


def remove_work_dir(path: Path) -> None:
    """Delete a folder that ``new_work_dir`` made (Slicer never cleans its temporary directory); refuse any other."""
    path = Path(path).resolve()
    if path.parent == Path(slicer.app.temporaryPath).resolve() and path.name.startswith(WORK_KEY) and path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def write_volume(volume_node, path: Path) -> None:
    """Write a volume to ``path`` through a standalone storage node (the node's own storage is left alone).

    The file holds the volume's local geometry (its parent transform is not applied).
    """
    image = volume_node.GetImageData()
    if image is None or image.GetNumberOfPoints() == 0 or image.GetPointData().GetScalars() is None:
        raise RuntimeError(f"{volume_node.GetName()} has no image data to write; load the volume again")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)
    if not storage.WriteData(volume_node):
        raise RuntimeError(f"could not write {volume_node.GetName()} to {path}")


def load_result(path: Path, volume_node):
    """Load an engine ``.seg.nrrd`` as a new segmentation of ``volume_node``: named, placed, shown in 3D.

    The segmentation keeps no storage node pointing into the work folder (Save would write the user's corrections
    there), and it observes the volume's parent transform (the file holds the volume's local geometry).
    """
    segmentation_node = slicer.util.loadSegmentation(str(path))
    if segmentation_node is None:
        raise RuntimeError(f"Slicer could not load the segmentation {path}")
    storage = segmentation_node.GetStorageNode()
    if storage is not None:
        segmentation_node.SetAndObserveStorageNodeID(None)
        slicer.mrmlScene.RemoveNode(storage)
    segmentation_node.SetAndObserveTransformNodeID(volume_node.GetTransformNodeID())
    segmentation_node.SetName(slicer.mrmlScene.GenerateUniqueName(f"{volume_node.GetName()} organs"))
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    place_next_to(segmentation_node, volume_node)
    segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.CreateClosedSurfaceRepresentation()
    segmentation_node.GetDisplayNode().SetVisibility(True)
    return segmentation_node


def place_next_to(node, volume_node) -> None:
    """Put ``node`` under the same subject-hierarchy parent (study) as ``volume_node``."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    parent = sh.GetItemParent(sh.GetItemByDataNode(volume_node))
    sh.SetItemParent(sh.GetItemByDataNode(node), parent)


def segment_descriptions(segmentation_node) -> list[tuple[str, str, str]]:
    """(segment id, name, terminology string) of every segment, in order."""
    segmentation = segmentation_node.GetSegmentation()
    out = []
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        out.append((segment_id, segment.GetName(), _terminology(segment)))
    return out


def _terminology(segment) -> str:
    if hasattr(segment, "GetTerminology"):
        return segment.GetTerminology() or ""
    value = vtk.reference("")
    segment.GetTag(segment.GetTerminologyEntryTagName(), value)
    return str(value)


def write_organ_labelmap(segmentation_node, volume_node, matches: Sequence[SegmentMatch], path: Path) -> None:
    """Write the matched segments as one labelmap with organ ids, on ``volume_node``'s exact grid."""
    labels = np.zeros(slicer.util.arrayFromVolume(volume_node).shape, dtype=np.uint8)
    for match in matches:
        if match.label is None:
            continue
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, match.segment_id, volume_node)
        labels[mask > 0] = match.label
    label_node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "DCCTrain export")
    try:
        label_node.CopyOrientation(volume_node)
        slicer.util.updateVolumeFromArray(label_node, labels)
        write_volume(label_node, path)
    finally:
        slicer.mrmlScene.RemoveNode(label_node)
