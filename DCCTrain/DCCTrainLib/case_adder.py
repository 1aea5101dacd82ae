"""Adding one exported case without blocking Slicer: phase guess -> phase dialog -> ``dataset add`` -> replace? Needs Slicer.

Each engine command runs as an EngineCall on the panel's CallPoller; the exported files are deleted at the end,
whatever the outcome (the engine copies them into the dataset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import qt
import slicer

from DCCSegmentLib.engine import EngineError

from .dataset_client import CaseExists, NewCase, add_case_call, added_case, guess_phase_call, phase_guess

PHASES = ("non-contrast", "arterial", "portal-venous", "delayed", "unknown")


class CaseAdder:
    """One Add click; ``on_end(case_id or None)`` is called once, after the case was added or the flow stopped."""

    def __init__(self, logic, calls, show: Callable[[str], None], on_end: Callable[[str | None], None]) -> None:
        self.logic = logic
        self.calls = calls
        self.show = show
        self.on_end = on_end

    def start(self, case: NewCase, guess: bool) -> None:
        """``case.phase`` is used unless ``guess``: then the engine guesses and the user confirms."""
        if not guess:
            self._add(case, False)
            return
        self.show("Guessing the contrast phase...")
        self.calls.add(guess_phase_call(self.logic.engine(), case.image, case.label), lambda result: self._on_guess(case, result))

    def _on_guess(self, case: NewCase, result) -> None:
        phase = ask_phase(phase_guess(result))
        if phase:
            self._add(replace(case, phase=phase), False)
        else:
            self._end(case, None, "Adding the case was cancelled.")

    def _add(self, case: NewCase, replace_existing: bool) -> None:
        try:
            call = add_case_call(self.logic.engine(), case, replace=replace_existing)
        except CaseExists:
            self._ask_replace(case)
            return
        self.show(f"Adding case {case.case_id}...")
        self.calls.add(call, lambda result: self._on_added(case, replace_existing, result))

    def _on_added(self, case: NewCase, replace_existing: bool, result) -> None:
        try:
            added_case(result, case, replace=replace_existing)
        except CaseExists:
            self._ask_replace(case)
            return
        except EngineError as exc:
            slicer.util.errorDisplay(exc.message, windowTitle="DCC Train")
            self._end(case, None, f"Case {case.case_id} was not added.")
            return
        slicer.util.showStatusMessage(f"Added case {case.case_id} to {case.dataset}", 5000)
        self._end(case, case.case_id, f"Added case {case.case_id} (not checked yet: click Check dataset).")

    def _ask_replace(self, case: NewCase) -> None:
        if slicer.util.confirmOkCancelDisplay(f"Case '{case.case_id}' already exists in the dataset. Replace it? The previous version is kept in replaced/."):
            self._add(case, True)
        else:
            self._end(case, None, f"Case {case.case_id} was left as it was.")

    def _end(self, case: NewCase, added: str | None, message: str) -> None:
        self.logic.discard_export(case.image)
        self.show(message)
        self.on_end(added)


def ask_phase(guess) -> str:
    """The phase dialog, defaulting to the engine's guess; empty when the user cancels."""
    default = PHASES.index(guess.phase) if guess and guess.phase in PHASES else PHASES.index("unknown")
    text = f"The engine guesses '{guess.phase}'" + (f" ({guess.evidence})" if guess.evidence else "") if guess else "The engine could not guess the phase"
    # A dialog object, not QInputDialog.getItem: through PythonQt getItem hides whether Cancel was pressed.
    dialog = qt.QInputDialog(slicer.util.mainWindow())
    dialog.setWindowTitle("Contrast phase")
    dialog.setLabelText(text + ". Contrast phase of this case:")
    dialog.setComboBoxItems(list(PHASES))
    dialog.setComboBoxEditable(False)
    dialog.setTextValue(PHASES[default])
    return dialog.textValue() if dialog.exec_() == qt.QDialog.Accepted else ""
