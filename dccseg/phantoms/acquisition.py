"""How a scanner records the rendered anatomy: slice thickness, reconstruction kernel, dose (noise) and streaks.

``acquire`` turns a noise-free rendered image into what a scan of some protocol looks like. Thickness is
0.6-5 mm (a box slice profile along z); the kernel runs from smooth (blurred, blotchy low noise) to sharp
(edge-enhanced, fine-grained noise); low dose raises the noise; streaks radiate from a bright point (metal) or
run between the arms. All drawn from the caller's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from .render import smooth_noise


@dataclass(frozen=True)
class AcquisitionSettings:
    thickness_mm: tuple[float, float] = (0.6, 5.0)
    noise_hu: tuple[float, float] = (5.0, 30.0)
    low_dose: float = 0.15
    low_dose_noise_hu: tuple[float, float] = (30.0, 70.0)
    sharp_kernel: float = 0.3
    smooth_kernel: float = 0.2
    streaks: float = 0.15


def slice_profile(image: np.ndarray, thickness_mm: float, spacing_z: float) -> np.ndarray:
    """Average along z over ``thickness_mm`` (a box profile): thicker slices mix neighbouring anatomy."""
    width = thickness_mm / spacing_z
    if width <= 1.0:
        return image
    return ndi.uniform_filter1d(image, size=max(int(round(width)), 2), axis=0, mode="nearest")


def _streaks(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Radial bright/dark streaks through one point over a run of slices (metal), or a band between two points (arms)."""
    nz, ny, nx = shape
    y, x = np.mgrid[:ny, :nx].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * ny, rng.uniform(0.3, 0.7) * nx
    angle = np.arctan2(y - cy, x - cx)
    rays = np.cos(angle * rng.integers(6, 20) + rng.uniform(0, np.pi)) ** 400  # thin lines, not wedges
    rays = rays * np.sign(np.cos(angle * 3.0)) * np.exp(-np.hypot(y - cy, x - cx) / (0.4 * max(ny, nx)))
    amplitude = rng.uniform(60.0, 400.0)
    z0 = int(rng.integers(0, nz))
    z1 = min(nz, z0 + int(rng.integers(2, max(3, nz // 4) + 1)))
    out = np.zeros(shape, np.float32)
    out[z0:z1] = amplitude * rays[None]
    return out


def acquire(image: np.ndarray, spacing_zyx: np.ndarray, rng: np.random.Generator, settings: AcquisitionSettings = AcquisitionSettings()) -> np.ndarray:
    """A rendered, noise-free image (HU) as a scan of a random protocol would show it."""
    image = slice_profile(image, rng.uniform(*settings.thickness_mm), float(spacing_zyx[0]))
    kernel = rng.uniform()
    noise_sd = rng.uniform(*(settings.low_dose_noise_hu if rng.uniform() < settings.low_dose else settings.noise_hu))
    if kernel < settings.sharp_kernel:
        blurred = ndi.gaussian_filter(image, (0, 1.0, 1.0))
        image = image + rng.uniform(0.3, 1.2) * (image - blurred)
        grain = rng.uniform(0.35, 0.6)
    elif kernel < settings.sharp_kernel + settings.smooth_kernel:
        image = ndi.gaussian_filter(image, (0, rng.uniform(0.6, 1.2), rng.uniform(0.6, 1.2)))
        grain, noise_sd = rng.uniform(1.0, 1.6), noise_sd * 0.6
    else:
        grain = rng.uniform(0.5, 1.0)
    image = image + noise_sd * smooth_noise(image.shape, (0.3, grain, grain), rng)
    if rng.uniform() < settings.streaks:
        image = image + _streaks(image.shape, rng)
    return np.clip(image, -1024.0, 3071.0).astype(np.float32)
