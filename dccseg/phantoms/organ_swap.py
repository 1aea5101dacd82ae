"""An organ's shape from another body: the donor's mask placed on a host body's grid at the host organ's size and place.

Five or six real bodies give five or six shapes of each organ; drawing each organ's shape from any of them gives the
network organ shapes in combinations no single body has (``AnatomySettings.organ_swap``).
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.ndimage as ndi

from ..statistics import index_to_lps
from ..volume import Volume


def _index_to_mm(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, origin): physical (x, y, z) mm of a (z, y, x) voxel index ``u`` is ``origin + matrix @ u``."""
    matrix, origin = index_to_lps(volume)
    return matrix[:, ::-1], origin


def donor_shape(host: Volume, host_mask: np.ndarray, donor: Volume, donor_mask: np.ndarray) -> np.ndarray:
    """The donor organ's shape on the host's grid, centred on the host organ's centroid and scaled to its volume.

    Geometry is matched in physical space, so bodies stored with other axis directions or spacings combine correctly.
    """
    host_matrix, host_origin = _index_to_mm(host)
    donor_matrix, donor_origin = _index_to_mm(donor)
    donor_index = np.argwhere(donor_mask)
    host_centre = host_origin + host_matrix @ np.argwhere(host_mask).mean(axis=0)
    donor_centre = donor_origin + donor_matrix @ donor_index.mean(axis=0)
    scale = np.cbrt(host_mask.sum() * host.voxel_ml / (donor_mask.sum() * donor.voxel_ml))
    corners = np.array(list(itertools.product(*zip(donor_index.min(axis=0) - 1, donor_index.max(axis=0) + 1))), dtype=np.float64)
    corners_mm = host_centre + (donor_origin + corners @ donor_matrix.T - donor_centre) * scale
    host_corners = (corners_mm - host_origin) @ np.linalg.inv(host_matrix).T
    start = np.clip(np.floor(host_corners.min(axis=0)).astype(int), 0, host_mask.shape)
    stop = np.clip(np.ceil(host_corners.max(axis=0)).astype(int) + 1, 0, host_mask.shape)
    shape = np.zeros(host_mask.shape, dtype=bool)
    if np.any(stop <= start):
        return shape
    points = np.indices(stop - start).reshape(3, -1) + start[:, None]
    points_mm = host_origin[:, None] + host_matrix @ points
    source = np.linalg.inv(donor_matrix) @ (donor_centre[:, None] + (points_mm - host_centre[:, None]) / scale - donor_origin[:, None])
    values = ndi.map_coordinates(donor_mask.astype(np.uint8), source, order=0, mode="constant", cval=0)
    shape[tuple(slice(a, b) for a, b in zip(start, stop))] = values.reshape(stop - start) > 0
    return shape
