"""MONAI image saving without half-written files: :class:`AtomicSaveImaged`, the writer of the bundles' configs."""

from __future__ import annotations

from monai.data import ImageWriter
from monai.transforms import SaveImaged

from ..artefacts import staged_file

__all__ = ["AtomicSaveImaged", "atomic_image_writer"]


def atomic_image_writer(writer: type[ImageWriter]) -> type[ImageWriter]:
    """``writer`` whose ``write(filename)`` writes a temporary file next to ``filename`` (same extension, so the
    format is unchanged) and renames it into place; on an error the temporary file is removed and ``filename`` is
    left as it was."""

    class AtomicWriter(writer):
        def write(self, filename, verbose: bool = True, **kwargs):
            with staged_file(filename) as temporary:
                return super().write(str(temporary), verbose=verbose, **kwargs)

    AtomicWriter.__name__ = AtomicWriter.__qualname__ = f"Atomic{writer.__name__}"
    return AtomicWriter


class AtomicSaveImaged(SaveImaged):
    """``SaveImaged`` (same arguments) whose every candidate writer is wrapped by :func:`atomic_image_writer`: a
    crash while saving never leaves a truncated image under the output name."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.saver.writers = tuple(atomic_image_writer(writer) for writer in self.saver.writers)
