"""Data: image I/O, the datasets keras-pu knows (one module each in
`keras_pu.data.layouts`, collected by `keras_pu.data.dataset_registry`),
committed splits, augmentation and the input pipeline."""

from keras_pu.data.dataset_registry import get_dataset
from keras_pu.data.dataset_registry import list_datasets
from keras_pu.data.datasets import LAYOUTS
from keras_pu.data.datasets import DatasetError
from keras_pu.data.datasets import Sample
from keras_pu.data.datasets import SegmentationDataset
from keras_pu.data.datasets import detect_layout
from keras_pu.data.datasets import load_dataset
from keras_pu.data.io import ImageReadError
from keras_pu.data.io import MaskWarning
from keras_pu.data.scanning import DatasetSpec
from keras_pu.data.io import image_size
from keras_pu.data.io import read_image
from keras_pu.data.io import read_mask
from keras_pu.data.augment import SegmentationAugmentation
from keras_pu.data.cache import DecodedCache
from keras_pu.data.pipeline import LabelledBatch
from keras_pu.data.pipeline import SegmentationSequence
from keras_pu.data.pipeline import labelled_batches
from keras_pu.data.pipeline import load_pair
from keras_pu.data.pipeline import preprocess_image
from keras_pu.data.splits import SPLIT_DATASETS
from keras_pu.data.splits import SPLITS
from keras_pu.data.splits import apply_split
from keras_pu.data.splits import load_split
from keras_pu.data.splits import read_split_file

__all__ = [
    "DatasetSpec",
    "get_dataset",
    "list_datasets",
    "LAYOUTS",
    "DatasetError",
    "Sample",
    "SegmentationDataset",
    "detect_layout",
    "load_dataset",
    "ImageReadError",
    "MaskWarning",
    "image_size",
    "read_image",
    "read_mask",
    "SegmentationAugmentation",
    "DecodedCache",
    "LabelledBatch",
    "SegmentationSequence",
    "labelled_batches",
    "load_pair",
    "preprocess_image",
    "SPLIT_DATASETS",
    "SPLITS",
    "apply_split",
    "load_split",
    "read_split_file",
]
