"""Image preprocessing methods that are neither codecs nor defenses (OCT speckle denoising and retina band)."""

from .oct_retina import RetinaBand, crop_to_canvas, denoise_speckle, find_retina_band, place_from_canvas

__all__ = ["RetinaBand", "crop_to_canvas", "denoise_speckle", "find_retina_band", "place_from_canvas"]
