"""Pure math: block DCT, colour conversion, Fourier features, n-D wavelet subbands (torch-first, batched)."""

from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .dct import (
    block_dct2,
    block_idct2,
    block_quantize_roundtrip,
    crop_to_size,
    dct2_basis,
    dct_matrix,
    dequantize,
    from_blocks,
    pad_to_block,
    quantize,
    to_blocks,
)
from .fourier import DOMAINS, fourier_magnitude, to_domain
from .wavelet import (
    dwt_matrices,
    subband_names,
    subband_shapes,
    subband_slices,
    subband_std,
    wavedec_inplace,
    wavedec_nd,
    waverec_inplace,
    waverec_nd,
)
