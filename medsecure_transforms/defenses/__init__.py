"""Defense methods: plain classes with explicit parameters, calibration steps and JSON-serialisable state."""

from .fft_detect import AdversarialInputRejected, FFTDetector, min_calibration_size, threshold_at_fpr
from .frequency_refine import (
    BlockDCTQuantizer,
    coding_space_band_std,
    fit_defensive_table,
    frequency_refine,
    jpeg_quantizer,
)
from .quant_tables import (
    JPEG_CHROMINANCE,
    JPEG_LUMINANCE,
    QuantTable,
    as_quant_table,
    band_std,
    defensive_table,
    fixed_layout_table,
    jpeg_table,
)
from .reconstruction import ARCHITECTURES, ReconstructionDefense, ReconstructionModel, build_network
from .reformer import Reformer
