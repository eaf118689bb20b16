"""Defense methods: plain classes with explicit parameters, calibration steps and JSON-serialisable state."""

from .frequency_refine import BlockDCTQuantizer, fit_defensive_table, frequency_refine, jpeg_quantizer
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
