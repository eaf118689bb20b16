"""MVCompress3D (Liu et al., CVPR 2019): the wavelet codec, its ``.mvc`` container and the step-bound calibration."""

from .calibration import PAPER_CANDIDATES, calibrate_step_bounds
from .codec import MVWaveletCodec, compress_volume, decompress_volume, encode_to_ratio
from .format import MVCHeader

__all__ = [
    "PAPER_CANDIDATES",
    "MVCHeader",
    "MVWaveletCodec",
    "calibrate_step_bounds",
    "compress_volume",
    "decompress_volume",
    "encode_to_ratio",
]
