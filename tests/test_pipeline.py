"""The input pipeline feeds fit() on this backend; batches follow the
model-input convention; shuffling and augmentation are seeded."""

import numpy as np
import pytest

from keras_pu.data import SegmentationAugmentation
from keras_pu.data import SegmentationSequence
from keras_pu.data import labelled_batches
from keras_pu.data import load_dataset
from keras_pu.data import preprocess_image
from keras_pu.data import read_mask
from keras_pu.models import PUUNet
from tests.dataset_factory import make_busi
from tests.dataset_factory import make_kvasir
from tests.test_models import TINY

SIZE = TINY["input_shape"][:2]


@pytest.fixture(scope="module")
def busi(tmp_path_factory):
    root = tmp_path_factory.mktemp("busi")
    make_busi(root)
    return load_dataset("busi", root)


def test_batches_follow_the_model_input_convention(busi):
    sequence = SegmentationSequence(busi, image_size=SIZE, batch_size=4)
    assert len(sequence) == 3     # 9 samples
    images, masks = sequence[0]
    assert images.shape == (4, *SIZE, 3) and images.dtype == np.float32
    assert masks.shape == (4, *SIZE, 1) and masks.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(np.unique(masks)) <= {0.0, 1.0}
    # Grayscale BUSI images become three equal channels.
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    # The last batch is smaller unless drop_remainder.
    assert sequence[2][0].shape[0] == 1
    assert len(SegmentationSequence(busi, SIZE, batch_size=4, drop_remainder=True)) == 2
    # Masks: the sample's merged mask resized with nearest neighbour.
    first = busi[0]
    expected = read_mask(first.mask_paths, size=SIZE)
    np.testing.assert_array_equal(masks[0, ..., 0], expected)
    np.testing.assert_allclose(images[0], preprocess_image(first.image_path, SIZE))


def test_shuffle_is_seeded_per_epoch(busi):
    def epoch_ids(sequence):
        return [s.id for i in range(len(sequence)) for s in sequence.batch_samples(i)]

    a = SegmentationSequence(busi, SIZE, batch_size=4, shuffle=True, seed=3)
    b = SegmentationSequence(busi, SIZE, batch_size=4, shuffle=True, seed=3)
    first = epoch_ids(a)
    assert first == epoch_ids(b)
    assert sorted(first) == sorted(busi.ids) and first != busi.ids
    a.on_epoch_end()
    assert epoch_ids(a) != first and sorted(epoch_ids(a)) == sorted(first)
    b.set_epoch(1)
    assert epoch_ids(a) == epoch_ids(b)
    assert epoch_ids(SegmentationSequence(busi, SIZE, batch_size=4)) == busi.ids


def test_augmented_batches_are_reproducible_and_aligned(busi):
    augment = SegmentationAugmentation(rotation=30, zoom=0.2)
    a = SegmentationSequence(busi, SIZE, batch_size=4, augmentation=augment, seed=1)
    b = SegmentationSequence(busi, SIZE, batch_size=4, augmentation=augment, seed=1)
    images, masks = a[1]
    again = b[1]
    np.testing.assert_array_equal(images, again[0])
    np.testing.assert_array_equal(masks, again[1])
    plain_images, plain_masks = SegmentationSequence(busi, SIZE, batch_size=4)[1]
    assert not np.array_equal(masks, plain_masks) or not np.allclose(images, plain_images)
    a.on_epoch_end()
    assert not np.array_equal(a[1][0], images)      # new epoch, new draw
    assert set(np.unique(masks)) <= {0.0, 1.0}


