"""The input pipeline: dataset samples -> batches that `model.fit` takes,
on TensorFlow, PyTorch and JAX (a `keras.utils.PyDataset`: no TensorFlow
needed for torch or JAX users).

Convention shared by training, evaluation and prediction (the models'
input contract):

- images: float32, RGB (grayscale is replicated to three channels),
  channels last, scaled to [0, 1] (pixel / 255), no mean/std normalisation,
  shape (B, H, W, 3);
- masks: float32 in {0, 1}, shape (B, H, W, 1);
- resizing to `image_size`: bilinear (antialiased) for images,
  nearest-neighbour for masks; the aspect ratio is not kept (as is usual
  for these datasets at 256x256).
"""

import math
from typing import NamedTuple

import keras
import numpy as np

from keras_pu.data.cache import DecodedCache
from keras_pu.data.io import image_size as read_image_size
from keras_pu.data.io import read_image
from keras_pu.data.io import read_mask


def _check_image_size(image_size):
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"image_size must be an int or (height, width), got {image_size!r}"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return height, width


def preprocess_image(image, image_size):
    """uint8 image (H, W, C) or a file path -> float32 (h, w, 3) in [0, 1].

    The one conversion every keras-pu model input goes through (training,
    evaluation and prediction): RGB, resized bilinearly to `image_size`,
    divided by 255.

    Args:
        image: a path (read with `read_image`) or a uint8 array (H, W),
            (H, W, 1) or (H, W, 3).
        image_size: int or (height, width).

    Example:
    >>> x = preprocess_image("polyp.jpg", 256)[None]   # (1, 256, 256, 3)
    >>> logits = model.predict(x)
    """
    from PIL import Image

    height, width = _check_image_size(image_size)
    if not isinstance(image, np.ndarray):
        return read_image(image, channels=3, size=(height, width)).astype(
            np.float32
        ) / 255.0
    if image.dtype != np.uint8:
        raise ValueError(
            f"preprocess_image: expected a uint8 image, got {image.dtype}; "
            "read files with keras_pu.data.read_image"
        )
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(
            f"preprocess_image: expected (H, W), (H, W, 1) or (H, W, 3), got "
            f"shape {image.shape}"
        )
    pil = Image.fromarray(image)
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.BILINEAR)
    return np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0


def load_pair(sample, image_size, mask_threshold=None):
    """One sample -> (image float32 (h, w, 3) in [0, 1], mask float32 (h, w, 1))."""
    size = _check_image_size(image_size)
    image = read_image(sample.image_path, channels=3, size=size)
    mask = read_mask(sample.mask_paths, threshold=mask_threshold, size=size)
    return (
        image.astype(np.float32) / 255.0,
        mask.astype(np.float32)[..., None],
    )


class LabelledBatch(NamedTuple):
    """A batch for evaluation: model inputs, resized masks, sample ids, the
    (height, width) of each original image, and (on request) each original
    full-resolution mask (bool (H, W)) to score predictions resized back."""

    images: np.ndarray
    masks: np.ndarray
    ids: list
    original_sizes: list
    original_masks: list = None


