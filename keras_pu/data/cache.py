"""Decode and resize a dataset once: uint8 arrays in memory or in
memory-mapped files.

Decoding a JPEG or PNG and resizing it costs more than a training step of
a small U-Net on a CPU (Kvasir-SEG's ~600x500 JPEGs, ISIC's multi-megapixel
photographs), and `SegmentationSequence` would pay it for every image in
every epoch. `DecodedCache` pays it once: images as uint8 (N, H, W, 3),
masks as uint8 (N, H, W) in {0, 1}, at the model's input size (a quarter of
the float32 size). Batches are then a gather and a cast.

With `directory`, the arrays are `.npy` files that later runs memory-map
(`numpy.load(mmap_mode="r")`, never pickle) instead of decoding again. The
file name is a digest of everything the content depends on: each image and
mask file's path, size and modification time, the input size, the mask
threshold and this module's format version. A changed file, size or
threshold gives another digest, so a stale cache is never read; files are
written to a temporary name and renamed, so a crash never leaves a
half-written cache under the final name.
"""

import hashlib
import json
import os
import pathlib
import tempfile

import numpy as np

from keras_pu.data.io import read_image
from keras_pu.data.io import read_mask

# Bump when the decoding changes (resampling, mask rule): old files are
# then ignored.
CACHE_FORMAT_VERSION = 2  # 2: label-valued lossless masks (any non-zero label)


def _file_signature(path):
    path = pathlib.Path(path)
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def cache_key(samples, image_size, mask_threshold):
    """Hex digest of what a cache built from these arguments holds."""
    description = {
        "version": CACHE_FORMAT_VERSION,
        "image_size": list(image_size),
        "mask_threshold": mask_threshold,
        "samples": [
            [s.id, _file_signature(s.image_path)]
            + [_file_signature(m) for m in s.mask_paths]
            for s in samples
        ],
    }
    text = json.dumps(description, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _save_atomic(path, array):
    directory = path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


class DecodedCache:
    """Every sample of a dataset decoded and resized once, as uint8 arrays.

    Build it with `DecodedCache.build`; `SegmentationSequence(...,
    cache="memory")` does so itself.

    Attributes:
        ids: the sample ids, in order.
        images: uint8 array (N, H, W, 3).
        masks: uint8 array (N, H, W), 1 for foreground.
        key: the digest of the content (see the module docstring).
        path: the `.npy` file stem when memory-mapped, else None.
    """

    def __init__(self, ids, images, masks, key, path=None):
        if len(ids) != len(images) or len(images) != len(masks):
            raise ValueError(
                f"DecodedCache: {len(ids)} ids, {len(images)} images and "
                f"{len(masks)} masks; they must match"
            )
        self.ids = tuple(ids)
        self.images = images
        self.masks = masks
        self.key = key
        self.path = path
        self._positions = {sample_id: i for i, sample_id in enumerate(ids)}

    def __len__(self):
        return len(self.ids)

    def positions(self, ids):
        """Row numbers of the given sample ids (KeyError names a missing one)."""
        try:
            return np.asarray([self._positions[i] for i in ids], dtype=np.int64)
        except KeyError as e:
            raise KeyError(
                f"DecodedCache: sample {e.args[0]!r} is not in this cache"
            ) from None

    @classmethod
    def build(cls, samples, image_size, mask_threshold=None, directory=None,
              verbose=False):
        """Decodes `samples` at `image_size` (or reads a matching cache).

        Args:
            samples: a `SegmentationDataset` or a sequence of `Sample`s.
            image_size: (height, width) of the model input.
            mask_threshold: `None` (`read_mask`'s own rule) or a grey level;
                see `keras_pu.data.read_mask`.
            directory: optional folder for memory-mapped `.npy` files, reused
                by later runs while nothing they depend on has changed.
            verbose: print one line when decoding (it can take a minute).

        Returns:
            A `DecodedCache`.

        Raises:
            keras_pu.data.ImageReadError (and the readers' other errors):
                a file that cannot be read, named in the message.
        """
        samples = tuple(samples)
        height, width = (int(v) for v in image_size)
        key = cache_key(samples, (height, width), mask_threshold)
        ids = [s.id for s in samples]
        stem = None
        if directory is not None:
            directory = pathlib.Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            stem = directory / f"decoded-{height}x{width}-{key}"
            image_file = stem.with_name(stem.name + ".images.npy")
            mask_file = stem.with_name(stem.name + ".masks.npy")
            if image_file.is_file() and mask_file.is_file():
                images = np.load(image_file, mmap_mode="r", allow_pickle=False)
                masks = np.load(mask_file, mmap_mode="r", allow_pickle=False)
                if (images.shape == (len(samples), height, width, 3)
                        and masks.shape == (len(samples), height, width)
                        and images.dtype == np.uint8
                        and masks.dtype == np.uint8):
                    return cls(ids, images, masks, key, stem)
        if verbose:
            print(
                f"Decoding {len(samples)} images at {height}x{width} once "
                "(cached for the whole run)...",
                flush=True,
            )
        images = np.empty((len(samples), height, width, 3), np.uint8)
        masks = np.empty((len(samples), height, width), np.uint8)
        for i, sample in enumerate(samples):
            images[i] = read_image(
                sample.image_path, channels=3, size=(height, width)
            )
            masks[i] = read_mask(
                sample.mask_paths, threshold=mask_threshold,
                size=(height, width),
            )
        if stem is None:
            return cls(ids, images, masks, key)
        _save_atomic(image_file, images)
        _save_atomic(mask_file, masks)
        return cls(
            ids,
            np.load(image_file, mmap_mode="r", allow_pickle=False),
            np.load(mask_file, mmap_mode="r", allow_pickle=False),
            key,
            stem,
        )

    def batch(self, ids):
        """(images float32 (B, H, W, 3) in [0, 1], masks float32 (B, H, W,
        1)) of the given sample ids: the same arrays `load_pair` gives."""
        rows = self.positions(ids)
        # Sorted rows read a memory-mapped file sequentially.
        order = np.argsort(rows, kind="stable")
        images = np.empty((len(rows),) + self.images.shape[1:], np.float32)
        masks = np.empty((len(rows),) + self.masks.shape[1:] + (1,),
                         np.float32)
        images[order] = self.images[rows[order]]
        masks[order, ..., 0] = self.masks[rows[order]]
        images /= 255.0
        return images, masks