@pytest.mark.parametrize("cache", [None, "memory"])
def test_batch_parts_read_and_augment_only_their_images(busi, cache, monkeypatch):
    import keras_pu.data.pipeline as pipeline

    augment = SegmentationAugmentation(rotation=30, zoom=0.2, brightness=0.2,
                                       blur=0.5, gamma=0.3, noise=0.05)
    sequence = SegmentationSequence(busi, SIZE, batch_size=4, shuffle=True,
                                    augmentation=augment, seed=2, cache=cache)
    sequence.set_epoch(1)
    whole = sequence[1]
    loaded = []
    real_load = pipeline.load_pair
    monkeypatch.setattr(pipeline, "load_pair",
                        lambda sample, *a, **k: loaded.append(sample.id)
                        or real_load(sample, *a, **k))
    ids = [s.id for s in sequence.batch_samples(1)]
    for part in range(2):
        loaded.clear()
        images, masks = sequence.batch_part(1, part, 2)
        rows = slice(2 * part, 2 * part + 2)
        np.testing.assert_allclose(images, whole[0][rows], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(masks, whole[1][rows])
        assert loaded == ([] if cache else ids[rows])
    with pytest.raises(ValueError, match="equal parts.*multiple of the number"):
        sequence.batch_part(1, 0, 3)
    for part, parts in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="needs 0 <= part < parts"):
            sequence.batch_part(1, part, parts)


def test_labelled_batches_give_ids_and_original_sizes(busi):
    batches = list(labelled_batches(busi, image_size=SIZE, batch_size=4))
    assert [len(b.ids) for b in batches] == [4, 4, 1]
    assert [i for b in batches for i in b.ids] == busi.ids
    from keras_pu.data import image_size

    assert batches[0].original_sizes[0] == image_size(busi[0].image_path)
    assert batches[0].masks.shape == (4, *SIZE, 1)
    assert batches[0].original_masks is None
    full = next(labelled_batches(busi, SIZE, 2, original_masks=True))
    np.testing.assert_array_equal(full.original_masks[1], read_mask(busi[1].mask_paths))


def test_preprocess_image_accepts_arrays_of_any_layout(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    for array in (rgb, rgb[..., 0], rgb[..., :1]):
        out = preprocess_image(array, (8, 12))
        assert out.shape == (8, 12, 3) and out.dtype == np.float32
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(rgb.astype(np.float32), 8)
    with pytest.raises(ValueError, match="image_size"):
        SegmentationSequence([object()], image_size="big")


def test_unreadable_file_in_a_batch_names_it(tmp_path):
    make_kvasir(tmp_path, n=2)
    dataset = load_dataset("kvasir-seg", tmp_path)
    bad = dataset[1].image_path
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=bad.name):
        SegmentationSequence(dataset, SIZE, batch_size=2)[0]


def test_feeds_fit_of_the_tiny_pu_unet(busi):
    model = PUUNet(**TINY)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    sequence = SegmentationSequence(
        busi, SIZE, batch_size=4, shuffle=True, drop_remainder=True,
        augmentation=SegmentationAugmentation(seed=0), seed=0,
    )
    history = model.fit(sequence, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    logits = model.predict(next(labelled_batches(busi, SIZE, 4)).images, verbose=0)
    assert logits.shape == (4, *SIZE, 1)


NO_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None      # as if TensorFlow were not installed
import numpy as np
from keras_pu.data import SegmentationAugmentation, SegmentationSequence, load_dataset
from tests.dataset_factory import make_busi
made = make_busi(sys.argv[1], per_class=1)
augment = SegmentationAugmentation(seed=0)
assert augment.compute_backend == sys.argv[2], augment.compute_backend
images, masks = SegmentationSequence(
    load_dataset("busi", made.root), 32, 3, augmentation=augment)[0]
assert images.shape == (3, 32, 32, 3) and set(np.unique(masks)) <= {0.0, 1.0}
print("OK without tensorflow")
"""


def test_torch_and_jax_users_need_no_tensorflow(tmp_path, backend):
    if backend == "tensorflow":
        pytest.skip("only meaningful for the torch and JAX backends")
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, str(tmp_path), backend],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, KERAS_BACKEND=backend),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK without tensorflow" in result.stdout
