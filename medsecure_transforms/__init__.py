"""medsecure-transforms: attack-test, defend and compress MONAI segmentation pipelines.

Layers (imports point down only):

* ``frequency``  - pure math: block DCT, shifted Fourier features, n-D wavelet subbands.
* ``defenses``, ``codecs``, ``attacks`` - the published methods.
* ``transforms`` - thin MONAI ``Transform``/``MapTransform`` adapters.
* ``evaluation``, ``cli`` - workflows composing the layers.
"""

__version__ = "0.1.0"
