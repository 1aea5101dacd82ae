"""The DCCTrain panel (Qt widgets); needs Slicer. Runs are files on disk, so the panel can be closed and reopened."""

from __future__ import annotations

from pathlib import Path

import ctk
import qt
import slicer

from DCCSegmentLib.engine import CallPoller, EngineError

from .case_adder import PHASES, CaseAdder
from .dataset_client import NewCase, case_ids, case_rows, suggest_case_id, validate_call
from .finetune_report import finetune_summary, model_card, model_card_call
from .label_next_panel import LabelNextPanel
from .run_state import MetricsReader, read_status, series
from .runs import absolute_path, list_runs
from .train_parameters import CONFIGS, DEVICES, FROM_SCRATCH, LOSSES, STAGES, TrainParameters, default_from_model

SETTINGS = "DCCTrain"
MODELS_CHANGED_KEY = "DCCSegment/modelsChanged"
SEGMENT_MODEL_KEY = "DCCSegment/model"
"""The model DCC Segment segments with ("" for its default, the newest dccseg-abdomen)."""
SEGMENT_MODEL = "segment"
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
        self.dataset = None
        self.report = None
        self.report_ids = None
        self.reported_run = None
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self._poll)
        self.call_timer = qt.QTimer()
        self.call_timer.setInterval(200)
        self.calls = CallPoller(self.call_timer)
        self.call_timer.connect("timeout()", self.calls.step)
        self._build(layout)
        self.scene_observer = slicer.mrmlScene.AddObserver(slicer.mrmlScene.EndCloseEvent, self._on_scene_closed)
        self.dataset_path.text = qt.QSettings().value(f"{SETTINGS}/dataset", "")
        self._on_dataset_edited()

    # --- layout ---------------------------------------------------------------------------
    def _build(self, layout) -> None:
        data_box = ctk.ctkCollapsibleButton()
        data_box.text = "Dataset"
        layout.addWidget(data_box)
        data_form = qt.QFormLayout(data_box)
        # A plain line edit: it reports a finished edit, where ctkPathLineEdit reports every keystroke.
        self.dataset_path = qt.QLineEdit()
        self.dataset_path.setToolTip("A dataset folder, or a new/empty folder to start one (Enter to apply).")
        self.dataset_path.connect("editingFinished()", self._on_dataset_edited)
        browse = qt.QPushButton("Browse...")
        browse.connect("clicked()", self._on_browse)
        path_row = qt.QHBoxLayout()
        path_row.addWidget(self.dataset_path, 1)
        path_row.addWidget(browse)
        data_form.addRow("Folder:", path_row)
        self.dataset_status = qt.QLabel("")
        self.dataset_status.wordWrap = True
        data_form.addRow(self.dataset_status)
        self.case_table = qt.QTableWidget(0, len(COLUMNS))
        self.case_table.setHorizontalHeaderLabels(list(COLUMNS))
        self.case_table.horizontalHeader().setStretchLastSection(True)
        self.case_table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        self.case_table.setMinimumHeight(140)
        data_form.addRow(self.case_table)
        self.check_button = qt.QPushButton("Check dataset")
        self.check_button.connect("clicked()", self.refresh_cases)
        data_form.addRow(self.check_button)

        self.label_next = LabelNextPanel(layout, self.logic, self.calls, self._dataset, segment_model, self._ensure_ready, self._on_next_loaded)

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
        self.add_button = qt.QPushButton("Add current case")
        self.add_button.connect("clicked()", self._on_add_case)
        add_form.addRow(self.add_button)

        train_box = ctk.ctkCollapsibleButton()
        train_box.text = "Training"
        layout.addWidget(train_box)
        train_form = qt.QFormLayout(train_box)
        self.stage_combo = self._combo(STAGES, "all")
        self.stage_combo.connect("currentIndexChanged(int)", self._on_start_changed)
        train_form.addRow("Stages:", self.stage_combo)
        self.from_combo = qt.QComboBox()
        self.from_combo.addItem("the model DCC Segment uses", SEGMENT_MODEL)
        self.from_combo.addItem("from scratch", FROM_SCRATCH)
        self.from_combo.setToolTip("'all' fine-tunes this model on your cases (and reports before/after on held-out cases), or trains from scratch.")
        self.from_combo.connect("currentIndexChanged(int)", self._on_start_changed)
        train_form.addRow("Start from:", self.from_combo)
        self.world_ratio = qt.QDoubleSpinBox()
        self.world_ratio.setRange(0.0, 100.0)
        self.world_ratio.setSingleStep(0.25)
        self.world_ratio.value = 1.0
        self.world_ratio.setToolTip("How much of the model's original kind of training data fine-tuning mixes in with your cases (0: your cases only).")
        train_form.addRow("World data ratio:", self.world_ratio)
        self.children_box = qt.QCheckBox("the cases are children")
        self.children_box.setToolTip("Fine-tune on each case at an adult's size, measured by its organs, and compare before/after as DCC Segment reads a scan with Child ticked. "
                                      "Segment children with Child ticked afterwards.")
        train_form.addRow("Children:", self.children_box)
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
        plot_button = qt.QPushButton("Show curves")
        plot_button.setToolTip("Show the training loss and validation Dice in the plot view.")
        plot_button.connect("clicked()", self._show_plot)
        for button in (self.train_button, self.stop_button, self.resume_button, log_button, plot_button):
            buttons.addWidget(button)
        train_form.addRow(buttons)
        self.progress = qt.QProgressBar()
        self.progress.setRange(0, 1000)
        train_form.addRow(self.progress)
        self.status_label = qt.QLabel("No training run.")
        self.status_label.wordWrap = True
        train_form.addRow(self.status_label)
        self.model_report = qt.QLabel("")
        self.model_report.wordWrap = True
        train_form.addRow(self.model_report)
        self._update_buttons(None)
        self._on_start_changed()

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
        text = self.dataset_path.text.strip()
        return absolute_path(text) if text else None

    # --- dataset and cases ---------------------------------------------------------------
    def _on_browse(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Dataset folder", self.dataset_path.text)
        if folder:
            self.dataset_path.text = folder
            self._on_dataset_edited()

    def _on_dataset_edited(self) -> None:
        """A finished edit or a browse: remember the folder, show its cases, follow its newest run (plot on request)."""
        dataset = self._dataset()
        if dataset == self.dataset:
            return
        self.dataset, self.report, self.report_ids = dataset, None, None
        qt.QSettings().setValue(f"{SETTINGS}/dataset", str(dataset) if dataset else "")
        self._fill_table()
        self.label_next.show_dataset()
        runs = list_runs(dataset) if dataset else []
        self._follow(runs[0] if runs else None)

    def _on_volume_changed(self, node) -> None:
        if node is not None:
            self.case_id.text = suggest_case_id(node.GetName())

    def _ensure_ready(self) -> bool:
        """Install on first use with the action buttons disabled (pip processes events: a second click must not land)."""
        buttons = (self.check_button, self.add_button, self.train_button, self.resume_button)
        enabled = [b.enabled for b in buttons]
        for button in buttons:
            button.enabled = False
        try:
            return self.logic.ensure_ready()
        finally:
            for button, state in zip(buttons, enabled):
                button.enabled = state

    def refresh_cases(self) -> None:
        """Validate the dataset in the background (it reads every image); the table updates when it is done."""
        dataset = self._dataset()
        if dataset is None or not self._ensure_ready():
            return
        if not (dataset / "dataset.json").is_file():
            self._fill_table()
            return
        try:
            ids = case_ids(dataset)
        except ValueError as exc:
            self.dataset_status.text = str(exc)
            return
        self.check_button.enabled = False
        self.dataset_status.text = "Checking every case..."
        self.calls.add(validate_call(self.logic.engine(), dataset), lambda result: self._on_validated(dataset, ids, result))

    def _on_validated(self, dataset: Path, ids: set, result) -> None:
        self.check_button.enabled = True
        if dataset != self._dataset():
            return
        try:
            self.report, self.report_ids = result.json(), ids
        except EngineError as exc:
            self.dataset_status.text = ""
            slicer.util.errorDisplay(exc.message)
            return
        self.dataset_status.text = "Checked." if self.report.get("ok") else "Some cases have problems: see the status column."
        self._fill_table()

    def _fill_table(self) -> None:
        """The cases of ``dataset.json``; status from the last check (cases added since: "not checked")."""
        dataset = self._dataset()
        try:
            rows = case_rows(dataset, self.report, self.report_ids) if dataset else []
        except ValueError as exc:
            rows, self.dataset_status.text = [], str(exc)
        self.case_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate((row.id, row.phase, row.reviewer, row.added[:16], row.status)):
                self.case_table.setItem(r, c, qt.QTableWidgetItem(value))

    def _on_add_case(self) -> None:
        dataset, volume, segmentation = self._dataset(), self.volume_selector.currentNode(), self.segmentation_selector.currentNode()
        if dataset is None or volume is None or segmentation is None:
            slicer.util.warningDisplay("Choose a dataset folder, a CT volume and its segmentation first.")
            return
        if not self._ensure_ready():
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
        except (ValueError, RuntimeError) as exc:
            slicer.util.errorDisplay(str(exc))
            return
        chosen = self.phase_combo.currentText
        case = NewCase(dataset, self.case_id.text.strip() or suggest_case_id(volume.GetName()), image, label, "" if chosen == GUESS else chosen,
                       self.reviewer.text.strip(), self.notes.text.strip(), volume.GetName())
        qt.QSettings().setValue(f"{SETTINGS}/reviewer", case.reviewer)
        self.add_button.enabled = False
        adder = CaseAdder(self.logic, self.calls, self._show_dataset_status, self._on_add_ended)
        adder.start(case, guess=chosen == GUESS)

    def _show_dataset_status(self, text: str) -> None:
        self.dataset_status.text = text

    def _on_add_ended(self, added) -> None:
        """No re-validation of the whole dataset: the new case shows as "not checked" until Check dataset."""
        self.add_button.enabled = True
        if added:
            self._fill_table()
            self.label_next.show_dataset()

    def _on_next_loaded(self, case, volume, segmentation) -> None:
        """A ranked case is in the scene: Add current case will replace it with the correction."""
        self.volume_selector.setCurrentNode(volume)
        self.segmentation_selector.setCurrentNode(segmentation)
        self.case_id.text = case.case
        index = self.phase_combo.findText(case.phase)
        if index >= 0:
            self.phase_combo.setCurrentIndex(index)

    # --- training -----------------------------------------------------------------------
    def _from_model(self) -> str:
        chosen = self.from_combo.currentData
        return default_from_model(segment_model()) if chosen == SEGMENT_MODEL else FROM_SCRATCH

    def _on_start_changed(self, _index: int = 0) -> None:
        fine_tunes = self.stage_combo.currentText == "all"
        self.from_combo.enabled = fine_tunes
        self.world_ratio.enabled = fine_tunes and self.from_combo.currentData != FROM_SCRATCH
        self.children_box.enabled = self.world_ratio.enabled
        self.loss_combo.enabled = not self.world_ratio.enabled  # a fine-tune keeps its model's encoder
        self.from_combo.setItemText(0, f"the model DCC Segment uses ({default_from_model(segment_model())})")

    def _parameters(self) -> TrainParameters:
        return TrainParameters(
            self._dataset(), self.stage_combo.currentText, self.loss_combo.currentText, self.epochs.value or None,
            self.device_combo.currentText, self.config_combo.currentText, self.model_name.text.strip(),
            from_model=self._from_model(), world_ratio=float(self.world_ratio.value), children=self.children_box.checked and self.children_box.enabled,
        )

    def _on_train(self) -> None:
        if self._dataset() is None or not self._ensure_ready():
            return
        try:
            record, self.process = self.logic.start_training(self._parameters())
        except (ValueError, OSError, RuntimeError) as exc:
            slicer.util.errorDisplay(str(exc))
            return
        self._follow(record)
        self._show_plot()

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
        self._show_plot()

    def _on_open_log(self) -> None:
        if self.run is not None and self.run.log_path.is_file():
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self.run.log_path)))

    def _follow(self, record) -> None:
        """Show ``record``'s progress (None: no run); its curves appear on request (Show curves, Train, Resume)."""
        self.run = record
        self.model_report.text = ""
        self.reported_run = None
        self.metrics = MetricsReader(record.run_dir) if record else None
        if record is None:
            self.timer.stop()
            self.status_label.text = "No training run."
            self._update_buttons(None)
            return
        self._poll()
        self.timer.start()

    def _show_plot(self) -> None:
        if self.run is None:
            return
        if self.plot is None:
            from .slicer_plots import MetricsPlot

            self.plot = MetricsPlot("DCC training")
        self._update_plot()
        self.plot.show()

    def _update_plot(self) -> None:
        if self.plot is not None and self.metrics is not None:
            self.plot.update({key: series(self.metrics.records, key) for key in ("train_loss", "val_dice_mean")})

    def _on_scene_closed(self, caller=None, event=None) -> None:
        """File > Close Scene removed the plot's nodes: rebuild the plot if it was shown."""
        shown, self.plot = self.plot is not None, None
        if shown:
            self._show_plot()

    def _poll(self) -> None:
        if self.process is not None:
            self.process.poll()
        record = self.run
        status = read_status(record.run_dir)
        if self.metrics.read_new():
            self._update_plot()
        alive = record.is_alive()  # the launcher or the trainer behind it (status.json's pid)
        if status is None:
            self.status_label.text = f"Starting... (log: {record.log_path})" if alive else f"The run ended before writing its status; see {record.log_path}"
        else:
            self.progress.value = int(status.fraction * 1000)
            ended_unexpectedly = status.state == "running" and not alive
            self.status_label.text = status.line() + ("\nThe process is gone without finishing; Resume continues from the last epoch." if ended_unexpectedly else "")
            if status.finished and status.model_ref:
                qt.QSettings().setValue(MODELS_CHANGED_KEY, "true")
                self._report_model(record, status.model_ref)
        if not alive:
            self.timer.stop()
        self._update_buttons(alive, status)

    def _report_model(self, record, model_ref: str) -> None:
        """Once per finished run: what fine-tuning changed, from the new model's card."""
        if self.reported_run == record.run_dir:
            return
        self.reported_run = record.run_dir
        self.model_report.text = ""
        self.calls.add(model_card_call(self.logic.engine(), model_ref), lambda result: self._on_model_card(record, result))

    def _on_model_card(self, record, result) -> None:
        if record is not self.run:
            return
        try:
            self.model_report.text = finetune_summary(model_card(result))
        except EngineError as exc:
            self.model_report.text = f"Could not read the new model's card: {exc.message}"

    def _update_buttons(self, alive, status=None) -> None:
        self.train_button.enabled = not alive
        self.stop_button.enabled = bool(alive)
        resumable = status is None or status.state != "finished"
        self.resume_button.enabled = alive is False and self.run is not None and resumable

    def cleanup(self) -> None:
        """Stop following; the run itself continues in the background."""
        self.timer.stop()
        self.calls.cancel_all()
        slicer.mrmlScene.RemoveObserver(self.scene_observer)


def segment_model() -> str:
    """The model DCC Segment segments with, as it last saved it ("" for its default)."""
    return str(qt.QSettings().value(SEGMENT_MODEL_KEY, "") or "")
