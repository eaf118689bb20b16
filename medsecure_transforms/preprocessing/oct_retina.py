"""OCT B-scan preprocessing of the learned codec (Guo, Li, Li 2019, Sec. 2.1): speckle denoising and
the retina region of interest.

Arrays here are 2-D ``numpy`` images in ``[0, 1]``; ``depth_axis`` names the axial (A-scan) axis,
0 for ``[rows, cols]`` arrays and 1 for MONAI's ``PILReader`` layout ``[W, H]``.

The retina band is found from intensities alone (the data has no layer labels): the image is
smoothed, thresholded with Otsu's method, and for every A-scan the first and last bright samples
give the upper (inner limiting membrane side) and lower (below Bruch's membrane) boundaries.
Boundaries are median-filtered across A-scans and widened by a margin; the band is the span of the
filtered boundaries and the mask keeps, per A-scan, only the samples between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, median_filter
from skimage.filters import threshold_otsu
from skimage.restoration import denoise_nl_means, estimate_sigma

__all__ = ["RetinaBand", "crop_to_canvas", "denoise_speckle", "find_retina_band", "place_from_canvas"]


def _check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D grayscale array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def denoise_speckle(
    image: np.ndarray, h_factor: float = 4.0, patch_size: int = 5, patch_distance: int = 6
) -> np.ndarray:
    """Non-local means speckle reduction (scikit-image, ``fast_mode``).

    Args:
        image: ``[H, W]`` array in ``[0, 1]``.
        h_factor: filter strength as a multiple of the noise sigma estimated by ``estimate_sigma``.
        patch_size, patch_distance: NLM patch side and search radius in pixels.

    Returns:
        ``float32`` ``[H, W]`` denoised image clipped to ``[0, 1]``.
    """
    array = _check_image(image)
    sigma = float(estimate_sigma(array))
    if sigma == 0.0:
        return array.astype(np.float32)
    out = denoise_nl_means(
        array, h=h_factor * sigma, sigma=sigma, patch_size=patch_size, patch_distance=patch_distance, fast_mode=True
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class RetinaBand:
    """The retina region of one B-scan.

    Attributes:
        start, stop: the band ``[start, stop)`` along the depth axis (union over all A-scans).
        upper, lower: per-A-scan boundaries ``[upper, lower)`` (``int`` arrays along the lateral axis).
    """

    start: int
    stop: int
    upper: np.ndarray
    lower: np.ndarray

    @classmethod
    def from_placement(cls, placement: dict) -> RetinaBand:
        """The band stored in a placement record of :func:`crop_to_canvas`."""
        upper, lower = np.asarray(placement["upper"], int), np.asarray(placement["lower"], int)
        if upper.shape != lower.shape or upper.ndim != 1 or upper.size == 0:
            raise ValueError(f"placement band boundaries malformed: shapes {upper.shape}, {lower.shape}")
        return cls(int(upper.min()), int(lower.max()), upper, lower)

    def mask(self, depth: int, depth_axis: int) -> np.ndarray:
        """Boolean image (depth ``depth``) that is True between the per-A-scan boundaries."""
        z = np.arange(depth)[:, None]
        inside = (z >= self.upper[None, :]) & (z < self.lower[None, :])
        return inside if depth_axis == 0 else inside.T


def find_retina_band(
    image: np.ndarray,
    depth_axis: int = 0,
    below_bm: int = 24,
    margin: int = 8,
    smooth_sigma: float = 3.0,
    filter_width: int = 31,
) -> RetinaBand:
    """Locate the retina from the inner limiting membrane (ILM) to ``below_bm`` samples below Bruch's membrane.

    Per A-scan, the ILM is the first sample of the smoothed image above Otsu's threshold and Bruch's
    membrane (with the retinal pigment epithelium, the brightest layer of a B-scan) is the maximum of
    the smoothed A-scan below the ILM; samples within ``3 * smooth_sigma`` of the top and bottom
    edges are ignored (exported B-scans often carry bright lines there). Where the membrane found lies
    closer to the ILM than the 75th percentile of the retina thickness (a bright inner layer taken
    for it), that thickness is used instead.

    Args:
        image: 2-D array in ``[0, 1]``.
        depth_axis: the axial axis of ``image`` (0 or 1).
        below_bm: samples kept below Bruch's membrane (the paper's lower boundary, LBM).
        margin: samples added above the ILM.
        smooth_sigma: Gaussian sigma (pixels) applied before the boundary search.
        filter_width: median-filter width (A-scans) applied to the boundaries.

    Returns:
        the band; an image without bright tissue gives the whole depth.
    """
    if depth_axis not in (0, 1):
        raise ValueError(f"depth_axis must be 0 or 1, got {depth_axis}")
    array = _check_image(image)
    array = array if depth_axis == 0 else array.T  # [depth, lateral]
    depth, lateral = array.shape
    whole = RetinaBand(0, depth, np.zeros(lateral, int), np.full(lateral, depth))
    smooth = gaussian_filter(array, smooth_sigma)
    if np.ptp(smooth) == 0:
        return whole
    # scanner / export borders (e.g. saturated lines along the image edge) are no tissue
    border = min(int(3 * smooth_sigma) + 1, depth // 4)
    bright = smooth > threshold_otsu(smooth)
    bright[:border] = bright[depth - border :] = False
    has = bright.any(axis=0)
    if not has.any():
        return whole
    idx = np.arange(lateral)
    ilm = bright.argmax(axis=0)
    z = np.arange(depth)[:, None]
    below = np.where((z >= ilm[None, :]) & (z < depth - border), smooth, -np.inf)
    bm = below.argmax(axis=0)
    # A-scans without tissue borrow the boundaries of the nearest A-scans with tissue
    ilm = np.interp(idx, idx[has], ilm[has])
    bm = np.interp(idx, idx[has], bm[has])
    width = min(filter_width, lateral) | 1
    ilm = median_filter(ilm, width, mode="nearest")
    bm = median_filter(bm, width, mode="nearest")
    # where Bruch's membrane was mistaken for a brighter inner layer, keep at least the typical thickness
    bm = np.maximum(bm, ilm + np.percentile(bm - ilm, 75))
    upper = np.clip(ilm - margin, 0, depth - 1).astype(int)
    lower = np.clip(bm + below_bm, upper + 1, depth).astype(int)
    return RetinaBand(int(upper.min()), int(lower.max()), upper, lower)


def crop_to_canvas(
    image: np.ndarray,
    band: RetinaBand,
    depth_size: int = 256,
    lateral_multiple: int = 256,
    depth_axis: int = 0,
    mask_outside: bool = True,
) -> tuple[np.ndarray, dict]:
    """Cut the retina band out of ``image`` and centre it on a zero canvas of network size.

    The canvas has ``depth_size`` samples along depth and the lateral size rounded up to a multiple
    of ``lateral_multiple``. A band taller than ``depth_size`` keeps its central ``depth_size``
    samples (the placement record says which). With ``mask_outside`` the samples outside the
    per-A-scan boundaries are set to 0 (the paper's segmented region of interest).

    Returns:
        ``(canvas, placement)``: the canvas in the layout of ``image`` (``float32``) and a
        JSON-serialisable record for :func:`place_from_canvas`.
    """
    array = _check_image(image)
    if depth_axis not in (0, 1):
        raise ValueError(f"depth_axis must be 0 or 1, got {depth_axis}")
    if depth_size < 1 or lateral_multiple < 1:
        raise ValueError(f"depth_size and lateral_multiple must be positive, got {depth_size}, {lateral_multiple}")
    view = array if depth_axis == 0 else array.T
    depth, lateral = view.shape
    if mask_outside:
        view = np.where(band.mask(depth, 0), view, 0.0)
    start, stop = band.start, band.stop
    if stop - start > depth_size:
        start += (stop - start - depth_size) // 2
        stop = start + depth_size
    rows = stop - start
    top = (depth_size - rows) // 2
    canvas_lateral = -(-lateral // lateral_multiple) * lateral_multiple
    left = (canvas_lateral - lateral) // 2
    canvas = np.zeros((depth_size, canvas_lateral), dtype=np.float32)
    canvas[top : top + rows, left : left + lateral] = view[start:stop]
    placement = {
        "spatial_shape": list(array.shape),
        "depth_axis": depth_axis,
        "source_depth": [int(start), int(stop)],
        "canvas_depth": [int(top), int(top + rows)],
        "canvas_lateral": [int(left), int(left + lateral)],
        "canvas_shape": [depth_size, canvas_lateral] if depth_axis == 0 else [canvas_lateral, depth_size],
        "lateral_multiple": lateral_multiple,
        "upper": band.upper.tolist(),
        "lower": band.lower.tolist(),
    }
    return (canvas if depth_axis == 0 else canvas.T), placement


def place_from_canvas(canvas: np.ndarray, placement: dict) -> np.ndarray:
    """Inverse placement of :func:`crop_to_canvas`: the original-size image, zero outside the band."""
    array = _check_image(canvas, "canvas")
    try:
        depth_axis = int(placement["depth_axis"])
        shape = tuple(int(s) for s in placement["spatial_shape"])
        src, dst, lat = placement["source_depth"], placement["canvas_depth"], placement["canvas_lateral"]
        expected = tuple(int(s) for s in placement["canvas_shape"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"placement record is incomplete or malformed: {err}") from err
    if array.shape != expected:
        raise ValueError(f"canvas shape {array.shape} does not match the placement record {expected}")
    view = array if depth_axis == 0 else array.T
    out = np.zeros(shape if depth_axis == 0 else shape[::-1], dtype=np.float32)
    out[src[0] : src[1], :] = view[dst[0] : dst[1], lat[0] : lat[1]]
    return out if depth_axis == 0 else out.T
