"""Mask-safe data augmentation for binary segmentation, from Keras core
preprocessing layers only.

Why not pass `{"images": x, "segmentation_masks": m}` to the Keras layers:
on Keras 3.15.1 `RandomRotation` rotates the masks differently from the
images under the torch backend (IoU 0.05 of a square), and other layers'
mask paths differ between backends. Here every geometric layer transforms
ONE tensor -- the images with the mask stacked as an extra channel -- through
`transform_images`, so image and mask go through literally the same
resampling on every backend. The mask channel is re-thresholded afterwards
(bilinear resampling + threshold 0.5 keeps it binary, with smoother edges
than nearest-neighbour). Photometric layers see the image channels only.

Where it computes (`backend`): the layers run on one Keras backend of
their own, switched with `layer.backend.set_backend`, the mechanism Keras
uses to run preprocessing layers inside tf.data. The default `"auto"` picks
TensorFlow when it is installed, whatever backend trains the model: on CPU
its fused resampling kernels are far faster than the other backends' eager
ops for this host-side work (one 8 x 256 x 256 batch through rotation:
~0.05 s on TensorFlow, ~0.2 s on JAX eager, ~2.5 s on the Keras torch
backend, whose `affine_transform` gathers in Python). Without TensorFlow it
uses the active backend, so TensorFlow is never required; on PyTorch the
warps then go through `torch.nn.functional.grid_sample`
(`keras_pu.data.torch_warp`), the same function as Keras's warp (tested),
~40x faster. When TensorFlow
serves a torch or JAX model, it is kept on the CPU and its GPUs are hidden
(if it has not started yet), so it cannot take the GPU memory the model
needs.

Randomness: each call draws its transformations from explicit seeds
(`get_random_transformation(..., seed=...)`, one seed generator per layer
started at a seed derived from the call's `seed`), so a batch's augmentation
depends only on (seed, epoch, batch index) -- not on the number of workers
or the order in which they run.

Parts of a batch (`part=(index, count)`): data-parallel training gives each
process an equal part of every global batch, augmented exactly as a single
process would augment the whole batch. Each layer's transformation is drawn
for the whole batch (one value per image: cheap) and only the part's entries
are applied, and gamma and noise are drawn per image from (seed, position in
the batch); so a process decodes and resamples its own images only, and the
parts concatenated are the whole batch's augmentation.
"""

import contextlib
import importlib.util

import keras
import numpy as np

COMPUTE_BACKENDS = ("auto", "tensorflow", "jax", "torch")

_GEOMETRIC = ("horizontal_flip", "vertical_flip", "rotation", "zoom", "translation")
_PHOTOMETRIC = ("brightness", "contrast", "saturation", "blur", "gamma", "noise")


def _installed(module):
    return importlib.util.find_spec(module) is not None


def resolve_compute_backend(backend="auto"):
    """The backend the augmentation layers run on (see module docstring)."""
    active = keras.backend.backend()
    if backend not in COMPUTE_BACKENDS:
        raise ValueError(
            f"SegmentationAugmentation: backend must be one of {COMPUTE_BACKENDS}, "
            f"got {backend!r}"
        )
    if backend == "auto":
        if active == "tensorflow" or _installed("tensorflow"):
            return "tensorflow"
        return active
    if backend != active and not _installed(backend):
        raise ValueError(
            f"SegmentationAugmentation: backend={backend!r} is not installed; "
            f"use 'auto' or the active backend {active!r}"
        )
    return backend


_TF_GPUS_HIDDEN = False


def _tensorflow_cpu_scope():
    """Keeps TensorFlow on the CPU when it serves another backend's model."""
    global _TF_GPUS_HIDDEN
    import tensorflow as tf

    if not _TF_GPUS_HIDDEN:
        _TF_GPUS_HIDDEN = True
        try:
            tf.config.set_visible_devices([], "GPU")
        except (RuntimeError, ValueError):
            pass  # TensorFlow already started: the device scope still applies
    return tf.device("/CPU:0")


