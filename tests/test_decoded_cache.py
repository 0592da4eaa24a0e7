"""keras_pu.data.DecodedCache: decode once, same batches, rebuilt when the
data changes, memory-mapped files written atomically. Pure numpy/Pillow:
runs in the TensorFlow session only (no backend involved)."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from keras_pu.data import DecodedCache
from keras_pu.data import SegmentationAugmentation
from keras_pu.data import SegmentationSequence
from keras_pu.data import load_dataset
from keras_pu.data import ImageReadError
from tests.conftest import once_per_suite
from tests.dataset_factory import make_busi

SIZE = (32, 32)

pytestmark = once_per_suite("backend-independent (numpy and Pillow)")


@pytest.fixture
def busi(tmp_path):
    root = tmp_path / "busi"
    make_busi(root)
    return load_dataset("busi", root)


@pytest.mark.parametrize("cache", ["memory", "folder"])
def test_cached_batches_equal_decoded_batches(busi, tmp_path, cache):
    cache = tmp_path / "cache" if cache == "folder" else cache
    augmentation = SegmentationAugmentation(seed=3)
    plain = SegmentationSequence(busi, SIZE, batch_size=4, shuffle=True,
                                 seed=5, augmentation=augmentation)
    cached = SegmentationSequence(busi, SIZE, batch_size=4, shuffle=True,
                                  seed=5, augmentation=augmentation,
                                  cache=cache)
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for index in range(len(plain)):
            for a, b in zip(plain[index], cached[index]):
                assert a.dtype == b.dtype == np.float32
                np.testing.assert_array_equal(a, b)


def test_folder_cache_is_reused_and_rebuilt_when_data_changes(busi, tmp_path):
    folder = tmp_path / "cache"
    first = DecodedCache.build(busi, SIZE, directory=folder)
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2 and all(f.endswith(".npy") for f in files)
    assert isinstance(first.images, np.memmap)
    again = DecodedCache.build(busi, SIZE, directory=folder)
    assert again.key == first.key and sorted(
        p.name for p in folder.iterdir()) == files  # read, not rewritten
    # Another size or threshold is another cache.
    assert DecodedCache.build(busi, (64, 32), directory=folder).key != first.key
    assert DecodedCache.build(busi, SIZE, 200, directory=folder).key != first.key
    # A changed image file (new content and time) is never read stale.
    sample = busi[0]
    with Image.open(sample.image_path) as img:
        changed = Image.new(img.mode, img.size, 255)
    changed.save(sample.image_path)
    os.utime(sample.image_path, ns=(1, 1))
    rebuilt = DecodedCache.build(busi, SIZE, directory=folder)
    assert rebuilt.key != first.key
    assert rebuilt.images[0].min() == 255
    assert not list(folder.glob("*.tmp"))


def test_interrupted_write_leaves_no_file_under_the_final_name(
        busi, tmp_path, monkeypatch):
    folder = tmp_path / "cache"

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        DecodedCache.build(busi, SIZE, directory=folder)
    assert list(folder.iterdir()) == []


def test_unreadable_file_is_named_when_building(busi):
    busi[2].image_path.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=re.escape(busi[2].image_path.name)):
        DecodedCache.build(busi, SIZE)


def test_a_cache_of_other_samples_or_size_is_refused(busi):
    small = DecodedCache.build(list(busi)[:3], SIZE)
    with pytest.raises(ValueError, match="lacks samples"):
        SegmentationSequence(busi, SIZE, cache=small)
    with pytest.raises(ValueError, match="wants"):
        SegmentationSequence(list(busi)[:3], (64, 64), cache=small)
    with pytest.raises(KeyError, match="not in this cache"):
        small.batch(["no such id"])
