"""Validation Dice against training minutes for one or more coarse runs (the comparison in docs/networks.md).

    python tools/plot_learning_curves.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Reads each run's ``metrics.jsonl`` (``seconds`` per epoch, ``val_dice_mean``) and prints a markdown table too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curve(run: Path) -> list[tuple[float, int, float]]:
    """(cumulative minutes, epoch, validation Dice) per validated epoch of the coarse stage."""
    points, minutes = [], 0.0
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("stage") != "coarse":
            continue
        minutes += record["seconds"] / 60.0
        if record.get("val_dice_mean") is not None:
            points.append((minutes, record["epoch"], record["val_dice_mean"]))
    return points


def main() -> None:
    out, runs = Path(sys.argv[1]), dict(arg.split("=", 1) for arg in sys.argv[2:])
    plt.figure(figsize=(6, 4))
    for label, run in runs.items():
        points = curve(Path(run))
        plt.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=label)
        print(f"| {label} | " + " | ".join(f"ep {e}: {d:.3f} @ {m:.0f} min" for m, e, d in points[-3:]) + " |")
    plt.xlabel("training minutes (one CPU core, shared)")
    plt.ylabel("validation Dice (fresh anatomies)")
    plt.grid(alpha=0.3)
    plt.legend()
    plt.tight_layout()
    plt.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
