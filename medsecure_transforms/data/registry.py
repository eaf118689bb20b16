"""What the project knows about each dataset folder in the data root (see ``../shared/data/README.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSpec:
    """Static description of one dataset.

    Attributes:
        name: folder name inside the data root (also the registry key).
        spatial_dims: 2 for PNG/JPEG images, 3 for NIfTI volumes.
        image_channels: 3 for RGB, 1 for grayscale.
        label_values: values in the stored label files, in order; they are mapped to ``0..K-1``
            (e.g. binary masks ``(0, 255)`` -> ``0/1``); ``None`` keeps the stored values.
        url: the official source of the original data (not the project's derived copy).
        hash_type, hash_value: checksum of the archive at ``url`` where the source publishes one.
        citation: whom to cite.
    """

    name: str
    spatial_dims: int
    image_channels: int
    label_values: tuple[int, ...] | None
    url: str
    hash_type: str = "md5"
    hash_value: str | None = None
    citation: str = ""
    extra_keys: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_classes(self) -> int | None:
        """Number of label classes including background, when the label values are enumerated."""
        return None if self.label_values is None else len(self.label_values)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "fundus-drishti-gs1",
            2,
            3,
            (0, 1, 2),
            url="http://cvit.iiit.ac.in/projects/mip/drishti-gs/mip-dataset2/Drishti-GS1_files.zip",
            citation="Sivaswamy et al., ISBI 2014",
            extra_keys=("disc", "cup"),
        ),
        DatasetSpec(
            "skin-ham10000",
            2,
            3,
            (0, 255),
            url="https://dataverse.harvard.edu/api/access/datafile/:persistentId?persistentId=doi:10.7910/DVN/DBW86T",
            citation="Tschandl et al., Sci. Data 2018",
        ),
        DatasetSpec(
            "hippocampus-msd",
            3,
            1,
            (0, 1, 2),
            url="https://msd-for-monai.s3-us-west-2.amazonaws.com/Task04_Hippocampus.tar",
            hash_type="md5",
            hash_value="9d24dba78a72977dbd1d2e110310f31b",
            citation="Simpson et al. 2019; Antonelli et al. 2022 (Medical Segmentation Decathlon)",
        ),
        DatasetSpec(
            "cardiac-acdc",
            3,
            1,
            (0, 1, 2, 3),
            url="https://humanheart-project.creatis.insa-lyon.fr/database/api/v1/folder/637218e573e9f0047faa00fc/download",
            citation="Bernard et al., IEEE TMI 2018",
        ),
        DatasetSpec(
            "cardiac-la2018",
            3,
            1,
            (0, 1),
            url="https://www.cardiacatlas.org/atriaseg2018-challenge/atria-seg-data/",
            citation="Xiong et al., Med. Image Anal. 2021",
        ),
        DatasetSpec(
            "hvsmr2016",
            2,
            1,
            (0, 1, 2, 3, 4),
            url="https://segchd.csail.mit.edu/data.html",
            citation="Pace et al., MICCAI 2015",
        ),
        DatasetSpec(
            "oct-kermany",
            2,
            3,
            None,
            url="https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/5699a1d8-d1b6-45db-bb92-b61051445347/file_downloaded",
            citation="Kermany et al., Cell 2018",
        ),
        DatasetSpec(
            "brain-t1-aseg",
            3,
            1,
            None,
            url="https://github.com/voxelmorph/voxelmorph/raw/master/data/test_scan.npz",
            citation="Balakrishnan et al., IEEE TMI 2019 (VoxelMorph)",
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    """Return the spec of ``name`` or raise ``KeyError`` listing the known datasets."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
