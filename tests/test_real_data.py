"""The real datasets in $KERAS_PU_DATA (default ../shared/data): loaders,
counts from each SOURCE.md, split coverage, one pipeline batch. Skipped
with the reason when the data is absent."""

import hashlib

import numpy as np
import pytest

from keras_pu.data import SPLITS
from keras_pu.data import SegmentationSequence
from keras_pu.data import apply_split
from keras_pu.data import detect_layout
from keras_pu.data import load_dataset
from keras_pu.data import read_mask
from keras_pu.data import read_split_file
from tests.conftest import shared_data_dir

DATASETS = {  # layout: (folder, images, mask files)
    "kvasir-seg": ("Kvasir-SEG", 1000, 1000),
    "busi": ("BUSI", 780, 798),
    "isic2017": ("ISIC2017", 2150, 2150),
}


@pytest.fixture(scope="module", params=list(DATASETS))
def real(request):
    layout = request.param
    base = shared_data_dir()
    if base is None:
        pytest.skip("no real data: set KERAS_PU_DATA or put it in ../shared/data")
    folder = base / DATASETS[layout][0]
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return layout, folder, load_dataset(layout, folder)


def test_counts_match_source_md(real):
    layout, folder, dataset = real
    _, images, masks = DATASETS[layout]
    assert detect_layout(folder) == layout
    assert len(dataset) == images
    assert sum(len(s.mask_paths) for s in dataset) == masks
    if layout == "busi":
        classes = [s.metadata["class"] for s in dataset]
        assert [classes.count(c) for c in ("benign", "malignant", "normal")] == [437, 210, 133]
        assert len(dataset["benign (195)"].mask_paths) == 3
        assert not read_mask(dataset["normal (1)"].mask_paths).any()
    if layout == "isic2017":
        subsets = [s.metadata["subset"] for s in dataset]
        assert subsets.count("training") == 2000 and subsets.count("validation") == 150


def test_splits_cover_the_dataset(real):
    layout, folder, dataset = real
    record = read_split_file(layout)
    manifest = hashlib.sha256((folder / "MANIFEST.sha256").read_bytes()).hexdigest()
    assert record["dataset_manifest_sha256"] == manifest
    parts = [apply_split(dataset, s) for s in SPLITS]
    covered = {i for p in parts for i in p.ids} | {e["id"] for e in record["excluded"]}
    assert covered == set(dataset.ids)


def test_one_pipeline_batch(real):
    layout, folder, dataset = real
    test = apply_split(dataset, "test")
    images, masks = SegmentationSequence(test, image_size=64, batch_size=4)[0]
    assert images.shape == (4, 64, 64, 3) and masks.shape == (4, 64, 64, 1)
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.05
    assert set(np.unique(masks)) <= {0.0, 1.0}


def test_masks_read_as_before_the_label_rule(real):
    """The label-map rule of read_mask (any non-zero label of a lossless
    mask) reads the real masks exactly as the old grey-level rule did
    (> 127, or == 1 for 0/1 files): every 20th sample, no warning."""
    import warnings

    from PIL import Image

    layout, _, dataset = real
    for sample in list(dataset)[::20]:
        expected = None
        for path in sample.mask_paths:
            gray = np.asarray(Image.open(path).convert("L"))
            lossy = str(path).lower().endswith((".jpg", ".jpeg"))
            old = gray == 1 if gray.max() <= 1 and not lossy else gray > 127
            expected = old if expected is None else expected | old
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(read_mask(sample.mask_paths), expected)