class SegmentationSequence(keras.utils.PyDataset):
    """Batches of (images, masks) from a `SegmentationDataset`, for `fit`.

    Yields `(images, masks)`: images float32 (B, H, W, 3) in [0, 1], masks
    float32 (B, H, W, 1) in {0, 1} (see the module docstring). Files are
    decoded and resized per batch; large JPEGs are decoded at reduced scale.

    Args:
        dataset: a `SegmentationDataset` (or a sequence of `Sample`s).
        image_size: int or (height, width) of the model input. Default 256.
        batch_size: default 8.
        augmentation: optional `SegmentationAugmentation` (or any callable
            `(images, masks, seed=int) -> (images, masks)`), applied per
            batch with a seed derived from (seed, epoch, batch index), so the
            result does not depend on `workers`. `batch_part` with more than
            one part calls it with `part=(part, parts)` as well.
        shuffle: reshuffle the order every epoch (from `seed` and the epoch
            number). Default False.
        seed: int, the base of the shuffle and augmentation seeds. Default 0.
        drop_remainder: leave out the last, smaller batch (keeps one batch
            shape: JAX compiles the train step once). Default False.
        mask_threshold: `None` (default: `read_mask`'s rule, any non-zero
            label of a lossless mask is foreground, JPEG masks above 127) or
            a grey level above which a mask pixel is foreground.
        cache: `None` (decode every batch's files), `"memory"` (decode
            and resize every sample once, into uint8 arrays in memory), a
            folder (the same, as memory-mapped files reused by later runs
            while the data, size and threshold are unchanged) or a
            `keras_pu.data.DecodedCache`. The batches are the same either
            way; a cache makes them several times cheaper. Default None.
        workers, use_multiprocessing, max_queue_size: passed to
            `keras.utils.PyDataset` (parallel batch loading in `fit`).
            Prefer threads (`workers=2`, `use_multiprocessing=False`):
            decoding and TensorFlow's resampling release the GIL, and
            forking a process that has started TensorFlow or JAX is unsafe.

    Example:
    >>> train = apply_split(load_dataset("kvasir-seg", root), "train")
    >>> sequence = SegmentationSequence(
    ...     train, image_size=256, batch_size=8, shuffle=True, seed=0,
    ...     augmentation=SegmentationAugmentation(seed=0), workers=2)
    >>> model.fit(sequence, epochs=10)
    """

    def __init__(
        self,
        dataset,
        image_size=256,
        batch_size=8,
        augmentation=None,
        shuffle=False,
        seed=0,
        drop_remainder=False,
        mask_threshold=None,
        cache=None,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
    ):
        super().__init__(
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        self.samples = tuple(dataset)
        if not self.samples:
            raise ValueError("SegmentationSequence: the dataset is empty")
        if int(batch_size) < 1:
            raise ValueError(f"SegmentationSequence: batch_size must be >= 1, got {batch_size!r}")
        self.image_size = _check_image_size(image_size)
        self.batch_size = int(batch_size)
        if drop_remainder and len(self.samples) < self.batch_size:
            raise ValueError(
                f"SegmentationSequence: drop_remainder with {len(self.samples)} "
                f"samples and batch_size {self.batch_size} leaves no batch"
            )
        self.augmentation = augmentation
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.mask_threshold = mask_threshold
        self.cache = self._make_cache(cache)
        self.epoch = 0
        self._order = self._epoch_order(0)

    def _make_cache(self, cache):
        if cache is None or cache == "none":
            return None
        if isinstance(cache, DecodedCache):
            missing = {s.id for s in self.samples} - set(cache.ids)
            if missing:
                raise ValueError(
                    "SegmentationSequence: the DecodedCache lacks samples "
                    f"{sorted(missing)[:5]}; build it from the same dataset"
                )
            if cache.images.shape[1:3] != self.image_size:
                raise ValueError(
                    "SegmentationSequence: the DecodedCache holds "
                    f"{cache.images.shape[1:3]} images, the sequence wants "
                    f"{self.image_size}"
                )
            return cache
        directory = None if cache == "memory" else cache
        return DecodedCache.build(
            self.samples, self.image_size, self.mask_threshold,
            directory=directory,
        )

    def _epoch_order(self, epoch):
        if not self.shuffle:
            return np.arange(len(self.samples))
        rng = np.random.default_rng([self.seed, epoch])
        return rng.permutation(len(self.samples))

    def __len__(self):
        count = len(self.samples) / self.batch_size
        return math.floor(count) if self.drop_remainder else math.ceil(count)

    def batch_samples(self, index):
        """The `Sample`s of batch `index` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range (0..{len(self) - 1})")
        positions = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return [self.samples[i] for i in positions]

    def __getitem__(self, index):
        return self.batch_part(index, 0, 1)

    def batch_part(self, index, part, parts):
        """Part `part` of batch `index` cut into `parts` equal, contiguous
        parts: `self[index]`'s images `[part * n, (part + 1) * n)` with
        `n = len(batch) / parts`, decoded and augmented alone (data
        parallelism: each process's share of the global batch, for the work
        of its share).

        Raises:
            ValueError: `part` is not one of `parts` parts, or the batch does
                not split into `parts` equal parts.
        """
        if not 0 <= part < parts:
            raise ValueError(
                f"SegmentationSequence: part {part!r} of {parts!r} parts; "
                "needs 0 <= part < parts"
            )
        samples = self.batch_samples(index)
        if len(samples) % parts:
            raise ValueError(
                f"SegmentationSequence: batch {index} holds {len(samples)} "
                f"images, which do not split into {parts} equal parts. Under "
                "data parallelism the global batch size (training.batch_size) "
                "must be a multiple of the number of replicas, and the "
                "training split must hold at least one global batch."
            )
        size = len(samples) // parts
        samples = samples[part * size:(part + 1) * size]
        if self.cache is not None:
            images, masks = self.cache.batch([s.id for s in samples])
        else:
            pairs = [
                load_pair(s, self.image_size, self.mask_threshold)
                for s in samples
            ]
            images = np.stack([p[0] for p in pairs])
            masks = np.stack([p[1] for p in pairs])
        if self.augmentation is not None:
            seed = np.random.SeedSequence([self.seed, self.epoch, index])
            images, masks = self.augmentation(
                images, masks, seed=int(seed.generate_state(1)[0]),
                **({} if parts == 1 else {"part": (part, parts)}),
            )
        return images, masks

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order(self.epoch)

    def set_epoch(self, epoch):
        """Sets the epoch number (e.g. when resuming training at `epoch`)."""
        self.epoch = int(epoch)
        self._order = self._epoch_order(self.epoch)


def labelled_batches(dataset, image_size=256, batch_size=8, mask_threshold=None,
                     original_masks=False):
    """Iterates a dataset in order, without augmentation, for evaluation.

    Args:
        dataset: a `SegmentationDataset` or a sequence of `Sample`s.
        image_size: int or (height, width) of the model input.
        batch_size: samples per batch (the last may be smaller).
        mask_threshold: see `read_mask`.
        original_masks: also return each full-resolution mask (to score
            at the native resolution). Default False.

    Yields:
        `LabelledBatch(images, masks, ids, original_sizes, original_masks)`:
        images and masks as in `SegmentationSequence`, the sample ids, each
        original image's (height, width), to resize predictions back, and
        the original masks (or None).

    Example:
    >>> for batch in labelled_batches(test_set, image_size=256):
    ...     logits = model.predict_on_batch(batch.images)
    """
    samples = tuple(dataset)
    size = _check_image_size(image_size)
    for start in range(0, len(samples), int(batch_size)):
        chunk = samples[start:start + int(batch_size)]
        pairs = [load_pair(s, size, mask_threshold) for s in chunk]
        yield LabelledBatch(
            images=np.stack([p[0] for p in pairs]),
            masks=np.stack([p[1] for p in pairs]),
            ids=[s.id for s in chunk],
            original_sizes=[read_image_size(s.image_path) for s in chunk],
            original_masks=[
                read_mask(s.mask_paths, threshold=mask_threshold) for s in chunk
            ] if original_masks else None,
        )
