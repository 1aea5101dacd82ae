"""An up-front memory check for segmenting a CT, so that a huge scan stops with a clear line instead of an OOM kill."""

from __future__ import annotations

from pathlib import Path

from ..errors import DccsegError
from ..volume import Volume

BYTES_PER_VOXEL = 6.0
"""Beyond the CT itself, per input voxel: the uint8 label map and its restored copy (2), and the float32 score map
over the organs' box (4 where organs fill the scan; a fraction of that on a whole-body scan)."""
BASE_BYTES = 1 << 30
"""PyTorch, the networks and the working grids."""
BYTES_PER_VOXEL_SCALED = 12.0
"""Per input voxel and per unit of (1 / body scale ** 2 - 1): the finer refine grid of a body read at a smaller scale
(a 512x512x200 CT at body scale 0.5 peaked at 3.0 GiB against 1.3 GiB at 1)."""
MEMINFO = Path("/proc/meminfo")


def available_bytes() -> int | None:
    """Memory the kernel can give this process now without swapping (Linux ``MemAvailable``), or None when unknown."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def needed_bytes(ct: Volume, body_scale: float = 1.0) -> int:
    """Memory the segmentation of ``ct`` read at ``body_scale`` (``dccseg.inference.body_size``) needs beyond what holds the CT now."""
    return int(ct.array.size * (BYTES_PER_VOXEL + BYTES_PER_VOXEL_SCALED * (1.0 / body_scale**2 - 1.0)) + BASE_BYTES)


def check_memory(ct: Volume, body_scale: float = 1.0) -> None:
    """Raise before any heavy work when the segmentation of ``ct`` would need more memory than is available."""
    free = available_bytes()
    need = needed_bytes(ct, body_scale)
    if free is not None and need > free:
        size = "x".join(str(n) for n in ct.size_xyz)
        scaled = f" at body scale {body_scale:.2f}" if body_scale != 1.0 else ""
        raise DccsegError(
            f"segmenting this {size} CT{scaled} needs about {need / 2**30:.1f} GiB of memory but only {free / 2**30:.1f} GiB are free; "
            "crop it to the abdomen first (3D Slicer: Crop Volume)" + (", give a larger --body-scale" if scaled else "") + ", or close other programs"
        )
