"""Networks MONAI does not ship: the MagNet autoencoders and a CPU-sized FC-DenseNet (Tiramisu)."""

from .fc_densenet import FCDenseNet
from .magnet import MagNetAutoEncoderI, MagNetAutoEncoderII
from .oct_compression import OCTCodecNet, ScalarQuantizer

__all__ = ["FCDenseNet", "MagNetAutoEncoderI", "MagNetAutoEncoderII", "OCTCodecNet", "ScalarQuantizer"]
