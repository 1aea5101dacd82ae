"""PNG plots of the ablation: Dice per arm and phase (grouped bars), Dice per organ and arm (heat map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dccseg.fileutil import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def phase_bar_chart(table: dict[str, dict[str, float | None]], arms: list[str], phases: list[str], path: Path) -> None:
    """Grouped bars: one group per phase (and "all"), one bar per arm."""
    plt = _pyplot()
    groups = ["all", *phases]
    width = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(groups), 3.6))
    positions = np.arange(len(groups))
    for i, arm in enumerate(arms):
        heights = [table[arm][g] if table[arm][g] is not None else np.nan for g in groups]
        ax.bar(positions + (i - (len(arms) - 1) / 2) * width, heights, width, label=arm)
    finite = [table[a][g] for a in arms for g in groups if table[a][g] is not None]
    low = max(0.0, min(finite) - 0.05) if finite else 0.0
    ax.set_ylim(low, min(1.0, (max(finite) if finite else 1.0) + 0.03))
    ax.set_xticks(positions, groups)
    ax.set_ylabel("mean Dice")
    ax.set_title("Dice per pretraining arm and test phase")
    ax.legend(fontsize=8, ncol=min(len(arms), 3))
    fig.tight_layout()
    _save(fig, path)


def organ_heat_map(table: dict[str, dict[str, float | None]], arms: list[str], organs: list[str], path: Path) -> None:
    """Rows arms, columns organs, colour the mean Dice (value printed in each cell)."""
    plt = _pyplot()
    data = np.array([[table[a][o] if table[a][o] is not None else np.nan for o in organs] for a in arms], dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 + 0.75 * len(organs), 1.0 + 0.45 * len(arms)))
    image = ax.imshow(data, cmap="viridis", vmin=np.nanmin(data) if np.isfinite(data).any() else 0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(organs)), organs, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(arms)), arms, fontsize=8)
    for (i, j), value in np.ndenumerate(data):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="white" if value < np.nanmean(data) else "black")
    fig.colorbar(image, ax=ax, label="Dice")
    ax.set_title("Dice per organ")
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
