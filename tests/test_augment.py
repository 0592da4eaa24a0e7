"""SegmentationAugmentation: image and mask stay aligned under every
augmentation, on the backend this session runs (the suite runs per backend).
Keras 3.15.1's own mask path misaligns RandomRotation on torch (traps.md),
which these tests would catch."""

import importlib.util

import keras
import numpy as np
import pytest

from keras_pu.data import SegmentationAugmentation
from keras_pu.data.augment import resolve_compute_backend

# The layers run on the session's backend, and on TensorFlow (what
# backend="auto" picks when it is installed) if that is another one.
COMPUTE = [keras.backend.backend()]
if COMPUTE[0] != "tensorflow" and importlib.util.find_spec("tensorflow"):
    COMPUTE.append("tensorflow")

OFF = dict(horizontal_flip=False, vertical_flip=False, rotation=0, zoom=0,
           translation=0, brightness=0, contrast=0)
# Each geometric augmentation alone, at a large magnitude, and all together.
GEOMETRIC = {
    "horizontal_flip": dict(horizontal_flip=True),
    "vertical_flip": dict(vertical_flip=True),
    "rotation": dict(rotation=60),
    "zoom": dict(zoom=0.4),
    "translation": dict(translation=0.25),
    "defaults": {},
}
SIZE = 64


def shapes(n=4, size=SIZE):
    """An asymmetric L-shaped object per image (so flips and rotations show);
    image = object at 0.9 on 0.1 background, mask = the object."""
    masks = np.zeros((n, size, size), np.float32)
    for i in range(n):
        top, left = 10 + 2 * i, 12 + i
        masks[i, top:top + 28, left:left + 9] = 1
        masks[i, top + 19:top + 28, left:left + 30] = 1
    images = np.repeat((0.1 + 0.8 * masks)[..., None], 3, axis=-1)
    images[..., 1] *= 0.9
    return images.astype(np.float32), masks


def iou(a, b):
    a, b = a > 0.5, b > 0.5
    union = (a | b).sum()
    return 1.0 if union == 0 else (a & b).sum() / union


@pytest.mark.parametrize("compute", COMPUTE)
@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_geometric_augmentations_keep_image_and_mask_aligned(name, compute):
    config = dict(OFF, **GEOMETRIC[name]) if name != "defaults" else {}
    augment = SegmentationAugmentation(**config, backend=compute)
    assert augment.compute_backend == compute
    images, masks = shapes()
    moved = []
    for seed in range(3):
        out_images, out_masks = augment(images, masks, seed=seed)
        assert out_images.shape == images.shape and out_masks.shape == masks.shape
        assert out_images.dtype == np.float32 and out_masks.dtype == np.float32
        assert set(np.unique(out_masks)) <= {0.0, 1.0}
        assert out_images.min() >= 0 and out_images.max() <= 1
        for i in range(len(images)):
            # The object as the image shows it must be where the mask says.
            from_image = out_images[i, ..., 0] > 0.5
            if name == "defaults":   # brightness/contrast move the levels
                level = out_images[i, ..., 0]
                from_image = level > 0.5 * (
                    np.median(level[out_masks[i] > 0])
                    + np.median(level[out_masks[i] == 0])
                )
            assert out_masks[i].sum() > 20, (name, seed, i)
            assert iou(from_image, out_masks[i]) > 0.95, (name, seed, i)
            moved.append(iou(out_masks[i], masks[i]))
    # The augmentation really moved things (the test can fail).
    assert min(moved) < 0.8, (name, moved)


@pytest.mark.parametrize("compute", COMPUTE)
@pytest.mark.parametrize("axis", ["horizontal_flip", "vertical_flip"])
def test_flips_are_exact(axis, compute):
    augment = SegmentationAugmentation(**dict(OFF, **{axis: True}), backend=compute)
    images, masks = shapes(n=8)
    out_images, out_masks = augment(images, masks, seed=1)
    flip_axis = 2 if axis == "horizontal_flip" else 1
    flipped = 0
    for i in range(8):
        if np.array_equal(out_masks[i], masks[i]):
            np.testing.assert_allclose(out_images[i], images[i], atol=1e-6)
        else:
            np.testing.assert_array_equal(out_masks[i], np.flip(masks[i], flip_axis - 1))
            np.testing.assert_allclose(
                out_images[i], np.flip(images[i], flip_axis - 1), atol=1e-6
            )
            flipped += 1
    assert 0 < flipped < 8


