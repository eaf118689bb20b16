"""DICOM SEG segment descriptions (SNOMED CT codes) for the hippocampus bundle's labels.

MSD Task04 labels 1 and 2 are the anterior (head) and posterior (body and tail) hippocampus. DICOM's context groups
code the structure (SCT 5366008 "Hippocampus", CID 7140/7151) but not its parts, so each segment carries the
structure as Segmented Property Type and the part as a Segmented Property Type Modifier (SCT 255549009 "Anterior",
SCT 255551008 "Posterior"); the category is SCT 91723000 "Anatomical Structure" (CID 7150).
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from monai.deploy.operators.dicom_seg_writer_operator import SegmentDescription
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

ALGORITHM_NAME = "medsecure hippocampus_seg (FrequencyRefine-defended)"


class ModifiedSegmentDescription(SegmentDescription):
    """The SDK's :class:`SegmentDescription` plus Segmented Property Type Modifier codes (e.g. laterality, part)."""

    def __init__(self, *args, type_modifiers: Sequence[Code] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._type_modifiers = tuple(type_modifiers)

    def to_segment_description(self, segment_number: int) -> hd.seg.SegmentDescription:
        description = super().to_segment_description(segment_number)
        if self._type_modifiers:
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept(c.value, c.scheme_designator, c.meaning) for c in self._type_modifiers
            ]
        return description


def hippocampus_segments(algorithm_version: str) -> list[ModifiedSegmentDescription]:
    """Descriptions of label 1 (anterior) and label 2 (posterior hippocampus), in label order."""
    return [
        ModifiedSegmentDescription(
            segment_label=f"Hippocampus {part.meaning.lower()}",
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.Hippocampus,
            algorithm_name=ALGORITHM_NAME,
            algorithm_version=algorithm_version,
            type_modifiers=[part],
        )
        for part in (codes.SCT.Anterior, codes.SCT.Posterior)
    ]
