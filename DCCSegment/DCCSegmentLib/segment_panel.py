"""The DCCSegment panel (Qt widgets); needs Slicer. State lives in SegmentJob; this file only shows it."""

from __future__ import annotations

import time

import ctk
import qt
import slicer

from .engine import CallPoller, EngineError
from .install import engine_is_current, engine_source_dir
from .parameters import DEVICE_LABELS, DEVICES
from .results_panel import ResultsPanel

SETTINGS = "DCCSegment"
MODELS_CHANGED_KEY = f"{SETTINGS}/modelsChanged"
MODEL_KEY = f"{SETTINGS}/model"
"""The chosen model ("" for the default); DCC Train fine-tunes it by default."""
TICK_MS = 200


class SegmentPanel:
    """Inputs, Segment/Cancel, progress, log; the timer polls the running job."""

    def __init__(self, layout, logic) -> None:
        self.logic = logic
        self.job = None
        self.volume = None
        self.started = 0.0
        self.models = []
        self.organs = []
        self.timer = qt.QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.connect("timeout()", self._tick)
        self.call_timer = qt.QTimer()
        self.call_timer.setInterval(TICK_MS)
        self.calls = CallPoller(self.call_timer)
        self.call_timer.connect("timeout()", self.calls.step)
        self._build(layout)
        self._load_settings()

    # --- layout -----------------------------------------------------------------------------
    def _build(self, layout) -> None:
        inputs = ctk.ctkCollapsibleButton()
        inputs.text = "Inputs"
        layout.addWidget(inputs)
        form = qt.QFormLayout(inputs)

        self.volume_selector = slicer.qMRMLNodeComboBox()
        self.volume_selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
        self.volume_selector.noneEnabled = False
        self.volume_selector.addEnabled = False
        self.volume_selector.removeEnabled = False
        self.volume_selector.setMRMLScene(slicer.mrmlScene)
        self.volume_selector.setToolTip("The abdominal CT to segment.")
        form.addRow("CT volume:", self.volume_selector)

        model_row = qt.QHBoxLayout()
        self.model_combo = qt.QComboBox()
        self.model_combo.connect("currentIndexChanged(int)", self._on_model_changed)
        self.refresh_button = qt.QPushButton("Refresh")
        self.refresh_button.setToolTip("List the model store again (e.g. after a training run finished).")
        self.refresh_button.connect("clicked()", self.refresh_models)
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.refresh_button)
        form.addRow("Model:", model_row)
        self.model_summary = qt.QLabel("")
        self.model_summary.wordWrap = True
        form.addRow("", self.model_summary)

        self.organ_list = qt.QListWidget()
        self.organ_list.setMaximumHeight(160)
        organ_buttons = qt.QHBoxLayout()
        for text, state in (("All", qt.Qt.Checked), ("None", qt.Qt.Unchecked)):
            button = qt.QPushButton(text)
            button.connect("clicked()", lambda s=state: self._check_all(s))
            organ_buttons.addWidget(button)
        organ_box = qt.QVBoxLayout()
        organ_box.addWidget(self.organ_list)
        organ_box.addLayout(organ_buttons)
        form.addRow("Organs:", organ_box)

        self.device_combo = qt.QComboBox()
        for device in DEVICES:
            self.device_combo.addItem(DEVICE_LABELS[device], device)
        form.addRow("Device:", self.device_combo)
        self.fast_check = qt.QCheckBox("Fast mode (one patch per slice and organ: faster, less memory, slightly less accurate)")
        form.addRow("", self.fast_check)
        self.child_check = qt.QCheckBox("Child (measure the body by its organs and read a small one at its size; off again for the next scan)")
        form.addRow("", self.child_check)

        self.segment_button = qt.QPushButton("Segment")
        self.segment_button.connect("clicked()", self._on_segment_clicked)
        layout.addWidget(self.segment_button)
        self.progress = qt.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        layout.addWidget(self.progress)
        self.stage_label = qt.QLabel("")
        self.stage_label.wordWrap = True
        layout.addWidget(self.stage_label)

        self.results = ResultsPanel(layout, self.logic)
        log_box = ctk.ctkCollapsibleButton()
        log_box.text = "Log"
        log_box.collapsed = True
        layout.addWidget(log_box)
        self.log = qt.QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        qt.QVBoxLayout(log_box).addWidget(self.log)

    # --- settings, models and organs -----------------------------------------------------
    def _load_settings(self) -> None:
        settings = qt.QSettings()
        index = self.device_combo.findData(settings.value(f"{SETTINGS}/device", "auto"))
        self.device_combo.setCurrentIndex(max(index, 0))
        self.fast_check.checked = str(settings.value(f"{SETTINGS}/fast", "false")).lower() == "true"

    def _save_settings(self) -> None:
        settings = qt.QSettings()
        settings.setValue(f"{SETTINGS}/device", self.device_combo.currentData)
        settings.setValue(f"{SETTINGS}/fast", "true" if self.fast_check.checked else "false")

    def _engine_installed(self) -> bool:
        source = engine_source_dir(self.logic.module_dir)
        return source is not None and engine_is_current(source)

    def on_enter(self) -> None:
        """Refresh the models the first time, and whenever DCC Train registered a new version."""
        settings = qt.QSettings()
        changed = str(settings.value(MODELS_CHANGED_KEY, "false")).lower() == "true"
        installed = self._engine_installed()
        if (not self.models or changed) and installed:
            settings.setValue(MODELS_CHANGED_KEY, "false")
            self.refresh_models()
        elif not installed:
            self.stage_label.text = "Click Segment to install the segmentation engine."

    def refresh_models(self) -> None:
        """List the model store in the background; the selector fills when the engine answers."""
        from .models import models_call

        if not self.refresh_button.enabled:
            return
        self.refresh_button.enabled = False
        self.model_summary.text = "Listing the models..."
        try:
            self.calls.add(models_call(self.logic.engine()), self._on_models_listed)
        except OSError as exc:
            self.refresh_button.enabled = True
            self.model_summary.text = f"Could not list the models: {exc}"

    def _on_models_listed(self, result) -> None:
        from .models import parse_model_list

        self.refresh_button.enabled = True
        try:
            self.models = parse_model_list(result.json())
        except (EngineError, ValueError) as exc:
            self._append_log(f"Could not list the models: {exc}")
            self.model_summary.text = f"Could not list the models: {exc}"
            return
        previous = self.model_combo.currentData or qt.QSettings().value(MODEL_KEY, "")
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItem("Default (newest dccseg-abdomen)", "")
        for model in self.models:
            self.model_combo.addItem(model.label(), model.ref)
            self.model_combo.setItemData(self.model_combo.count - 1, model.summary(), qt.Qt.ToolTipRole)
        self.model_combo.setCurrentIndex(max(self.model_combo.findData(previous), 0))
        self.model_combo.blockSignals(False)
        self._on_model_changed()

    def _selected_model(self):
        ref = self.model_combo.currentData
        if ref:
            return next((m for m in self.models if m.ref == ref), None)
        from .models import newest

        return newest(self.models)

    def _on_model_changed(self, _index: int = 0) -> None:
        qt.QSettings().setValue(MODEL_KEY, self.model_combo.currentData or "")
        model = self._selected_model()
        self.model_summary.text = "\n".join(t for t in (model.summary(), model.description, model.caution()) if t) if model else "No model found in the store."
        self.child_check.enabled = bool(model and model.measures_children)
        self.child_check.checked = self.child_check.checked and self.child_check.enabled
        self.child_check.toolTip = "" if self.child_check.enabled else "This model's card holds no organ volumes to measure a body by (dccseg segment --body-scale F still works)."
        self._fill_organs(model.organs if model else None)

    def _fill_organs(self, card_organs) -> None:
        checked = {self.organ_list.item(i).data(qt.Qt.UserRole) for i in range(self.organ_list.count) if self.organ_list.item(i).checkState() == qt.Qt.Checked}
        try:
            self.organs = self.logic.organ_table(card_organs)
        except ImportError:
            return
        available = {int(o["label"]) for o in card_organs} if card_organs else None
        self.organ_list.clear()
        for organ in self.organs:
            if available is not None and organ.label not in available:
                continue
            item = qt.QListWidgetItem(f"{organ.label:2d}  {organ.name}")
            item.setData(qt.Qt.UserRole, organ.key)
            item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
            item.setCheckState(qt.Qt.Checked if not checked or organ.key in checked else qt.Qt.Unchecked)
            self.organ_list.addItem(item)

    def _check_all(self, state) -> None:
        for i in range(self.organ_list.count):
            self.organ_list.item(i).setCheckState(state)

    def _selected_organs(self):
        """None when every listed organ is checked (the engine's default: all)."""
        keys = [self.organ_list.item(i).data(qt.Qt.UserRole) for i in range(self.organ_list.count)]
        chosen = [k for i, k in enumerate(keys) if self.organ_list.item(i).checkState() == qt.Qt.Checked]
        return None if len(chosen) == len(keys) else chosen

    # --- running --------------------------------------------------------------------------
    def _on_segment_clicked(self) -> None:
        if self.job is not None:
            self.stage_label.text = "Cancelling..."
            self.job.cancel()
            return
        volume = self.volume_selector.currentNode()
        if volume is None:
            slicer.util.warningDisplay("Select a CT volume first.")
            return
        if not self._ensure_ready():
            self.stage_label.text = "The segmentation engine is not installed; click Segment to try again."
            return
        if not self.models:
            self.refresh_models()
        organs = self._selected_organs()
        if organs == []:
            slicer.util.warningDisplay("Check at least one organ.")
            return
        self._save_settings()
        try:
            job = self.logic.start(volume, self.model_combo.currentData or None, self.device_combo.currentData, organs, self.fast_check.checked, self.child_check.checked)
        except (OSError, RuntimeError, ValueError) as exc:
            slicer.util.errorDisplay(f"Could not start the segmentation: {exc}")
            return
        self.child_check.checked = False  # one scan at a time: an adult read as a child loses much (docs/model.md)
        self._run(job, volume)

    def _ensure_ready(self) -> bool:
        """Install on first use with the Segment button disabled (pip processes events: a second click must not land)."""
        self.segment_button.enabled = False
        try:
            return self.logic.ensure_ready()
        finally:
            self.segment_button.enabled = True

    def _run(self, job, volume) -> None:
        self.job, self.volume, self.started = job, volume, time.monotonic()
        self._append_log("$ " + " ".join(self.job.engine.command(*self.job.parameters.arguments())))
        self.segment_button.text = "Cancel"
        self.progress.value = 0
        self.progress.show()
        self.stage_label.text = "Starting the engine..."
        self.timer.start()

    def _tick(self) -> None:
        update = self.job.step()
        for line in update.log:
            self._append_log(line)
        self.progress.value = int(update.fraction * 1000)
        if update.stage:
            self.stage_label.text = f"{update.stage}: {update.message}" if update.message else update.stage
        if update.finished:
            self._finish(update)

    def _finish(self, update) -> None:
        self.timer.stop()
        job, volume = self.job, self.volume
        self.job = None
        self.segment_button.text = "Segment"
        self.progress.hide()
        if update.succeeded:
            try:
                statistics = self.results.read(job.parameters.output_path)
                node = self.logic.load_result(job, volume)  # also deletes the job's work folder
            except RuntimeError as exc:
                slicer.util.errorDisplay(str(exc))
                return
            timing = ", ".join(f"{k} {v:.1f} s" for k, v in job.timings.items())
            self.stage_label.text = f"Done in {time.monotonic() - self.started:.0f} s: '{node.GetName()}'" + (f" ({timing})" if timing else "")
            self.results.show(statistics, node, volume)
            return
        advice = update.advice
        self.stage_label.text = advice.text
        self._append_log(advice.text)
        if advice.kind != "cancelled" and advice.retry and slicer.util.confirmOkCancelDisplay(
                advice.text + "\n\nTry again with these settings?", windowTitle="DCC Segment"):
            if "device" in advice.retry:
                self.device_combo.setCurrentIndex(self.device_combo.findData(advice.retry["device"]))
            if advice.retry.get("fast"):
                self.fast_check.checked = True
            self._run(self.logic.restart(job.parameters.with_changes(**advice.retry)), volume)  # reuses the written CT
            return
        self.logic.discard(job)
        if advice.kind != "cancelled" and not advice.retry:
            slicer.util.errorDisplay(advice.text, windowTitle="DCC Segment")

    def _append_log(self, line: str) -> None:
        self.log.appendPlainText(line)

    def cleanup(self) -> None:
        self.timer.stop()
        self.calls.cancel_all()
        if self.job is not None:
            self.job.cancel()
            self.logic.discard(self.job)
            self.job = None
