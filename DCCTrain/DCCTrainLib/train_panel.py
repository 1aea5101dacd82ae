"""The DCCTrain panel (Qt widgets); needs Slicer. Runs are files on disk, so the panel can be closed and reopened."""

from __future__ import annotations

from pathlib import Path

import ctk
import qt
import slicer

from DCCSegmentLib.engine import EngineError

from .dataset_client import CaseExists, NewCase, suggest_case_id
from .run_state import MetricsReader, read_status, series
from .runs import list_runs
from .train_parameters import CONFIGS, DEVICES, LOSSES, STAGES, TrainParameters

SETTINGS = "DCCTrain"
MODELS_CHANGED_KEY = "DCCSegment/modelsChanged"
PHASES = ("non-contrast", "arterial", "portal-venous", "delayed", "unknown")
GUESS = "guess from the image"
POLL_MS = 2000
COLUMNS = ("id", "phase", "reviewer", "added", "status")


class TrainPanel:
    def __init__(self, layout, logic) -> None:
        self.logic = logic
        self.run = None
        self.process = None
        self.metrics = None
        self.plot = None
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self._poll)
        self._build(layout)
        dataset = qt.QSettings().value(f"{SETTINGS}/dataset", "")
        if dataset:
            self.dataset_path.currentPath = dataset

    # --- layout ---------------------------------------------------------------------------
    def _build(self, layout) -> None:
        data_box = ctk.ctkCollapsibleButton()
        data_box.text = "Dataset"
        layout.addWidget(data_box)
        data_form = qt.QFormLayout(data_box)
        self.dataset_path = ctk.ctkPathLineEdit()
        self.dataset_path.filters = ctk.ctkPathLineEdit.Dirs
        self.dataset_path.setToolTip("A dataset folder, or a new/empty folder to start one.")
        self.dataset_path.connect("currentPathChanged(QString)", self._on_dataset_changed)
        data_form.addRow("Folder:", self.dataset_path)
        self.case_table = qt.QTableWidget(0, len(COLUMNS))
        self.case_table.setHorizontalHeaderLabels(list(COLUMNS))
        self.case_table.horizontalHeader().setStretchLastSection(True)
        self.case_table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        self.case_table.setMinimumHeight(140)
        data_form.addRow(self.case_table)
        check = qt.QPushButton("Check dataset")
        check.connect("clicked()", self.refresh_cases)
        data_form.addRow(check)

        add_box = ctk.ctkCollapsibleButton()
        add_box.text = "Add current case"
        layout.addWidget(add_box)
        add_form = qt.QFormLayout(add_box)
        self.volume_selector = self._node_selector("vtkMRMLScalarVolumeNode", "The CT of the case.")
        self.volume_selector.connect("currentNodeChanged(vtkMRMLNode*)", self._on_volume_changed)
        add_form.addRow("CT volume:", self.volume_selector)
        self.segmentation_selector = self._node_selector("vtkMRMLSegmentationNode", "The corrected organ segmentation.")
        add_form.addRow("Segmentation:", self.segmentation_selector)
        self.case_id = qt.QLineEdit()
        add_form.addRow("Case id:", self.case_id)
        self.phase_combo = qt.QComboBox()
        self.phase_combo.addItems([GUESS, *PHASES])
        add_form.addRow("Contrast phase:", self.phase_combo)
        self.reviewer = qt.QLineEdit(qt.QSettings().value(f"{SETTINGS}/reviewer", ""))
        add_form.addRow("Reviewer:", self.reviewer)
        self.notes = qt.QLineEdit()
        add_form.addRow("Notes:", self.notes)
        add_button = qt.QPushButton("Add current case")
        add_button.connect("clicked()", self._on_add_case)
        add_form.addRow(add_button)

        train_box = ctk.ctkCollapsibleButton()
        train_box.text = "Training"
        layout.addWidget(train_box)
        train_form = qt.QFormLayout(train_box)
        self.stage_combo = self._combo(STAGES, "all")
        train_form.addRow("Stages:", self.stage_combo)
        self.loss_combo = self._combo(LOSSES, "dcc")
        train_form.addRow("Pretraining loss:", self.loss_combo)
        self.epochs = qt.QSpinBox()
        self.epochs.setRange(0, 10000)
        self.epochs.specialValueText = "preset default"
        train_form.addRow("Epochs:", self.epochs)
        self.device_combo = self._combo(DEVICES, "auto")
        train_form.addRow("Device:", self.device_combo)
        self.config_combo = self._combo(CONFIGS, "default")
        train_form.addRow("Preset:", self.config_combo)
        self.model_name = qt.QLineEdit()
        self.model_name.placeholderText = "dccseg-abdomen"
        train_form.addRow("Model name:", self.model_name)
        buttons = qt.QHBoxLayout()
        self.train_button = qt.QPushButton("Train")
        self.train_button.connect("clicked()", self._on_train)
        self.stop_button = qt.QPushButton("Stop")
        self.stop_button.connect("clicked()", self._on_stop)
        self.resume_button = qt.QPushButton("Resume")
        self.resume_button.connect("clicked()", self._on_resume)
        log_button = qt.QPushButton("Open log")
        log_button.connect("clicked()", self._on_open_log)
        for button in (self.train_button, self.stop_button, self.resume_button, log_button):
            buttons.addWidget(button)
        train_form.addRow(buttons)
        self.progress = qt.QProgressBar()
        self.progress.setRange(0, 1000)
        train_form.addRow(self.progress)
        self.status_label = qt.QLabel("No training run.")
        self.status_label.wordWrap = True
        train_form.addRow(self.status_label)
        self._update_buttons(None)

    def _node_selector(self, node_type: str, tooltip: str):
        selector = slicer.qMRMLNodeComboBox()
        selector.nodeTypes = [node_type]
        selector.noneEnabled = True
        selector.addEnabled = False
        selector.removeEnabled = False
        selector.setMRMLScene(slicer.mrmlScene)
        selector.setToolTip(tooltip)
        return selector

    @staticmethod
    def _combo(values, default):
        combo = qt.QComboBox()
        combo.addItems(list(values))
        combo.setCurrentIndex(list(values).index(default))
        return combo

    def _dataset(self) -> Path | None:
        text = self.dataset_path.currentPath.strip()
        return Path(text) if text else None

    # --- dataset and cases ---------------------------------------------------------------
    def _on_dataset_changed(self, path: str) -> None:
        qt.QSettings().setValue(f"{SETTINGS}/dataset", path)
        self._fill_table(None)
        runs = list_runs(Path(path)) if path else []
        self._follow(runs[0] if runs else None)

    def _on_volume_changed(self, node) -> None:
        if node is not None:
            self.case_id.text = suggest_case_id(node.GetName())

    def refresh_cases(self) -> None:
        dataset = self._dataset()
        if dataset is None or not self.logic.ensure_ready():
            return
        try:
            with slicer.util.WaitCursor():
                self._fill_table(self.logic.case_rows(dataset))
        except EngineError as exc:
            slicer.util.errorDisplay(exc.message)

    def _fill_table(self, rows) -> None:
        if rows is None:
            from .dataset_client import case_rows

            dataset = self._dataset()
            rows = case_rows(dataset, None) if dataset else []
        self.case_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate((row.id, row.phase, row.reviewer, row.added[:16], row.status)):
                self.case_table.setItem(r, c, qt.QTableWidgetItem(value))

    def _on_add_case(self) -> None:
        dataset, volume, segmentation = self._dataset(), self.volume_selector.currentNode(), self.segmentation_selector.currentNode()
        if dataset is None or volume is None or segmentation is None:
            slicer.util.warningDisplay("Choose a dataset folder, a CT volume and its segmentation first.")
            return
        if not self.logic.ensure_ready():
            return
        matches = self.logic.match_segments(segmentation)
        unknown = [m.segment_name for m in matches if m.label is None]
        if unknown and not slicer.util.confirmOkCancelDisplay(
            "These segments are not organs of the organ table (or repeat one) and will be left out:\n  " + "\n  ".join(unknown) + "\n\nAdd the case without them?"
        ):
            return
        try:
            with slicer.util.WaitCursor():
                image, label = self.logic.export_case(volume, segmentation, matches)
            phase = self._choose_phase(image, label)
            if not phase:
                return
            case = NewCase(dataset, self.case_id.text.strip() or suggest_case_id(volume.GetName()), image, label, phase, self.reviewer.text.strip(), self.notes.text.strip(), volume.GetName())
            qt.QSettings().setValue(f"{SETTINGS}/reviewer", case.reviewer)
            self._add(case)
        except (EngineError, ValueError, RuntimeError) as exc:
            slicer.util.errorDisplay(getattr(exc, "message", str(exc)))

    def _choose_phase(self, image, label) -> str:
        chosen = self.phase_combo.currentText
        if chosen != GUESS:
            return chosen
        with slicer.util.WaitCursor():
            guess = self.logic.guess_phase(image, label)
        default = PHASES.index(guess.phase) if guess and guess.phase in PHASES else PHASES.index("unknown")
        text = f"The engine guesses '{guess.phase}'" + (f" ({guess.evidence})" if guess and guess.evidence else "") if guess else "The engine could not guess the phase"
        # A dialog object, not QInputDialog.getItem: through PythonQt getItem hides whether Cancel was pressed.
        dialog = qt.QInputDialog(slicer.util.mainWindow())
        dialog.setWindowTitle("Contrast phase")
        dialog.setLabelText(text + ". Contrast phase of this case:")
        dialog.setComboBoxItems(list(PHASES))
        dialog.setComboBoxEditable(False)
        dialog.setTextValue(PHASES[default])
        return dialog.textValue() if dialog.exec_() == qt.QDialog.Accepted else ""

    def _add(self, case) -> None:
        try:
            with slicer.util.WaitCursor():
                self.logic.add_case(case)
        except CaseExists:
            if not slicer.util.confirmOkCancelDisplay(f"Case '{case.case_id}' already exists in the dataset. Replace it? The previous version is kept in replaced/."):
                return
            with slicer.util.WaitCursor():
                self.logic.add_case(case, replace=True)
        slicer.util.showStatusMessage(f"Added case {case.case_id} to {case.dataset}", 5000)
        self.refresh_cases()

    # --- training -----------------------------------------------------------------------
    def _parameters(self) -> TrainParameters:
        return TrainParameters(
            self._dataset(), self.stage_combo.currentText, self.loss_combo.currentText, self.epochs.value or None,
            self.device_combo.currentText, self.config_combo.currentText, self.model_name.text.strip(),
        )

    def _on_train(self) -> None:
        if self._dataset() is None or not self.logic.ensure_ready():
            return
        try:
            record, self.process = self.logic.start_training(self._parameters())
        except (ValueError, OSError, RuntimeError) as exc:
            slicer.util.errorDisplay(str(exc))
            return
        self._follow(record)

    def _on_stop(self) -> None:
        if self.run is not None:
            self.logic.stop_training(self.run)
            self.status_label.text = "Stopping (the engine saves the last complete epoch)..."

    def _on_resume(self) -> None:
        if self.run is None:
            return
        try:
            record, self.process = self.logic.resume_training(self.run)
        except (OSError, RuntimeError) as exc:
            slicer.util.errorDisplay(str(exc))
            return
        self._follow(record)

    def _on_open_log(self) -> None:
        if self.run is not None and self.run.log_path.is_file():
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self.run.log_path)))

    def _follow(self, record) -> None:
        """Show ``record``'s progress and curves (None: no run)."""
        self.run = record
        self.metrics = MetricsReader(record.run_dir) if record else None
        if record is None:
            self.timer.stop()
            self.status_label.text = "No training run."
            self._update_buttons(None)
            return
        if self.plot is None:
            from .slicer_plots import MetricsPlot

            self.plot = MetricsPlot("DCC training")
        self.plot.show()
        self._poll()
        self.timer.start()

    def _poll(self) -> None:
        if self.process is not None:
            self.process.poll()
        record = self.run
        status = read_status(record.run_dir)
        if self.metrics.read_new():
            self.plot.update({key: series(self.metrics.records, key) for key in ("train_loss", "val_dice_mean")})
        alive = record.is_alive()
        if status is None:
            self.status_label.text = f"Starting... (log: {record.log_path})" if alive else f"The run ended before writing its status; see {record.log_path}"
        else:
            self.progress.value = int(status.fraction * 1000)
            ended_unexpectedly = status.state == "running" and not alive
            self.status_label.text = status.line() + ("\nThe process is gone without finishing; Resume continues from the last epoch." if ended_unexpectedly else "")
            if status.finished and status.model_ref:
                qt.QSettings().setValue(MODELS_CHANGED_KEY, "true")
        if not alive:
            self.timer.stop()
        self._update_buttons(alive, status)

    def _update_buttons(self, alive, status=None) -> None:
        self.train_button.enabled = not alive
        self.stop_button.enabled = bool(alive)
        resumable = status is None or status.state != "finished"
        self.resume_button.enabled = alive is False and self.run is not None and resumable

    def cleanup(self) -> None:
        """Stop following; the run itself continues in the background."""
        self.timer.stop()
