"""``OverlayCompose``: the ``Compose`` overlays merge into a bundle's preprocessing to insert transforms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.transforms import Compose, EnsureChannelFirst, EnsureChannelFirstd, LoadImage, LoadImaged

LOADERS = (LoadImage, LoadImaged, EnsureChannelFirst, EnsureChannelFirstd)


class OverlayCompose(Compose):
    """``Compose(transforms)`` with ``after_loading`` put right after the leading loading transforms and ``append``
    at the end.

    MONAI's overlay syntax only extends a list at its end, and only a list written out in the config
    (``+preprocessing#transforms``). Merging ``{"_target_": "medsecure_transforms.overlays.compose.OverlayCompose",
    "after_loading": [...]}`` into a bundle's preprocessing dict (``+preprocessing``) places transforms where the
    image still has its stored values and grid (a codec before intensity scaling and resampling); ``append`` adds
    transforms to a preprocessing whose ``transforms`` is an expression or a ``%`` macro (the model zoo's
    ``validate#preprocessing``). The loading transforms are the leading ``LoadImage(d)`` / ``EnsureChannelFirst(d)``
    (subclasses included) of the flattened ``transforms``.

    Args:
        transforms: the bundle's transforms.
        after_loading: transforms to insert after loading.
        append: transforms to add at the end.
        kwargs: ``Compose``'s other arguments (``map_items``, ``lazy`` ...).

    Raises:
        ValueError: ``after_loading`` given but ``transforms`` does not start with a loading transform.
    """

    def __init__(
        self,
        transforms: Sequence[Callable] | Callable | None = None,
        after_loading: Sequence[Callable] = (),
        append: Sequence[Callable] = (),
        **kwargs: Any,
    ) -> None:
        steps = list(Compose(transforms).flatten().transforms) if transforms is not None else []
        count = 0
        while count < len(steps) and isinstance(steps[count], LOADERS):
            count += 1
        if after_loading and count == 0:
            names = [type(t).__name__ for t in steps]
            raise ValueError(f"OverlayCompose: no LoadImaged / EnsureChannelFirstd at the start of {names}")
        super().__init__([*steps[:count], *after_loading, *steps[count:], *append], **kwargs)
