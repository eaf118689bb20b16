"""The one dictionary adapter shared by our ``Xd`` transforms: apply an array transform to every selected key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, Transform

from .validation import naming_key


class KeywiseMapTransform(MapTransform):
    """Applies ``self.transform`` (an array transform set by the subclass) to each key of ``keys``.

    A ``ValueError`` / ``TypeError`` of the array transform is re-raised with the key prefixed
    (:func:`~medsecure_transforms.transforms.validation.naming_key`), so a bad input in a pipeline names the
    dictionary entry that caused it.
    """

    transform: Transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            with naming_key(key):
                d[key] = self.transform(d[key])
        return d
