"""``AfterLoadingCompose``: the ``Compose`` the ``compress`` overlay merges into a bundle's ``preprocessing``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.transforms import Compose, EnsureChannelFirst, EnsureChannelFirstd, LoadImage, LoadImaged

LOADERS = (LoadImage, LoadImaged, EnsureChannelFirst, EnsureChannelFirstd)


class AfterLoadingCompose(Compose):
    """``Compose(transforms)`` with ``after_loading`` put right after the leading loading transforms.

    MONAI's overlay syntax only extends a list at its end (``+preprocessing#transforms``); merging
    ``{"_target_": "medsecure_transforms.overlays.compose.AfterLoadingCompose", "after_loading": [...]}`` into a
    bundle's ``preprocessing`` (``+preprocessing``) instead places transforms where the image still has its stored
    values and grid, e.g. a codec before intensity scaling and resampling. The loading transforms are the leading
    ``LoadImage(d)`` / ``EnsureChannelFirst(d)`` (subclasses included) of the flattened ``transforms``.

    Args:
        transforms: the bundle's transforms.
        after_loading: transforms to insert.
        kwargs: ``Compose``'s other arguments (``map_items``, ``lazy`` ...).

    Raises:
        ValueError: ``after_loading`` given but ``transforms`` does not start with a loading transform.
    """

    def __init__(
        self,
        transforms: Sequence[Callable] | Callable | None = None,
        after_loading: Sequence[Callable] = (),
        **kwargs: Any,
    ) -> None:
        steps = list(Compose(transforms).flatten().transforms) if transforms is not None else []
        count = 0
        while count < len(steps) and isinstance(steps[count], LOADERS):
            count += 1
        if after_loading and count == 0:
            names = [type(t).__name__ for t in steps]
            raise ValueError(f"AfterLoadingCompose: no LoadImaged / EnsureChannelFirstd at the start of {names}")
        super().__init__([*steps[:count], *after_loading, *steps[count:]], **kwargs)
