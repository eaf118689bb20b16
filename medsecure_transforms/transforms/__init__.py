"""MONAI transforms (array ``X`` and dictionary ``Xd`` / ``XD`` / ``XDict``) wrapping the project's methods."""

from .frequency_refine import (
    BlockQuantize,
    BlockQuantized,
    FrequencyRefine,
    FrequencyRefineD,
    FrequencyRefined,
    FrequencyRefineDict,
)
from .jpeg import JPEGQuantize, JPEGQuantizeD, JPEGQuantized, JPEGQuantizeDict
from .oct import (
    OCTCodec,
    OCTCodecD,
    OCTCodecd,
    OCTCodecDict,
    OCTDenoise,
    OCTDenoised,
    OCTGrayscale,
    OCTGrayscaled,
    OCTRetinaCrop,
    OCTRetinaCropd,
    OCTRetinaPlace,
    OCTRetinaPlaced,
)
