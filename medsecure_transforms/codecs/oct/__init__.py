"""The learned OCT B-scan codec (Guo, Li, Li 2019): network wrapper and its entropy-coded stream."""

from .codec import RATIO_PRESETS, LearnedOCTCodec, nominal_compression_ratio
from .stream import StreamHeader

__all__ = ["RATIO_PRESETS", "LearnedOCTCodec", "StreamHeader", "nominal_compression_ratio"]
