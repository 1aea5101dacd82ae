"""Turn an engine failure into words a user can act on, with the retry that would help."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["no_gpu", "out_of_memory", "not_ct", "cancelled", "other"]

_NO_GPU = re.compile(r"cuda\b.*\b(not available|unavailable|no device)|not compiled with cuda|no (cuda|gpu)|nvidia driver|found no nvidia", re.I)
_OOM = re.compile(r"out of memory|outofmemory|memoryerror|cannot allocate|std::bad_alloc", re.I)
_NOT_CT = re.compile(r"\bnot (a|an) ct\b|\bnot a ct\b|hounsfield|\bno hu\b|\bmr-like\b|does not look like (a )?ct|\bnot ct\b", re.I)
KILLED_CODES = (-9, 137)
_LAUNCHER_CRASH = re.compile(r"\] exit abnormally - Report the problem")
"""What Slicer's launcher (CTK AppLauncher, ``PythonSlicer``) prints, exiting 1, when its child was killed by a signal."""


def launcher_reported_kill(output_lines) -> bool:
    """Whether the launcher said the engine process was killed (e.g. by the out-of-memory killer)."""
    return any(_LAUNCHER_CRASH.search(line) for line in output_lines)


@dataclass(frozen=True)
class FailureAdvice:
    """What went wrong, in words, and which parameter change to offer (empty: none)."""

    kind: Kind
    text: str
    retry: dict[str, object] = field(default_factory=dict)


def explain_failure(message: str, exit_code: int, cancelled: bool = False, killed: bool = False) -> FailureAdvice:
    """Classify the engine's error line (``{"stage":"error"}`` message) and exit code; ``killed``: the launcher saw a kill."""
    if cancelled:
        return FailureAdvice("cancelled", "Segmentation was cancelled.")
    if _NO_GPU.search(message):
        return FailureAdvice("no_gpu", f"No usable GPU was found ({message}). Run on the CPU instead? It is slower but gives the same result.", {"device": "cpu"})
    if _OOM.search(message) or exit_code in KILLED_CODES or killed:
        detail = message or "the process was killed, most likely for lack of memory"
        return FailureAdvice("out_of_memory", f"The computer ran out of memory ({detail}). Try fast mode, which needs much less memory, or close other programs.", {"fast": True})
    if _NOT_CT.search(message):
        return FailureAdvice("not_ct", f"The selected volume does not look like a CT scan in Hounsfield units ({message}). Select a CT volume; MR and other images cannot be segmented by this model.")
    return FailureAdvice("other", message or f"The engine stopped with exit code {exit_code}; see the log for details.")
