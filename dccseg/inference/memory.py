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


def needed_bytes(ct: Volume) -> int:
    """Memory the segmentation of ``ct`` needs beyond what holds the CT now."""
    return int(ct.array.size * BYTES_PER_VOXEL + BASE_BYTES)


def check_memory(ct: Volume) -> None:
    """Raise before any heavy work when the segmentation of ``ct`` would need more memory than is available."""
    free = available_bytes()
    need = needed_bytes(ct)
    if free is not None and need > free:
        size = "x".join(str(n) for n in ct.size_xyz)
        raise DccsegError(
            f"segmenting this {size} CT needs about {need / 2**30:.1f} GiB of memory but only {free / 2**30:.1f} GiB are free; "
            "crop it to the abdomen first (3D Slicer: Crop Volume), or close other programs"
        )
