"""Turn a tissue map into a CT image: per-tissue HU, texture, gas, bias, blur (PSF) and scanner noise."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import torch

from .hu_table import TISSUE_INDEX, ScanHU

GAS_TISSUES = ("stomach_contents", "bowel_contents")


def smooth_noise(shape: tuple[int, int, int], sigma_vox: float | tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Gaussian-correlated noise with unit standard deviation (float32).

    Wide correlations are drawn on a coarser grid and interpolated (trilinear), which is much faster.
    """
    sigma = np.broadcast_to(np.asarray(sigma_vox, dtype=np.float64), (3,))
    stride = np.maximum(np.floor(sigma / 1.5), 1).astype(int)
    if (stride > 1).any():
        coarse_shape = tuple(int(np.ceil((n - 1) / s)) + 1 for n, s in zip(shape, stride))
        coarse = ndi.gaussian_filter(rng.standard_normal(coarse_shape, dtype=np.float32), tuple(sigma / stride), truncate=3.0)
        field = upsample(coarse, shape)
    else:
        field = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), tuple(sigma), truncate=3.0)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def upsample(coarse: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Trilinear upsampling of a (C, z, y, x) or (z, y, x) coarse field to ``shape`` (corners aligned)."""
    tensor = torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32))
    batched = tensor[None] if tensor.ndim == 4 else tensor[None, None]
    out = torch.nn.functional.interpolate(batched, size=shape, mode="trilinear", align_corners=True)[0]
    return (out if tensor.ndim == 4 else out[0]).numpy()


def add_gas(tissue_map: np.ndarray, rng: np.random.Generator, fraction: float, sigma_vox: float = 1.5) -> np.ndarray:
    """Replace about ``fraction`` of stomach/bowel contents by air pockets (smooth blobs)."""
    targets = np.isin(tissue_map, [TISSUE_INDEX[t] for t in GAS_TISSUES])
    if fraction <= 0 or not targets.any():
        return tissue_map
    field = smooth_noise(tissue_map.shape, sigma_vox, rng)
    threshold = np.quantile(field[targets], 1.0 - fraction)
    out = tissue_map.copy()
    out[targets & (field > threshold)] = TISSUE_INDEX["air"]
    return out


def render_ct(
    tissue_map: np.ndarray,
    scan: ScanHU,
    spacing_zyx: tuple[float, float, float],
    rng: np.random.Generator,
    noise_sd: float | None = None,
    psf_fwhm_mm: tuple[float, float, float] | None = None,
    bias_hu: float | None = None,
) -> np.ndarray:
    """Render ``tissue_map`` (indices into ``TISSUES``) as HU (float32).

    Texture correlation ~4-8 mm; noise SD 6-20 HU with ~1 voxel correlation; PSF FWHM 1.5-3 mm
    in-plane and 1.5-4.5 mm along z (slice profile); an additive low-frequency bias of up to
    +-10 HU. Parameters left None are drawn from ``rng``.
    """
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    shape = tissue_map.shape
    mean = scan.mean.astype(np.float32)[tissue_map]
    sd = scan.sd.astype(np.float32)[tissue_map]
    texture_mm = rng.uniform(4.0, 8.0)
    texture = 0.75 * smooth_noise(shape, tuple(0.5 * texture_mm / spacing), rng) + 0.66 * smooth_noise(shape, tuple(np.maximum(1.5 / spacing, 0.5)), rng)
    image = mean + sd * texture
    if bias_hu is None:
        bias_hu = rng.uniform(0.0, 10.0)
    if bias_hu > 0:
        coarse = rng.uniform(-1.0, 1.0, (3, 3, 3)).astype(np.float32)
        image += bias_hu * upsample(coarse, shape)
    if psf_fwhm_mm is None:
        psf_fwhm_mm = (rng.uniform(1.5, 4.5), rng.uniform(1.5, 3.0), rng.uniform(1.5, 3.0))
    sigma = np.asarray(psf_fwhm_mm) / 2.355 / spacing
    image = ndi.gaussian_filter(image, np.maximum(sigma, 0.35), truncate=3.0)
    if noise_sd is None:
        noise_sd = rng.uniform(6.0, 20.0)
    if noise_sd > 0:
        image += noise_sd * smooth_noise(shape, 0.6, rng)
    return np.clip(image, -1024.0, 3071.0).astype(np.float32)
