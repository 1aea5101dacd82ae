"""DCCSegmentLib.slicer_io against a stub of Slicer: what it asks of the scene when it writes, loads and cleans up.

The stub records calls; the real scene behaviour is checked by the Slicer self-tests (DCCSegmentTest).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "DCCSegment"))


class Recorder:
    """A stand-in MRML object: answers the getters it was given and records every other call."""

    def __init__(self, name: str = "", **answers) -> None:
        self.name = name
        self.answers = answers
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)

        def method(*args):
            self.calls.append((attribute, args))
            return self.answers.get(attribute)

        return method

    def called(self, attribute: str) -> list[tuple]:
        return [args for name, args in self.calls if name == attribute]


class Image:
    def __init__(self, points: int, scalars: bool = True) -> None:
        self.points, self.scalars = points, scalars

    def GetNumberOfPoints(self):
        return self.points

    def GetPointData(self):
        return types.SimpleNamespace(GetScalars=lambda: object() if self.scalars else None)


@pytest.fixture
def slicer_io(monkeypatch, tmp_path):
    """``slicer_io`` imported against stub ``slicer`` and ``vtk`` modules (both removed again afterwards)."""
    stub = types.ModuleType("slicer")
    stub.app = types.SimpleNamespace(temporaryPath=str(tmp_path / "slicer-temp"))
    stub.storages = []

    def storage_node():
        node = Recorder("storage", WriteData=True)
        stub.storages.append(node)
        return node

    stub.vtkMRMLVolumeArchetypeStorageNode = storage_node
    stub.mrmlScene = Recorder("scene", GenerateUniqueName="CT organs")
    stub.vtkMRMLSubjectHierarchyNode = types.SimpleNamespace(GetSubjectHierarchyNode=lambda scene: Recorder("sh"))
    stub.util = types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "slicer", stub)
    monkeypatch.setitem(sys.modules, "vtk", types.ModuleType("vtk"))
    monkeypatch.delitem(sys.modules, "DCCSegmentLib.slicer_io", raising=False)
    module = importlib.import_module("DCCSegmentLib.slicer_io")
    yield module, stub
    sys.modules.pop("DCCSegmentLib.slicer_io", None)


def test_write_volume_refuses_a_volume_without_image_data(slicer_io, tmp_path):
    io, stub = slicer_io
    for image in (None, Image(0), Image(10, scalars=False)):
        with pytest.raises(RuntimeError, match="has no image data"):
            io.write_volume(Recorder("CT", GetImageData=image, GetName="CT"), tmp_path / "x.nrrd")
    assert stub.storages == [], "WriteData reports success for an empty volume, so it must not be reached"
    io.write_volume(Recorder("CT", GetImageData=Image(10), GetName="CT"), tmp_path / "x.nrrd")
    assert stub.storages[0].called("SetFileName") == [(str(tmp_path / "x.nrrd"),)]


def test_remove_work_dir_deletes_only_folders_it_made(slicer_io, tmp_path):
    io, stub = slicer_io
    temp = Path(stub.app.temporaryPath)
    work, other, user = temp / f"{io.WORK_KEY}2026-01-01_10+00+00.000", temp / "SomethingElse", tmp_path / "DCCSegment-user-data"
    for folder in (work, other, user):
        folder.mkdir(parents=True)
        (folder / "input.nrrd").write_text("x", encoding="utf-8")
    stub.util.tempDirectory = lambda key: str(work)
    assert io.new_work_dir() == work
    for folder in (other, user, work):
        io.remove_work_dir(folder)
    assert not work.exists() and other.exists() and user.exists()


def test_load_result_detaches_the_work_folder_and_follows_the_volume_transform(slicer_io, tmp_path):
    io, stub = slicer_io
    display = Recorder("display")
    storage = Recorder("storage")
    segmentation = Recorder("segmentation", GetStorageNode=storage, GetDisplayNode=display)
    stub.util.loadSegmentation = lambda path: segmentation
    volume = Recorder("CT", GetName="CT", GetTransformNodeID="vtkMRMLLinearTransformNode1")
    assert io.load_result(tmp_path / "organs.seg.nrrd", volume) is segmentation
    assert segmentation.called("SetAndObserveStorageNodeID") == [(None,)] and stub.mrmlScene.called("RemoveNode") == [(storage,)]
    assert segmentation.called("SetAndObserveTransformNodeID") == [("vtkMRMLLinearTransformNode1",)]
    assert segmentation.called("SetReferenceImageGeometryParameterFromVolumeNode") == [(volume,)]
