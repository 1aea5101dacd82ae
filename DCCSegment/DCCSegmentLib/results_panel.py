"""The Results section of DCCSegment (Qt widgets; needs Slicer): organ statistics, clickable flags, Export DICOM SEG."""

from __future__ import annotations

import shutil
from pathlib import Path

import ctk
import qt
import slicer

from .engine import EngineError
from .organ_table import load_organ_table, map_segments
from .results import CaseResults, dicom_instance_uids, dicom_seg_arguments, load_case_results, statistics_path, summary_text
from .slicer_io import new_work_dir, segment_descriptions, write_organ_labelmap

COLUMNS = ("organ", "volume (ml)", "HU mean", "HU core median", "pieces", "model confidence")


class ResultsPanel:
    """Shows the last result's statistics and flags; a click on a flag centres the views on that organ."""

    def __init__(self, layout, logic) -> None:
        self.logic = logic
        self.segmentation = None
        self.volume = None
        self.results: CaseResults | None = None
        box = ctk.ctkCollapsibleButton()
        box.text = "Results"
        layout.addWidget(box)
        form = qt.QVBoxLayout(box)
        self.summary = qt.QLabel("Segment a CT to see organ volumes, HU and plausibility checks here.")
        self.summary.wordWrap = True
        form.addWidget(self.summary)
        self.table = qt.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        self.table.setMaximumHeight(220)
        form.addWidget(self.table)
        self.flags = qt.QListWidget()
        self.flags.setMaximumHeight(110)
        self.flags.setToolTip("Plausibility hints: click one to centre the slice views on that organ. A hint never changes the result.")
        self.flags.connect("itemClicked(QListWidgetItem*)", self._jump_to_flag)
        form.addWidget(self.flags)
        self.export_button = qt.QPushButton("Export DICOM SEG")
        self.export_button.setToolTip("Write the segmentation (with your edits) as a DICOM SEG of the source series and add it to the DICOM database.")
        self.export_button.enabled = False
        self.export_button.connect("clicked()", self._export_dicom_seg)
        form.addWidget(self.export_button)

    @staticmethod
    def read(output_path: Path):
        """The engine's ``.stats.json`` next to ``output_path``, or the line to show when there is none.

        Read it before the result is loaded: loading deletes the job's work folder.
        """
        try:
            return load_case_results(statistics_path(output_path))
        except (OSError, ValueError, KeyError) as exc:
            return f"No statistics for this result ({exc})."

    def show(self, results, segmentation_node, volume_node) -> None:
        """Fill the section from what ``read`` returned."""
        self.segmentation, self.volume = segmentation_node, volume_node
        if isinstance(results, str):
            self.summary.text = results
            return
        self.results = results
        self.table.setRowCount(len(self.results.rows))
        for row, organ in enumerate(self.results.rows):
            core = "-" if organ.hu_core_median is None else f"{organ.hu_core_median:.0f}"
            confidence = "-" if organ.confidence is None else f"{organ.confidence:.2f}"
            for column, text in enumerate((organ.name, f"{organ.volume_ml:.1f}", f"{organ.hu_mean:.0f}", core, str(organ.pieces), confidence)):
                self.table.setItem(row, column, qt.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.flags.clear()
        for flag in self.results.flags:
            item = qt.QListWidgetItem(f"{flag.check}: {flag.message}")
            item.setData(qt.Qt.UserRole, flag.organ_name)
            self.flags.addItem(item)
        self.summary.text = summary_text(self.results)
        self.export_button.enabled = bool(dicom_instance_uids(volume_node.GetAttribute("DICOM.instanceUIDs")))

    def _jump_to_flag(self, item) -> None:
        name = item.data(qt.Qt.UserRole)
        segment_id = self.segmentation.GetSegmentation().GetSegmentIdBySegmentName(name) if name and self.segmentation else ""
        if not segment_id:
            return
        center = self.segmentation.GetSegmentCenterRAS(segment_id)
        slicer.modules.markups.logic().JumpSlicesToLocation(center[0], center[1], center[2], True)

    def _source_series(self, folder: Path) -> Path:
        """Copy the volume's DICOM files from the database into ``folder`` (the engine wants one folder per series)."""
        folder.mkdir(parents=True, exist_ok=True)
        for uid in dicom_instance_uids(self.volume.GetAttribute("DICOM.instanceUIDs")):
            source = slicer.dicomDatabase.fileForInstance(uid)
            if not source:
                raise RuntimeError(f"the DICOM database no longer holds instance {uid}; reload the series")
            shutil.copy2(source, folder / f"{uid}.dcm")
        return folder

    def _export_dicom_seg(self) -> None:
        work = new_work_dir()
        output = work / "seg" / f"{self.segmentation.GetName()}.dcm".replace(" ", "_")
        try:
            with slicer.util.WaitCursor():
                series = self._source_series(work / "series")
                matches = map_segments(segment_descriptions(self.segmentation), load_organ_table())
                write_organ_labelmap(self.segmentation, self.volume, matches, work / "labels.nrrd")
                engine = self.logic.engine()
                model = self.results.model if self.results else None
                engine.run(engine.command(*dicom_seg_arguments(series, work / "labels.nrrd", output, model)), timeout=600)
                from DICOMLib import DICOMUtils

                DICOMUtils.importDicom(str(output.parent), slicer.dicomDatabase)
        except (EngineError, OSError, RuntimeError) as exc:
            slicer.util.errorDisplay(f"Could not export the DICOM SEG: {exc}", windowTitle="DCC Segment")
            return
        slicer.util.infoDisplay(f"Saved {output} and added it to the DICOM database; send it to PACS from the DICOM module.", windowTitle="DCC Segment")