@pytest.mark.parametrize("compute", COMPUTE)
def test_rotation_matches_the_analytic_rotation(compute):
    # A fixed +90 degree rotation is counter-clockwise: np.rot90(k=1).
    augment = SegmentationAugmentation(**dict(OFF, rotation=(90, 90)), backend=compute)
    images, masks = shapes()
    out_images, out_masks = augment(images, masks, seed=0)
    for i in range(len(masks)):
        expected = np.rot90(masks[i], k=1)
        assert iou(out_masks[i], expected) > 0.95
        assert iou(out_images[i, ..., 0] > 0.5, expected) > 0.95


@pytest.mark.parametrize("compute", COMPUTE)
def test_zoom_matches_the_analytic_scaling(compute):
    # zoom=(-0.5, -0.5) zooms in 2x about the centre: pixel (y, x) of the
    # output shows input pixel (c + (y - c) / 2, c + (x - c) / 2).
    augment = SegmentationAugmentation(**dict(OFF, zoom=(-0.5, -0.5)), backend=compute)
    images, masks = shapes()
    _, out_masks = augment(images, masks, seed=0)
    c = (SIZE - 1) / 2
    yy, xx = np.mgrid[:SIZE, :SIZE]
    sy = np.clip(np.rint(c + (yy - c) / 2).astype(int), 0, SIZE - 1)
    sx = np.clip(np.rint(c + (xx - c) / 2).astype(int), 0, SIZE - 1)
    for i in range(len(masks)):
        assert iou(out_masks[i], masks[i][sy, sx]) > 0.9


@pytest.mark.parametrize("compute", COMPUTE)
def test_translation_draws_its_two_shifts_independently(compute):
    # Keras's layers reuse an int seed for every draw of a call: the
    # horizontal and vertical shifts came out equal (diagonal moves only).
    augment = SegmentationAugmentation(**dict(OFF, translation=0.25),
                                       backend=compute)
    n = 32
    masks = np.zeros((n, SIZE, SIZE), np.float32)
    masks[:, 28:36, 28:36] = 1  # a centred square
    images = np.repeat(masks[..., None], 3, axis=-1)
    _, out = augment(images, masks, seed=5)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    shifts = np.array([
        ((yy * m).sum() / m.sum() - 31.5, (xx * m).sum() / m.sum() - 31.5)
        for m in out if m.sum() > 0
    ])
    assert len(shifts) > n // 2
    dy, dx = shifts[:, 0], shifts[:, 1]
    assert np.mean(np.abs(dy - dx) > 1.0) > 0.5, shifts
    assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.6


APPEARANCE = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.8,
              "blur": 1.0, "gamma": 0.7, "noise": 0.2}


@pytest.mark.parametrize("compute", COMPUTE)
@pytest.mark.parametrize("name", list(APPEARANCE))
def test_photometric_augmentations_leave_masks_alone(name, compute):
    augment = SegmentationAugmentation(**dict(OFF, **{name: APPEARANCE[name]}),
                                       backend=compute)
    images, masks = shapes()
    images[..., 2] *= 0.3   # coloured, so that saturation shows
    out_images, out_masks = augment(images, masks, seed=3)
    np.testing.assert_array_equal(out_masks, masks)
    assert np.abs(out_images - images).max() > 0.05
    assert out_images.min() >= 0 and out_images.max() <= 1


