"""The "Label next" box of the DCCTrain panel (Qt widgets); needs Slicer.

Rank ranks the dataset's unlabelled cases in the background (``dccseg dataset rank``, drafts for the top ones);
Load puts the chosen case's CT and its draft into the scene for correction, making the draft first when it has
none. The corrected segmentation is added with "Add current case", which replaces the unlabelled case.
"""

from __future__ import annotations

from collections.abc import Callable

import ctk
import qt
import slicer

from DCCSegmentLib.engine import EngineError

from .label_next import NextCase, drafted_file, next_cases, prefill_call, rank_call

COLUMNS = ("case", "score", "why")


class LabelNextPanel:
    """``dataset()`` gives the current dataset folder, ``model()`` the model to rank with ("" for the default),
    ``ready()`` installs the engine if needed; ``on_loaded(case, volume_node, segmentation_node)`` after a Load."""

    def __init__(self, layout, logic, calls, dataset: Callable, model: Callable, ready: Callable, on_loaded: Callable) -> None:
        self.logic, self.calls = logic, calls
        self.dataset, self.model, self.ready, self.on_loaded = dataset, model, ready, on_loaded
        self.cases: list[NextCase] = []
        self._build(layout)

    def _build(self, layout) -> None:
        box = ctk.ctkCollapsibleButton()
        box.text = "Label next"
        layout.addWidget(box)
        form = qt.QFormLayout(box)
        self.table = qt.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.table.setSelectionMode(qt.QAbstractItemView.SingleSelection)
        self.table.setMinimumHeight(120)
        self.table.setToolTip("The unlabelled cases, those the model is least sure of first: labelling them teaches it most.")
        form.addRow(self.table)
        buttons = qt.QHBoxLayout()
        self.rank_button = qt.QPushButton("Rank unlabelled cases")
        self.rank_button.setToolTip("Segment every unlabelled case once and rank them (minutes per case on a CPU); the top cases get drafts.")
        self.rank_button.connect("clicked()", self.rank)
        self.load_button = qt.QPushButton("Load for correction")
        self.load_button.setToolTip("Load the selected case's CT and the model's draft segmentation, to correct in Segment Editor.")
        self.load_button.connect("clicked()", self._on_load)
        buttons.addWidget(self.rank_button)
        buttons.addWidget(self.load_button)
        form.addRow(buttons)
        self.status = qt.QLabel("")
        self.status.wordWrap = True
        form.addRow(self.status)

    def show_dataset(self) -> None:
        """The last ranking of the current dataset (none yet: an empty list and a hint)."""
        dataset = self.dataset()
        try:
            self.cases = next_cases(dataset) if dataset else []
        except ValueError as exc:
            self.cases, self.status.text = [], str(exc)
        self.table.setRowCount(len(self.cases))
        for row, case in enumerate(self.cases):
            for column, value in enumerate((case.case, case.score_text(), case.reason_text())):
                item = qt.QTableWidgetItem(value)
                item.setToolTip("\n".join(case.reasons) or "no warning signs")
                self.table.setItem(row, column, item)
        if dataset and not self.cases and not self.status.text:
            self.status.text = "Click Rank to find the unlabelled cases worth labelling first."

    def rank(self) -> None:
        dataset = self.dataset()
        if dataset is None or not (dataset / "dataset.json").is_file():
            self.status.text = "Choose a dataset folder with cases first (add CTs without a label to rank them)."
            return
        if not self.ready():
            return
        self.rank_button.enabled = False
        self.status.text = "Ranking the unlabelled cases (one segmentation each)..."
        self.calls.add(rank_call(self.logic.engine(), dataset, self.model()), lambda result: self._on_ranked(dataset, result))

    def _on_ranked(self, dataset, result) -> None:
        self.rank_button.enabled = True
        if result.error is not None:
            self.status.text = ""
            slicer.util.errorDisplay(result.error.message, windowTitle="DCC Train")
            return
        if dataset != self.dataset():
            return
        lines = [line for line in result.stdout.splitlines() if "no unlabelled cases" in line]
        self.status.text = lines[0] if lines else "Ranked: select a case and click Load for correction."
        self.show_dataset()

    def _on_load(self) -> None:
        row = self.table.currentRow()
        if row < 0 or row >= len(self.cases):
            slicer.util.warningDisplay("Select a case in the Label next list first.")
            return
        case = self.cases[row]
        if case.draft is not None and case.draft.is_file():
            self._load(case, case.draft)
            return
        if not self.ready():
            return
        self.load_button.enabled = False
        self.status.text = f"Making a draft of {case.case}..."
        dataset = self.dataset()
        self.calls.add(prefill_call(self.logic.engine(), dataset, case.case, self.model()), lambda result: self._on_drafted(case, dataset, result))

    def _on_drafted(self, case: NextCase, dataset, result) -> None:
        self.load_button.enabled = True
        try:
            draft = drafted_file(result, dataset)
        except (EngineError, ValueError) as exc:
            self.status.text = ""
            slicer.util.errorDisplay(getattr(exc, "message", str(exc)), windowTitle="DCC Train")
            return
        self.show_dataset()
        self._load(case, draft)

    def _load(self, case: NextCase, draft) -> None:
        from DCCSegmentLib.slicer_io import load_result

        with slicer.util.WaitCursor():
            volume = slicer.util.loadVolume(str(case.image), {"name": case.case, "show": True})
            storage = volume.GetStorageNode()  # Save must never write into the dataset: the case's files are the engine's
            if storage is not None:
                volume.SetAndObserveStorageNodeID(None)
                slicer.mrmlScene.RemoveNode(storage)
            segmentation = load_result(draft, volume)
            segmentation.SetName(f"{case.case} draft")
        self.status.text = (f"Correct the draft of {case.case} in Segment Editor, then click Add current case: it replaces the unlabelled "
                            "case (the CT and the draft are kept under replaced/).")
        self.on_loaded(case, volume, segmentation)
