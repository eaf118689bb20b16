"""Dataset layer: data root resolution, ``dataset.json`` readers, MONAI loaders and official downloads."""

from .datalist import SPLITS, dataset_dir, load_datalist
from .datasets import make_dataset
from .download import download_dataset
from .loading import CheckSameSpatialShaped, SafeLoadImaged, loading_transforms
from .registry import DATASETS, DatasetSpec, get_spec
from .root import ENV_VAR, find_data_root, resolve_data_root

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "SPLITS",
    "CheckSameSpatialShaped",
    "DatasetSpec",
    "SafeLoadImaged",
    "dataset_dir",
    "download_dataset",
    "find_data_root",
    "get_spec",
    "load_datalist",
    "loading_transforms",
    "make_dataset",
    "resolve_data_root",
]