def _seed_stream(layer, seed):
    """A seed generator started at `seed`, for one call of a Keras
    preprocessing layer, or None (the layer's own generator).

    Keras 3.15's layers draw every random quantity of a call from the `seed`
    argument they are given; an int seed is reused as is for each draw, so
    two draws of the same shape come out equal: `RandomTranslation` moved
    every image by the same fraction horizontally and vertically (along the
    diagonal only) and `RandomGaussianBlur`'s sigma followed its apply-or-not
    draw. A `SeedGenerator` advances between draws, so they are independent,
    and the same `seed` still gives the same transformation."""
    if seed is None:
        return None
    return keras.random.SeedGenerator(int(seed), backend=layer.backend)


# The Keras 3.15 layers' random transformations hold arrays with one entry
# per image (first dimension the batch size: cut to the part's rows), the
# batch's shape (`input_shape`, `batch_size`: become the part's), and
# properties of the whole batch, kept. RandomGaussianBlur's `blur_factor`
# (one sigma pair for the batch, shape (2,)) is listed because its first
# dimension equals the batch size when the batch holds two images.
_WHOLE_BATCH_ENTRIES = frozenset({"blur_factor"})


def _part_of_transformation(transformation, rows, batch_size):
    """The entries of a whole batch's `transformation` for the images
    `rows` (a slice) of it."""
    part_size = rows.stop - rows.start
    part = {}
    for key, value in transformation.items():
        if key == "batch_size":
            part[key] = part_size
        elif key == "input_shape":
            part[key] = (part_size,) + tuple(value)[1:]
        elif (key not in _WHOLE_BATCH_ENTRIES
              and len(getattr(value, "shape", ())) > 0
              and value.shape[0] == batch_size):
            part[key] = value[rows]
        else:
            part[key] = value
    return part