@pytest.mark.parametrize("compute", COMPUTE)
def test_appearance_augmentations_do_what_they_say(compute):
    images, masks = shapes()
    # Saturation: a grey image stays grey; a coloured one changes colour
    # but not its per-pixel brightness order.
    colour = images.copy()
    colour[..., 2] *= 0.3
    out, _ = SegmentationAugmentation(**dict(OFF, saturation=0.8),
                                      backend=compute)(colour, masks, seed=1)
    assert not np.allclose(out, colour, atol=1e-3)
    grey = np.repeat(images[..., :1], 3, axis=-1)
    out, _ = SegmentationAugmentation(**dict(OFF, saturation=0.8),
                                      backend=compute)(grey, masks, seed=1)
    np.testing.assert_allclose(out, grey, atol=1e-5)
    # Blur with probability 1 smooths every edge: the step at the object's
    # border gets spread over more pixels, the total intensity stays.
    out, _ = SegmentationAugmentation(**dict(OFF, blur=1.0),
                                      backend=compute)(images, masks, seed=1)
    step = np.abs(np.diff(images, axis=2)).max(axis=(1, 2, 3))
    blurred_step = np.abs(np.diff(out, axis=2)).max(axis=(1, 2, 3))
    assert np.all(blurred_step < 0.8 * step)
    # Gamma: monotone per image (order of pixel values kept), the
    # background 0.1 and object 0.9 move the same way in log space.
    out, _ = SegmentationAugmentation(**dict(OFF, gamma=0.7))(images, masks, seed=1)
    for i in range(len(images)):
        g = np.log(out[i, ..., 0]) / np.log(images[i, ..., 0])
        assert np.ptp(g) < 1e-3 and np.exp(-0.7) - 1e-4 <= g.mean() <= np.exp(0.7) + 1e-4
    # Noise: zero-mean, standard deviation at most `noise`, varies by image.
    out, _ = SegmentationAugmentation(**dict(OFF, noise=0.05))(
        np.full_like(images, 0.5), masks, seed=1)
    sd = (out - 0.5).std(axis=(1, 2, 3))
    assert np.all(sd <= 0.05 * 1.05) and np.ptp(sd) > 1e-3
    assert abs(float((out - 0.5).mean())) < 2e-3


PART_CONFIGS = {
    **{name: dict(OFF, **config) for name, config in GEOMETRIC.items()
       if name != "defaults"},
    **{name: dict(OFF, **{name: value}) for name, value in APPEARANCE.items()},
    "everything": dict(rotation=30, zoom=0.2, translation=0.1, **APPEARANCE),
}


@pytest.mark.parametrize("compute", COMPUTE)
@pytest.mark.parametrize("name", list(PART_CONFIGS))
def test_a_part_of_a_batch_gets_that_part_of_the_batch_augmentation(
        name, compute):
    # Data parallelism: each process augments its share of the global batch
    # alone and must get exactly the rows a single process would.
    augment = SegmentationAugmentation(**PART_CONFIGS[name], backend=compute)
    images, masks = shapes(n=8)
    images[..., 2] *= 0.3
    whole = augment(images, masks, seed=11)
    for parts in (2, 4):
        size = len(images) // parts
        outputs = []
        for index in range(parts):
            rows = slice(index * size, (index + 1) * size)
            out = augment(images[rows], masks[rows], seed=11,
                          part=(index, parts))
            np.testing.assert_allclose(out[0], whole[0][rows], rtol=0, atol=1e-6)
            np.testing.assert_array_equal(out[1], whole[1][rows])
            outputs.append(out[0])
        if name == "everything":
            # A part is augmented as those rows of the batch, not as a batch
            # of its own (which would draw the first rows' values).
            alone = augment(images[size:2 * size], masks[size:2 * size],
                            seed=11)
            assert not np.allclose(alone[0], outputs[1], atol=1e-4)


@pytest.mark.parametrize("compute", COMPUTE)
def test_blur_sigma_of_a_two_image_batch_is_not_cut(compute):
    # RandomGaussianBlur draws one (2,) sigma pair per batch: with two
    # images its first dimension is the batch size, yet it is not per image.
    augment = SegmentationAugmentation(**dict(OFF, blur=1.0), backend=compute)
    images, masks = shapes(n=2)
    whole = augment(images, masks, seed=4)
    for index in range(2):
        out = augment(images[index:index + 1], masks[index:index + 1],
                      seed=4, part=(index, 2))
        np.testing.assert_allclose(out[0], whole[0][index:index + 1],
                                   rtol=0, atol=1e-6)


def test_part_must_name_one_of_equal_parts():
    images, masks = shapes(n=4)
    augment = SegmentationAugmentation()
    for part in ((2, 2), (-1, 2), (0, 0), "a", (1,)):
        with pytest.raises(ValueError, match="part"):
            augment(images, masks, seed=1, part=part)


@pytest.mark.parametrize("name", ["saturation", "blur", "gamma", "noise"])
def test_appearance_magnitudes_are_validated(name):
    with pytest.raises(ValueError, match=name):
        SegmentationAugmentation(**{name: -0.1})
    if name in ("saturation", "blur"):
        with pytest.raises(ValueError, match=name):
            SegmentationAugmentation(**{name: 1.5})


