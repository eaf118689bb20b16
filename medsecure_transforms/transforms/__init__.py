"""MONAI transforms (array ``X`` and dictionary ``Xd`` / ``XD`` / ``XDict``) wrapping the project's methods."""

from .fft_detect import FFTDetect, FFTDetectD, FFTDetectd, FFTDetectDict, Reform, ReformD, Reformd, ReformDict
from .frequency_refine import (
    BlockQuantize,
    BlockQuantized,
    FrequencyRefine,
    FrequencyRefineD,
    FrequencyRefined,
    FrequencyRefineDict,
)
from .jpeg import JPEGQuantize, JPEGQuantizeD, JPEGQuantized, JPEGQuantizeDict
from .mv_compress import MVCompress3D, MVCompress3DD, MVCompress3Dd, MVCompress3DDict
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