def _symmetric(value, name):
    """A magnitude `v` -> (-v, v); a pair is kept as (low, high)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError(
                f"SegmentationAugmentation: {name} must be a number or a "
                f"(low, high) pair with low <= high, got {value!r}"
            )
        return float(value[0]), float(value[1])
    value = float(value)
    if value < 0:
        raise ValueError(
            f"SegmentationAugmentation: {name} must be >= 0, got {value!r}"
        )
    return -value, value


def _part_rows(part, size):
    """(rows, batch size): the rows of the whole batch that a call's `size`
    images are, and the size of that batch."""
    if part is None:
        return slice(0, size), size
    try:
        index, count = (int(v) for v in part)
    except (TypeError, ValueError):
        raise ValueError(
            "SegmentationAugmentation: part must be (index, count), got "
            f"{part!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            "SegmentationAugmentation: part (index, count) needs "
            f"0 <= index < count, got {part!r}")
    return slice(index * size, (index + 1) * size), count * size


@keras.saving.register_keras_serializable(package="keras_pu")
class SegmentationAugmentation:
    """Random flips, rotation, zoom, translation (image and mask alike) and
    brightness, contrast, saturation, blur, gamma and noise (image only) for
    batches of images and binary masks.

    Built from `keras.layers.RandomFlip`, `RandomRotation`, `RandomZoom`,
    `RandomTranslation`, `RandomBrightness`, `RandomContrast`,
    `RandomSaturation` and `RandomGaussianBlur`; gamma and Gaussian noise,
    which Keras has no seedable image layer for, are drawn with numpy from
    the same per-call seed. Runs on the active Keras backend (TensorFlow,
    PyTorch or JAX). Set a magnitude to 0 (or a flip to False) to switch
    that augmentation off; the four appearance augmentations after contrast
    are off by default (the recipes of the presets switch them on, as
    nnU-Net does, for images from other devices and hospitals).

    Args:
        horizontal_flip: flip left-right with probability 0.5. Default True.
        vertical_flip: flip top-bottom with probability 0.5. Default True
            (right for dermoscopy and endoscopy; consider False for
            ultrasound, whose probe is always at the top).
        rotation: maximum rotation in degrees, drawn uniformly in
            [-rotation, rotation], or a (low, high) pair. Positive is
            counter-clockwise. Default 15.
        zoom: `keras.layers.RandomZoom` factor, the same for height and
            width (aspect ratio kept): drawn in [-zoom, zoom] or a
            (low, high) pair; positive zooms out (objects get smaller),
            negative zooms in. Default 0.1.
        translation: maximum shift as a fraction of height and width, drawn
            in [-translation, translation]. Default 0.05.
        brightness: maximum brightness shift as a fraction of the [0, 1]
            range (`keras.layers.RandomBrightness`). Default 0.1.
        contrast: maximum contrast change, factor in
            [1 - contrast, 1 + contrast] (`keras.layers.RandomContrast`).
            Default 0.1.
        saturation: maximum colour-saturation change, factor in
            [1 - saturation, 1 + saturation]
            (`keras.layers.RandomSaturation`). Default 0.
        blur: probability that an image is blurred with a 5x5 Gaussian of
            sigma in [0.5, 1.5] pixels (`keras.layers.RandomGaussianBlur`).
            Default 0.
        gamma: maximum |log gamma| of a gamma change `x ** gamma`, gamma
            drawn log-uniformly per image (0.4: gamma in [0.67, 1.49]).
            Default 0.
        noise: maximum standard deviation of additive Gaussian noise (in
            [0, 1] pixel units), drawn uniformly per image. Default 0.
        fill_mode: how rotation, zoom and translation fill pixels from
            outside the image: `"constant"` (default: black image, background
            mask), `"reflect"`, `"wrap"` or `"nearest"`. Image and mask are
            filled the same way, so the labels stay right either way.
        interpolation: `"bilinear"` (default) or `"nearest"`.
        mask_threshold: the resampled mask is foreground above this value.
            Default 0.5.
        seed: int or None. With a seed, calls without an explicit `seed`
            are reproducible (the n-th call uses `(seed, n)`).
        backend: where the layers compute: `"auto"` (default: TensorFlow if
            installed, else the active Keras backend), or `"tensorflow"`,
            `"jax"`, `"torch"`.

    Call arguments:
        images: float array (B, H, W, C) in [0, 1].
        masks: array (B, H, W) or (B, H, W, 1) with values in {0, 1}.
        seed: optional int; the same seed gives the same augmentation.
        part: optional `(index, count)`: `images` and `masks` are part
            `index` of `count` equal parts of a batch of `count * B` images
            (data parallelism: a process's share of the global batch). The
            result is that part of the whole batch's augmentation with this
            seed, for the work of B images.

    Returns:
        (images, masks) as float32 numpy arrays of the input shapes; masks
        in {0, 1}.

    Example:
    >>> augment = SegmentationAugmentation(rotation=30, seed=0)
    >>> images, masks = augment(images, masks)
    """

    def __init__(
        self,
        horizontal_flip=True,
        vertical_flip=True,
        rotation=15.0,
        zoom=0.1,
        translation=0.05,
        brightness=0.1,
        contrast=0.1,
        saturation=0.0,
        blur=0.0,
        gamma=0.0,
        noise=0.0,
        fill_mode="constant",
        interpolation="bilinear",
        mask_threshold=0.5,
        seed=None,
        backend="auto",
    ):
        if fill_mode not in ("constant", "reflect", "wrap", "nearest"):
            raise ValueError(
                "SegmentationAugmentation: fill_mode must be 'constant', "
                f"'reflect', 'wrap' or 'nearest', got {fill_mode!r}"
            )
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                "SegmentationAugmentation: interpolation must be 'bilinear' "
                f"or 'nearest', got {interpolation!r}"
            )
        if not 0.0 < float(mask_threshold) < 1.0:
            raise ValueError(
                "SegmentationAugmentation: mask_threshold must be in (0, 1), "
                f"got {mask_threshold!r}"
            )
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.rotation = rotation
        self.zoom = zoom
        self.translation = translation
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = float(saturation)
        self.blur = float(blur)
        self.gamma = float(gamma)
        self.noise = float(noise)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.mask_threshold = float(mask_threshold)
        self.seed = seed
        self.backend = backend
        self.compute_backend = resolve_compute_backend(backend)
        self._calls = 0

        rotation_range = _symmetric(rotation, "rotation")
        zoom_range = _symmetric(zoom, "zoom")
        translation_range = _symmetric(translation, "translation")
        brightness_range = _symmetric(brightness, "brightness")
        contrast_range = _symmetric(contrast, "contrast")
        if zoom_range[0] <= -1.0:
            raise ValueError(
                f"SegmentationAugmentation: zoom must be > -1, got {zoom!r}"
            )
        resample = dict(fill_mode=fill_mode, interpolation=interpolation,
                        fill_value=0.0)
        # (name, layer) in the order they are applied.
        self.geometric_layers = []
        if self.horizontal_flip:
            self.geometric_layers.append(
                ("horizontal_flip", keras.layers.RandomFlip("horizontal"))
            )
        if self.vertical_flip:
            self.geometric_layers.append(
                ("vertical_flip", keras.layers.RandomFlip("vertical"))
            )
        if rotation_range != (0.0, 0.0):
            self.geometric_layers.append(("rotation", keras.layers.RandomRotation(
                (rotation_range[0] / 360.0, rotation_range[1] / 360.0), **resample
            )))
        if zoom_range != (0.0, 0.0):
            self.geometric_layers.append(
                ("zoom", keras.layers.RandomZoom(zoom_range, None, **resample))
            )
        if translation_range != (0.0, 0.0):
            self.geometric_layers.append(("translation", keras.layers.RandomTranslation(
                translation_range, translation_range, **resample
            )))
        self.photometric_layers = []
        if brightness_range != (0.0, 0.0):
            self.photometric_layers.append(("brightness", keras.layers.RandomBrightness(
                brightness_range, value_range=(0.0, 1.0)
            )))
        if contrast_range != (0.0, 0.0):
            low, high = contrast_range
            if low < -1.0:
                raise ValueError(
                    f"SegmentationAugmentation: contrast must be <= 1, got {contrast!r}"
                )
            # RandomContrast takes a non-negative (lower, upper) and draws a
            # factor in [1 - lower, 1 + upper].
            self.photometric_layers.append(("contrast", keras.layers.RandomContrast(
                (-low, high), value_range=(0.0, 1.0)
            )))
        for name in ("saturation", "blur", "gamma", "noise"):
            value = getattr(self, name)
            if not (value >= 0.0 and np.isfinite(value)):
                raise ValueError(
                    f"SegmentationAugmentation: {name} must be a number >= 0, "
                    f"got {value!r}"
                )
        if self.saturation:
            if self.saturation >= 1.0:
                raise ValueError(
                    "SegmentationAugmentation: saturation must be < 1, got "
                    f"{saturation!r}"
                )
            # RandomSaturation draws f and scales saturation by f / (1 - f):
            # f = m / (1 + m) for the multipliers m = 1 -+ saturation.
            low, high = 1.0 - self.saturation, 1.0 + self.saturation
            self.photometric_layers.append(("saturation", keras.layers.RandomSaturation(
                (low / (1.0 + low), high / (1.0 + high)), value_range=(0.0, 1.0)
            )))
        if self.blur:
            if self.blur > 1.0:
                raise ValueError(
                    "SegmentationAugmentation: blur is a probability, <= 1; got "
                    f"{blur!r}"
                )
            # factor (p, p): each image is blurred with probability p.
            self.photometric_layers.append(("blur", keras.layers.RandomGaussianBlur(
                (self.blur, self.blur), kernel_size=5, sigma=(0.5, 1.5),
                value_range=(0.0, 1.0)
            )))

        for layer in self.layers:
            layer.backend.set_backend(self.compute_backend)
        if self.compute_backend == "torch":
            # Keras's torch affine_transform is ~40x slower than torch's own
            # grid_sample for the same warp (see keras_pu.data.torch_warp).
            from keras_pu.data.torch_warp import FastWarpBackend

            for _, layer in self.geometric_layers:
                layer.backend = FastWarpBackend(layer.backend)

    @property
    def layers(self):
        """The Keras layers used, in the order they are applied."""
        return [l for _, l in self.geometric_layers + self.photometric_layers]

    def _layer_seeds(self, seed):
        if seed is None:
            if self.seed is None:
                return [None] * (len(self.layers) + 1)
            seed = np.random.SeedSequence([int(self.seed), self._calls])
            self._calls += 1
            seed = int(seed.generate_state(1)[0])
        # One more seed than layers: the last draws gamma and noise.
        states = np.random.SeedSequence(int(seed)).generate_state(len(self.layers) + 1)
        # Keras int seeds must fit int32 on some backends.
        return [int(s) & 0x7FFFFFFF for s in states]

    def __call__(self, images, masks, seed=None, part=None):
        images = np.asarray(images, dtype=np.float32)
        masks = np.asarray(masks, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(
                "SegmentationAugmentation: images must be a batch (B, H, W, C), "
                f"got shape {images.shape}"
            )
        squeeze = masks.ndim == 3
        if squeeze:
            masks = masks[..., None]
        if masks.shape[:3] != images.shape[:3] or masks.shape[-1] != 1:
            raise ValueError(
                "SegmentationAugmentation: masks must be (B, H, W) or (B, H, W, 1) "
                f"matching images {images.shape}, got {masks.shape}"
            )
        rows, batch_size = _part_rows(part, len(images))
        if not self.layers and not (self.gamma or self.noise):
            return images, masks[..., 0] if squeeze else masks
        scope = contextlib.nullcontext()
        if self.compute_backend == "tensorflow" and keras.backend.backend() != "tensorflow":
            scope = _tensorflow_cpu_scope()
        with scope:
            images, masks = self._augment(
                images, masks, self._layer_seeds(seed), rows, batch_size)
        return images, masks[..., 0] if squeeze else masks

    def _augment(self, images, masks, seeds, rows, batch_size):
        seeds = iter(seeds)
        channels = images.shape[-1]
        if self.layers:
            ops = self.layers[0].backend   # a keras DynamicBackend on compute_backend
            # What the transformations are drawn for: the whole batch (the
            # layers read only its shape), of which these images are `rows`.
            if batch_size == len(images):
                whole_batch = None
            else:
                whole_batch = ops.numpy.zeros(
                    (batch_size,) + images.shape[1:3] + (1,), dtype="uint8")

        def transform(layer, tensor, seed):
            transformation = layer.get_random_transformation(
                tensor if whole_batch is None else whole_batch,
                training=True, seed=_seed_stream(layer, seed))
            if whole_batch is not None:
                transformation = _part_of_transformation(
                    transformation, rows, batch_size)
            return layer.transform_images(tensor, transformation, training=True)

        if self.geometric_layers:
            # One tensor through each geometric layer: image and mask are
            # resampled by the same transformation, on every backend.
            stacked = ops.convert_to_tensor(np.concatenate([images, masks], axis=-1))
            for _, layer in self.geometric_layers:
                stacked = transform(layer, stacked, next(seeds))
            stacked = np.asarray(ops.convert_to_numpy(stacked), dtype=np.float32)
            images = stacked[..., :channels]
            masks = (stacked[..., channels:] > self.mask_threshold).astype(np.float32)
        if self.photometric_layers:
            tensor = ops.convert_to_tensor(images)
            for _, layer in self.photometric_layers:
                tensor = transform(layer, tensor, next(seeds))
            images = np.asarray(ops.convert_to_numpy(tensor), dtype=np.float32)
        if self.gamma or self.noise:
            images = self._gamma_and_noise(images, next(seeds), rows)
        return np.clip(images, 0.0, 1.0), masks

    def _gamma_and_noise(self, images, seed, rows):
        out = np.empty_like(images)
        for image, position in enumerate(range(rows.start, rows.stop)):
            # One generator per position in the batch: an image's draws do
            # not depend on the other images, so a part of the batch gets
            # the same values as the whole batch. Both are drawn whether or
            # not used, so switching one on leaves the other's draws unchanged.
            rng = np.random.default_rng([seed, position])
            gamma = np.float32(np.exp(rng.uniform(-self.gamma, self.gamma)))
            sigma = np.float32(rng.uniform(0.0, self.noise))
            noise = rng.standard_normal(images.shape[1:], dtype=np.float32)
            result = images[image]
            if self.gamma:
                result = np.clip(result, 0.0, 1.0) ** gamma
            if self.noise:
                result = result + sigma * noise
            out[image] = result
        return out

    def get_config(self):
        return {
            "horizontal_flip": self.horizontal_flip,
            "vertical_flip": self.vertical_flip,
            "rotation": self.rotation,
            "zoom": self.zoom,
            "translation": self.translation,
            "brightness": self.brightness,
            "contrast": self.contrast,
            "saturation": self.saturation,
            "blur": self.blur,
            "gamma": self.gamma,
            "noise": self.noise,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "mask_threshold": self.mask_threshold,
            "seed": self.seed,
            "backend": self.backend,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"SegmentationAugmentation({args})"