def test_deterministic_given_a_seed():
    images, masks = shapes()
    a = SegmentationAugmentation(seed=7)
    b = SegmentationAugmentation(seed=7)
    first_a, first_b = a(images, masks), b(images, masks)
    np.testing.assert_array_equal(first_a[0], first_b[0])
    second = a(images, masks)
    assert not np.array_equal(first_a[0], second[0])   # the n-th call differs
    explicit = SegmentationAugmentation()
    np.testing.assert_array_equal(
        explicit(images, masks, seed=5)[1], explicit(images, masks, seed=5)[1]
    )
    # (B, H, W, 1) masks come back in that shape.
    _, masks4 = explicit(images, masks[..., None], seed=5)
    assert masks4.shape == masks.shape + (1,)


def test_config_roundtrip_and_serialization():
    augment = SegmentationAugmentation(rotation=(-10, 30), zoom=0.2, vertical_flip=False,
                                       saturation=0.2, blur=0.2, gamma=0.3,
                                       noise=0.03, seed=3)
    config = augment.get_config()
    clone = SegmentationAugmentation.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(augment)
    )
    assert isinstance(restored, SegmentationAugmentation)
    assert restored.get_config() == config
    assert [type(l).__name__ for l in restored.layers] == [
        "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
        "RandomBrightness", "RandomContrast", "RandomSaturation",
        "RandomGaussianBlur",
    ]


def test_auto_backend_prefers_tensorflow_and_never_requires_it(monkeypatch):
    import keras_pu.data.augment as augment_module

    active = keras.backend.backend()
    if importlib.util.find_spec("tensorflow"):
        assert resolve_compute_backend("auto") == "tensorflow"
    monkeypatch.setattr(augment_module, "_installed", lambda module: False)
    expected = "tensorflow" if active == "tensorflow" else active
    assert resolve_compute_backend("auto") == expected
    other = {"tensorflow": "jax", "jax": "torch", "torch": "jax"}[active]
    with pytest.raises(ValueError, match="not installed"):
        resolve_compute_backend(other)
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_compute_backend("numpy")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="rotation"):
        SegmentationAugmentation(rotation=-5)
    with pytest.raises(ValueError, match="zoom"):
        SegmentationAugmentation(zoom=(0.3, 0.1))
    with pytest.raises(ValueError, match="fill_mode"):
        SegmentationAugmentation(fill_mode="mirror")
    images, masks = shapes()
    with pytest.raises(ValueError, match="masks"):
        SegmentationAugmentation()(images, masks[:, :10])


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="the PyTorch fast path of the warps")
@pytest.mark.parametrize("name", ["rotation", "zoom", "translation"])
def test_torch_fast_warp_equals_keras_affine_transform(name):
    """keras_pu.data.torch_warp computes Keras's own warp (the keras.ops
    path) for the transforms the layers draw, to float rounding."""
    from keras_pu.data.torch_warp import affine_transform

    augmentation = SegmentationAugmentation(**{**OFF, **GEOMETRIC[name]},
                                            backend="torch")
    (_, layer), = augmentation.geometric_layers
    images, masks = shapes(n=3)
    stacked = keras.ops.convert_to_tensor(
        np.concatenate([images, masks[..., None]], axis=-1))
    for seed in range(3):
        transformation = layer.get_random_transformation(
            stacked, training=True, seed=seed)
        fast = keras.ops.convert_to_numpy(
            layer.transform_images(stacked, transformation, training=True))
        # The same transformation through Keras's own warp.
        layer.backend = layer.backend._backend
        try:
            reference = keras.ops.convert_to_numpy(
                layer.transform_images(stacked, transformation,
                                       training=True))
        finally:
            from keras_pu.data.torch_warp import FastWarpBackend

            layer.backend = FastWarpBackend(layer.backend)
        np.testing.assert_allclose(fast, reference, atol=1e-4)
        assert np.abs(fast - stacked.cpu().numpy()).max() > 0.1  # it moved
    # Other fills go to Keras's implementation.
    x = keras.ops.convert_to_tensor(images)

    def shift():
        # Keras's torch affine_transform reorders its argument in place.
        return keras.ops.convert_to_tensor(
            np.array([[1, 0, 3, 0, 1, -2, 0, 0]] * 3, np.float32))

    for fill_mode in ("reflect", "nearest"):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(affine_transform(
                x, shift(), fill_mode=fill_mode,
                fallback=keras.ops.image.affine_transform)),
            keras.ops.convert_to_numpy(keras.ops.image.affine_transform(
                x, shift(), fill_mode=fill_mode)),
            atol=1e-5)
    with pytest.raises(ValueError, match="fallback"):
        affine_transform(x, shift(), fill_mode="reflect")
